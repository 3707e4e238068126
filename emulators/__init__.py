"""lowbit.emulators: bit-exact emulation of low-precision arithmetic on arrays of codes.

The API (:mod:`lowbit.emulators.ops`) validates once and dispatches to a backend
(``"numba"`` or ``"c"``, see :mod:`lowbit.emulators.backends`); both return the codes
:mod:`lowbit.numerics.reference` defines. Importing this package compiles nothing.

>>> import numpy as np
>>> from lowbit.numerics import Fixed
>>> x = cast(np.array([2**-9 + 2**-32]), Fixed(16, 8))   # just above half an ulp
>>> x.codes
array([1])
"""

from lowbit.emulators.array import EmuArray, from_codes
from lowbit.emulators.backends import BACKENDS, default_backend, get_backend, set_backend
from lowbit.emulators.ops import ORDERS, add, block_cast, bmm, cast, div, fma, matmul, mul, sub, sum  # noqa: A004

__all__ = [
    "BACKENDS",
    "ORDERS",
    "EmuArray",
    "add",
    "block_cast",
    "cast",
    "default_backend",
    "div",
    "fma",
    "from_codes",
    "get_backend",
    "matmul",
    "bmm",
    "mul",
    "set_backend",
    "sub",
    "sum",
]
