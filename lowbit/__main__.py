"""``python -m lowbit``: the ``lowbit`` command line."""

import sys

from lowbit.integrations.cli import main

sys.exit(main())
