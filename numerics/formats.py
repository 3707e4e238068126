"""Number formats as immutable, validated, hashable data.

A format says which values exist and how an exact result is mapped onto them.
It holds no data and does no arithmetic: :mod:`numerics.reference` defines the
arithmetic, :mod:`emulators` runs it fast.

>>> Fixed(16, 8)
Fixed(16, 8)
>>> Fixed(16, 8).max_value, Fixed(16, 8).ulp
(Fraction(32767, 256), Fraction(1, 256))
>>> parse_format("ufixed8.8:sr")
Fixed(8, 8, signed=False, rounding=Rounding.STOCHASTIC)
>>> str(Ternary(threshold=0.05))
'ternary:threshold=0.05'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

from numerics.modes import Overflow, Rounding, as_overflow, as_rounding

MAX_BITS = 62
"""Widest code any format may have: codes live in int64 with a spare bit."""
MAX_FRAC = 512
"""Largest ``|frac|`` of a fixed-point format (keeps every value a normal float64)."""


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


@dataclass(frozen=True)
class Fixed:
    """Binary fixed point: value = code * 2**-frac.

    ``bits`` in 1..62 is the code width; signed codes lie in
    [-2**(bits-1), 2**(bits-1) - 1], unsigned ones in [0, 2**bits - 1].
    ``frac`` (-512..512) is the number of fractional bits; it may be negative or
    exceed ``bits``. Every operation rounds its exact result once with
    ``rounding`` and then applies ``overflow`` (SATURATE clamps, WRAP keeps the low
    ``bits`` bits in two's complement).
    """

    bits: int
    frac: int
    signed: bool = True
    rounding: Rounding = Rounding.NEAREST_EVEN
    overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        _check_int("Fixed.bits", self.bits, 1, MAX_BITS)
        _check_int("Fixed.frac", self.frac, -MAX_FRAC, MAX_FRAC)
        if not isinstance(self.signed, bool):
            raise TypeError(f"Fixed.signed must be a bool, got {self.signed!r}")
        object.__setattr__(self, "rounding", as_rounding(self.rounding, "Fixed.rounding"))
        object.__setattr__(self, "overflow", as_overflow(self.overflow, "Fixed.overflow"))

    @property
    def min_code(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def magnitude_bits(self) -> int:
        """``m`` such that every |code| <= 2**m (bits-1 if signed, else bits)."""
        return self.bits - 1 if self.signed else self.bits

    @property
    def ulp(self) -> Fraction:
        """Distance between neighbouring values, 2**-frac."""
        return Fraction(2) ** -self.frac

    @property
    def min_value(self) -> Fraction:
        return self.min_code * self.ulp

    @property
    def max_value(self) -> Fraction:
        return self.max_code * self.ulp

    def __repr__(self) -> str:
        extra = ""
        if not self.signed:
            extra += ", signed=False"
        if self.rounding is not Rounding.NEAREST_EVEN:
            extra += f", rounding={self.rounding!r}"
        if self.overflow is not Overflow.SATURATE:
            extra += f", overflow={self.overflow!r}"
        return f"Fixed({self.bits}, {self.frac}{extra})"

    def __str__(self) -> str:
        s = f"{'' if self.signed else 'u'}fixed{self.bits}.{self.frac}"
        if self.rounding is not Rounding.NEAREST_EVEN:
            s += ":" + self.rounding.short
        if self.overflow is not Overflow.SATURATE:
            s += ":" + self.overflow.short
        return s


BINARY_SCALES = (None, "mean_abs", "per_channel")


@dataclass(frozen=True)
class Binary:
    """Binary codes {-1, +1}: code = +1 if x >= 0 else -1 (zero and -0.0 map to +1).

    ``scale`` multiplies the codes, as in XNOR-Net: ``None`` (value = code),
    ``"mean_abs"`` (one scale, mean |x| of the whole array) or ``"per_channel"``
    (mean |x| over every axis but the first, one scale per index of axis 0).
    """

    scale: str | None = None

    def __post_init__(self) -> None:
        if self.scale not in BINARY_SCALES:
            raise ValueError(f"Binary.scale must be one of {BINARY_SCALES}, got {self.scale!r}")

    min_code = -1
    max_code = 1
    frac = 0

    def __repr__(self) -> str:
        return "Binary()" if self.scale is None else f"Binary(scale={self.scale!r})"

    def __str__(self) -> str:
        return "binary" if self.scale is None else f"binary:{self.scale}"


TERNARY_SCALES = (None, "twn")
TWN_THRESHOLD_FACTOR = 0.7


@dataclass(frozen=True)
class Ternary:
    """Ternary codes {-1, 0, +1}: code = sign(x) if |x| > threshold else 0.

    ``threshold`` is an absolute value >= 0 or ``"twn"``, the rule of Ternary
    Weight Networks (Li et al. 2016): 0.7 * mean |x| over the whole array.
    ``scale`` is ``None`` (value = code) or ``"twn"``: the mean of |x| over the
    elements with |x| > threshold (0 when there are none).
    """

    threshold: float | str = "twn"
    scale: str | None = "twn"

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, str):
            if t != "twn":
                raise ValueError(f"Ternary.threshold must be 'twn' or a float >= 0, got {t!r}")
        elif isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"Ternary.threshold must be 'twn' or a float >= 0, got {t!r}")
        else:
            if not (math.isfinite(t) and t >= 0):
                raise ValueError(f"Ternary.threshold must be 'twn' or a float >= 0, got {t!r}")
            object.__setattr__(self, "threshold", float(t))
        if self.scale not in TERNARY_SCALES:
            raise ValueError(f"Ternary.scale must be one of {TERNARY_SCALES}, got {self.scale!r}")

    min_code = -1
    max_code = 1
    frac = 0

    def __repr__(self) -> str:
        parts = []
        if self.threshold != "twn":
            parts.append(f"threshold={self.threshold!r}")
        if self.scale != "twn":
            parts.append(f"scale={self.scale!r}")
        return f"Ternary({', '.join(parts)})"

    def __str__(self) -> str:
        s = "ternary"
        if self.threshold != "twn":
            s += f":threshold={self.threshold!r}"
        if self.scale != "twn":
            s += f":scale={'none' if self.scale is None else self.scale}"
        return s


Format = Union[Fixed, Binary, Ternary]
FORMAT_TYPES = (Fixed, Binary, Ternary)

FORMAT_GRAMMAR = """\
format   := fixed | binary | ternary            (case-insensitive, no spaces)
fixed    := ["u"] "fixed" BITS "." FRAC (":" ROUNDING | ":" OVERFLOW)*
            BITS in 1..62, FRAC an integer in -512..512 (e.g. fixed8.-2)
ROUNDING := "rne" | "rna" | "rtz" | "floor" | "ceil" | "sr"     (default rne)
OVERFLOW := "sat" | "wrap"                                     (default sat)
binary   := "binary" [":" ("mean_abs" | "per_channel")]
ternary  := "ternary" (":threshold=" ("twn" | FLOAT) | ":scale=" ("twn" | "none"))*
"""


def parse_format(text: "str | Format") -> Format:
    """Parse a short format string (grammar in ``FORMAT_GRAMMAR``); formats pass through.

    ``str(fmt)`` is the canonical string: ``parse_format(str(fmt)) == fmt``.

    >>> parse_format("fixed16.8")
    Fixed(16, 8)
    >>> parse_format("fixed8.-2:floor:wrap")
    Fixed(8, -2, rounding=Rounding.FLOOR, overflow=Overflow.WRAP)
    >>> parse_format("binary:mean_abs")
    Binary(scale='mean_abs')
    """
    if isinstance(text, FORMAT_TYPES):
        return text
    if not isinstance(text, str):
        raise TypeError(f"format must be a str or a format object, got {type(text).__name__}")
    head, *opts = text.strip().lower().split(":")
    try:
        if head.startswith(("fixed", "ufixed")):
            return _parse_fixed(head, opts)
        if head == "binary":
            if len(opts) > 1:
                raise ValueError("binary takes at most one option")
            scale = opts[0] if opts else None
            if scale is not None and scale.startswith("scale="):
                scale = scale[len("scale="):]
            return Binary(scale=None if scale == "none" else scale)
        if head == "ternary":
            kw: dict[str, object] = {}
            for opt in opts:
                key, sep, val = opt.partition("=")
                if not sep or key not in ("threshold", "scale") or key in kw:
                    raise ValueError(f"bad ternary option {opt!r}")
                if key == "threshold":
                    kw[key] = val if val == "twn" else float(val)
                else:
                    kw[key] = None if val == "none" else val
            return Ternary(**kw)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot parse format {text!r}: {exc}\n{FORMAT_GRAMMAR}") from None
    raise ValueError(f"cannot parse format {text!r}: unknown family {head!r}\n{FORMAT_GRAMMAR}")


def _parse_fixed(head: str, opts: list[str]) -> Fixed:
    signed = not head.startswith("u")
    body = head[len("fixed") + (0 if signed else 1):]
    bits_s, dot, frac_s = body.partition(".")
    if not dot:
        raise ValueError("fixed needs BITS.FRAC, e.g. fixed16.8")
    kw: dict[str, object] = {}
    for opt in opts:
        if opt in ("sat", "wrap"):
            key, val = "overflow", as_overflow(opt)
        else:
            key, val = "rounding", as_rounding(opt)
        if key in kw:
            raise ValueError(f"{key} given twice")
        kw[key] = val
    return Fixed(int(bits_s), int(frac_s), signed, **kw)  # type: ignore[arg-type]
