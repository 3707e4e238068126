"""Rounding and overflow modes.

Their integer values are part of the contract: the C header ``csrc/lowbit.h``
mirrors them and ``tests/emulators/test_c_contract.py`` checks that both agree.
"""

from __future__ import annotations

import enum


class Rounding(enum.IntEnum):
    """How an exact result is rounded to the nearest representable codes."""

    NEAREST_EVEN = 0
    """Round to nearest; ties go to the even code (IEEE 754 default)."""
    NEAREST_AWAY = 1
    """Round to nearest; ties go away from zero."""
    TOWARD_ZERO = 2
    """Drop the fraction toward zero (sign-magnitude truncation)."""
    FLOOR = 3
    """Round toward minus infinity (two's-complement truncation)."""
    CEIL = 4
    """Round toward plus infinity."""
    STOCHASTIC = 5
    """Round up with probability equal to the dropped fraction (see docs/rng.md)."""
    ODD = 6
    """Round to odd: truncate, then set the last bit if anything was dropped (Float only)."""

    def __repr__(self) -> str:
        return f"Rounding.{self.name}"

    @property
    def short(self) -> str:
        """The short name used in format strings (``"rne"``, ``"sr"``, ...)."""
        return _ROUNDING_SHORT[self]


class Overflow(enum.IntEnum):
    """What happens to a rounded result outside the format's code range."""

    SATURATE = 0
    """Clamp to the largest or smallest code."""
    WRAP = 1
    """Keep the low ``bits`` bits (two's-complement wrap-around)."""
    INFINITY = 2
    """Become +-inf, or NaN in a float format without infinities (Float only)."""

    def __repr__(self) -> str:
        return f"Overflow.{self.name}"

    @property
    def short(self) -> str:
        """The short name used in format strings (``"sat"``, ``"wrap"``)."""
        return _OVERFLOW_SHORT[self]


_ROUNDING_SHORT = {
    Rounding.NEAREST_EVEN: "rne",
    Rounding.NEAREST_AWAY: "rna",
    Rounding.TOWARD_ZERO: "rtz",
    Rounding.FLOOR: "floor",
    Rounding.CEIL: "ceil",
    Rounding.STOCHASTIC: "sr",
    Rounding.ODD: "odd",
}
_OVERFLOW_SHORT = {Overflow.SATURATE: "sat", Overflow.WRAP: "wrap", Overflow.INFINITY: "inf"}

ROUNDING_BY_SHORT = {v: k for k, v in _ROUNDING_SHORT.items()}
OVERFLOW_BY_SHORT = {v: k for k, v in _OVERFLOW_SHORT.items()}


def as_rounding(value: Rounding | str, name: str = "rounding") -> Rounding:
    """Coerce ``value`` (a :class:`Rounding`, its name or its short name) or raise."""
    if isinstance(value, Rounding):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ROUNDING_BY_SHORT:
            return ROUNDING_BY_SHORT[key]
        if key.upper() in Rounding.__members__:
            return Rounding[key.upper()]
    raise ValueError(
        f"{name} must be a Rounding or one of {sorted(ROUNDING_BY_SHORT)}, got {value!r}"
    )


def as_overflow(value: Overflow | str, name: str = "overflow") -> Overflow:
    """Coerce ``value`` (an :class:`Overflow`, its name or its short name) or raise."""
    if isinstance(value, Overflow):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key in OVERFLOW_BY_SHORT:
            return OVERFLOW_BY_SHORT[key]
        if key.upper() in Overflow.__members__:
            return Overflow[key.upper()]
    raise ValueError(
        f"{name} must be an Overflow or one of {sorted(OVERFLOW_BY_SHORT)}, got {value!r}"
    )
