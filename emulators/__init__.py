"""lowbit.emulators: bit-exact emulation of low-precision arithmetic on arrays of codes.

The API (:mod:`emulators.ops`) validates once and dispatches to a backend
(``"numba"`` or ``"c"``, see :mod:`emulators.backends`); both return the codes
:mod:`numerics.reference` defines. Importing this package compiles nothing.

>>> import numpy as np
>>> from numerics import Fixed
>>> x = cast(np.array([2**-9 + 2**-32]), Fixed(16, 8))   # just above half an ulp
>>> x.codes
array([1])
"""

from emulators.array import EmuArray, from_codes
from emulators.backends import BACKENDS, default_backend, get_backend, set_backend
from emulators.ops import ORDERS, add, cast, div, matmul, mul, sub, sum  # noqa: A004

__all__ = [
    "BACKENDS",
    "ORDERS",
    "EmuArray",
    "add",
    "cast",
    "default_backend",
    "div",
    "from_codes",
    "get_backend",
    "matmul",
    "mul",
    "set_backend",
    "sub",
    "sum",
]
