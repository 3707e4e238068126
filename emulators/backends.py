"""The backend registry: ``"numba"`` and ``"c"`` implement the same kernels.

Every public operation takes ``backend=None`` meaning the default: the value of
``set_backend``, else the ``LOWBIT_BACKEND`` environment variable, else ``"c"``
(compiled at install time, so nothing is compiled on first use, and its LNS
accumulation loops vectorize; Numba's do not). Both backends return identical
codes for every input.

>>> set_backend("c"); get_backend().name
'c'
>>> set_backend(None)  # back to LOWBIT_BACKEND or "c"
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

BACKENDS = ("numba", "c")
_MODULES = {"numba": "lowbit.emulators._numba.backend", "c": "lowbit.emulators._c.backend"}
_chosen: str | None = None


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS}, got {name!r}")
    return name


def set_backend(name: str | None) -> None:
    """Make ``name`` the default backend (``None``: back to LOWBIT_BACKEND or "c")."""
    global _chosen
    _chosen = None if name is None else _check_name(name, "backend")


def default_backend() -> str:
    """The name of the backend used when ``backend=None``."""
    if _chosen is not None:
        return _chosen
    env = os.environ.get("LOWBIT_BACKEND")
    return _check_name(env, "LOWBIT_BACKEND") if env else "c"


def get_backend(name: str | None = None) -> ModuleType:
    """The backend module called ``name`` (default: :func:`default_backend`)."""
    name = default_backend() if name is None else _check_name(name, "backend")
    return importlib.import_module(_MODULES[name])
