"""Rounding one exact rational into a fixed-point format.

>>> from fractions import Fraction
>>> from lowbit.numerics import Fixed
>>> quantize(Fraction(1, 512) + Fraction(1, 2**32), Fixed(16, 8))  # just above a tie
1
>>> quantize(Fraction(3, 2), Fixed(4, 0)), quantize(Fraction(5, 2), Fixed(4, 0))
(2, 2)
"""

from __future__ import annotations

import math
from fractions import Fraction

from lowbit.numerics.formats import Fixed
from lowbit.numerics.modes import Overflow, Rounding

HALF = Fraction(1, 2)
TWO53 = 1 << 53


def round_to_integer(x: Fraction, rounding: Rounding, u53: int = 0) -> int:
    """Round the exact rational ``x`` to an integer.

    ``u53`` (0 <= u53 < 2**53) is the random draw used by STOCHASTIC, which
    rounds up exactly when ``u53 < (x - floor(x)) * 2**53``.
    """
    q = math.floor(x)
    phi = x - q
    if phi == 0:
        return q
    if rounding is Rounding.NEAREST_EVEN:
        return q + 1 if phi > HALF or (phi == HALF and q % 2 == 1) else q
    if rounding is Rounding.NEAREST_AWAY:
        return q + 1 if phi > HALF or (phi == HALF and x > 0) else q
    if rounding is Rounding.TOWARD_ZERO:
        return q if x > 0 else q + 1
    if rounding is Rounding.FLOOR:
        return q
    if rounding is Rounding.CEIL:
        return q + 1
    if rounding is Rounding.STOCHASTIC:
        return q + 1 if u53 < phi * TWO53 else q
    raise ValueError(f"unknown rounding {rounding!r}")


def apply_overflow(n: int, fmt: Fixed) -> int:
    """Map the integer ``n`` into ``fmt``'s code range (saturate or wrap)."""
    lo, hi = fmt.min_code, fmt.max_code
    if lo <= n <= hi:
        return n
    if fmt.overflow is Overflow.SATURATE:
        return hi if n > hi else lo
    return (n - lo) % (1 << fmt.bits) + lo


def round_to_grid(x: Fraction, fmt: Fixed, u53: int = 0) -> int:
    """``x * 2**frac`` rounded with ``fmt.rounding``, before the overflow policy."""
    return round_to_integer(x * Fraction(2) ** fmt.frac, fmt.rounding, u53)


def quantize(x: Fraction, fmt: Fixed, u53: int = 0) -> int:
    """The code of ``x`` in ``fmt``: one rounding, then the overflow policy."""
    return apply_overflow(round_to_grid(x, fmt, u53), fmt)


def decode(code: int, fmt: Fixed) -> Fraction:
    """The exact value of a fixed-point code."""
    return code * Fraction(2) ** -fmt.frac
