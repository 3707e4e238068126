"""lowbit.numerics: number formats and the exact reference arithmetic.

Imports neither numba nor torch. See ``docs/formats.md`` for the semantics.
"""

from lowbit.numerics.accumulators import ACCUMULATOR_MODELS, AccumulatorModel, parse_accumulator
from lowbit.numerics.formats import (
    BLOCK_PRESETS,
    FLOAT_PRESETS,
    FLOAT_SPECIALS,
    FORMAT_GRAMMAR,
    LNS,
    MAX_BITS,
    MAX_FRAC,
    Binary,
    Block,
    Exact,
    Fixed,
    Float,
    Format,
    Interp,
    Table,
    Ternary,
    parse_format,
)
from lowbit.numerics.modes import Overflow, Rounding

__all__ = [
    "ACCUMULATOR_MODELS",
    "AccumulatorModel",
    "parse_accumulator",
    "BLOCK_PRESETS",
    "Block",
    "FLOAT_PRESETS",
    "FLOAT_SPECIALS",
    "FORMAT_GRAMMAR",
    "MAX_BITS",
    "MAX_FRAC",
    "LNS",
    "Binary",
    "Exact",
    "Fixed",
    "Float",
    "Interp",
    "Table",
    "Format",
    "Overflow",
    "Rounding",
    "Ternary",
    "parse_format",
]
