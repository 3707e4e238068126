"""The ``lowbit`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowbit", description="Bit-exact low-precision arithmetic.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="per-format error report on scikit-learn digits")
    demo.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    demo.add_argument("--formats", nargs="+", default=None,
                      help="format strings (see numerics.FORMAT_GRAMMAR)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from integrations.demo import DEFAULT_FORMATS, run_demo

        path = run_demo(args.out, args.formats or DEFAULT_FORMATS)
        print(f"results written to {path.parent.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
