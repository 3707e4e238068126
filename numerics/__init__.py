"""lowbit.numerics: number formats and the exact reference arithmetic.

Imports neither numba nor torch. See ``docs/formats.md`` for the semantics.
"""

from numerics.formats import (
    FORMAT_GRAMMAR,
    MAX_BITS,
    MAX_FRAC,
    Binary,
    Fixed,
    Format,
    Ternary,
    parse_format,
)
from numerics.modes import Overflow, Rounding

__all__ = [
    "FORMAT_GRAMMAR",
    "MAX_BITS",
    "MAX_FRAC",
    "Binary",
    "Fixed",
    "Format",
    "Overflow",
    "Rounding",
    "Ternary",
    "parse_format",
]
