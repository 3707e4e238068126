"""lowbit.numerics: number formats and the exact reference arithmetic.

Imports neither numba nor torch. See ``docs/formats.md`` for the semantics.
"""

from lowbit.numerics.formats import (
    FORMAT_GRAMMAR,
    LNS,
    MAX_BITS,
    MAX_FRAC,
    Binary,
    Exact,
    Fixed,
    Format,
    Interp,
    Table,
    Ternary,
    parse_format,
)
from lowbit.numerics.modes import Overflow, Rounding

__all__ = [
    "FORMAT_GRAMMAR",
    "MAX_BITS",
    "MAX_FRAC",
    "LNS",
    "Binary",
    "Exact",
    "Fixed",
    "Interp",
    "Table",
    "Format",
    "Overflow",
    "Rounding",
    "Ternary",
    "parse_format",
]
