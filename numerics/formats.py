"""Number formats as immutable, validated, hashable data.

A format says which values exist and how an exact result is mapped onto them.
It holds no data and does no arithmetic: :mod:`lowbit.numerics.reference` defines the
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

from lowbit.numerics.modes import Overflow, Rounding, as_overflow, as_rounding

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


LNS_ROUNDINGS = (Rounding.NEAREST_EVEN, Rounding.FLOOR, Rounding.CEIL, Rounding.STOCHASTIC)
UNDERFLOWS = ("zero", "min")
MAX_LNS_INT_BITS = 10
"""Widest integer part of an LNS exponent: every value stays a normal float64."""
MAX_LNS_FRAC_BITS = 16
"""Finest LNS exponent: the adder tables then have a few million entries at most."""
STOCHASTIC_GUARD_BITS = 20
"""Bits beyond frac_bits kept by the Exact and Table adders' tables for stochastic rounding."""


@dataclass(frozen=True)
class Exact:
    """The exact Gaussian-log adder: sb(z) and db(z) correctly rounded to frac_bits.

    In the format's rounding mode; for STOCHASTIC the tables hold sb and db
    rounded to nearest at frac_bits + STOCHASTIC_GUARD_BITS and the guard bits
    are rounded stochastically (see docs/lns.md).
    """

    def __repr__(self) -> str:
        return "Exact()"

    def __str__(self) -> str:
        return "exact"


@dataclass(frozen=True)
class Table:
    """A hardware lookup table indexed by the top bits of |z|.

    |z| (in units of 2**-frac_bits) is split as q * 2**k + r, k chosen so that
    2**index_bits entries cover the essential zero; entry q holds sb or db at the
    middle of its interval, -(q * 2**k + 2**(k-1)), correctly rounded. The first
    interval (q = 0, where db is singular) is a sub-table holding every z exactly.
    Beyond the last entry no table is consulted (the essential zero).
    """

    index_bits: int

    def __post_init__(self) -> None:
        _check_int("Table.index_bits", self.index_bits, 1, 24)

    def __repr__(self) -> str:
        return f"Table({self.index_bits})"

    def __str__(self) -> str:
        return f"table{self.index_bits}"


@dataclass(frozen=True)
class Interp:
    """Piecewise-linear interpolation between table points q * 2**k (as in Table).

    Points hold sb or db rounded to nearest at frac_bits + guard_bits; between
    them v = T[q] + floor((T[q+1] - T[q]) * r / 2**k) (the product truncated, as
    a shifter does), then v is rounded to frac_bits in the format's mode. The
    first interval (q = 0) is an exact sub-table, for db's singularity at z = 0.
    """

    index_bits: int
    guard_bits: int = 8

    def __post_init__(self) -> None:
        _check_int("Interp.index_bits", self.index_bits, 1, 24)
        _check_int("Interp.guard_bits", self.guard_bits, 0, 30)

    def __repr__(self) -> str:
        g = "" if self.guard_bits == 8 else f", guard_bits={self.guard_bits}"
        return f"Interp({self.index_bits}{g})"

    def __str__(self) -> str:
        return f"interp{self.index_bits}" + ("" if self.guard_bits == 8 else f"g{self.guard_bits}")


ADDER_TYPES = (Exact, Table, Interp)


@dataclass(frozen=True)
class LNS:
    """Logarithmic number system: value = (-1)**s * 2**(e * 2**-frac_bits), or exactly 0.

    ``e`` is a signed fixed-point exponent of W = int_bits + frac_bits bits,
    e in [-2**(W-1), 2**(W-1) - 1]. Codes (int64): 0 is zero, and a nonzero value
    has code +-(e - e_min + 1), the sign of the code being the sign of the value,
    so codes order like values. Multiplication and division add and subtract
    exponents exactly; addition uses the Gaussian logarithms sb/db through
    ``adder``. Rounding (of exponents, in the log domain): NEAREST_EVEN, FLOOR
    (toward smaller magnitude), CEIL or STOCHASTIC. Results beyond the largest
    magnitude saturate; below the smallest they become 0 (``underflow="zero"``)
    or the smallest magnitude (``underflow="min"``).
    """

    int_bits: int
    frac_bits: int
    adder: "Exact | Table | Interp" = Exact()
    rounding: Rounding = Rounding.NEAREST_EVEN
    underflow: str = "zero"

    def __post_init__(self) -> None:
        _check_int("LNS.int_bits", self.int_bits, 1, MAX_LNS_INT_BITS)
        _check_int("LNS.frac_bits", self.frac_bits, 0, MAX_LNS_FRAC_BITS)
        if not isinstance(self.adder, ADDER_TYPES):
            raise TypeError(f"LNS.adder must be Exact(), Table(n) or Interp(n), got {self.adder!r}")
        r = as_rounding(self.rounding, "LNS.rounding")
        if r not in LNS_ROUNDINGS:
            raise ValueError(f"LNS.rounding must be one of "
                             f"{[m.name for m in LNS_ROUNDINGS]} (rounding acts on the "
                             f"exponent), got {r.name}")
        object.__setattr__(self, "rounding", r)
        if self.underflow not in UNDERFLOWS:
            raise ValueError(f"LNS.underflow must be one of {UNDERFLOWS}, got {self.underflow!r}")

    @property
    def exp_bits(self) -> int:
        """W, the width of the exponent e."""
        return self.int_bits + self.frac_bits

    @property
    def e_min(self) -> int:
        return -(1 << (self.exp_bits - 1))

    @property
    def e_max(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def min_code(self) -> int:
        return -(1 << self.exp_bits)

    @property
    def max_code(self) -> int:
        return 1 << self.exp_bits

    def __repr__(self) -> str:
        extra = ""
        if not isinstance(self.adder, Exact):
            extra += f", adder={self.adder!r}"
        if self.rounding is not Rounding.NEAREST_EVEN:
            extra += f", rounding={self.rounding!r}"
        if self.underflow != "zero":
            extra += f", underflow={self.underflow!r}"
        return f"LNS({self.int_bits}, {self.frac_bits}{extra})"

    def __str__(self) -> str:
        s = f"lns{self.int_bits}.{self.frac_bits}"
        if not isinstance(self.adder, Exact):
            s += f":{self.adder}"
        if self.rounding is not Rounding.NEAREST_EVEN:
            s += ":" + self.rounding.short
        if self.underflow != "zero":
            s += f":underflow={self.underflow}"
        return s


Format = Union[Fixed, Binary, Ternary, LNS]
FORMAT_TYPES = (Fixed, Binary, Ternary, LNS)

FORMAT_GRAMMAR = """\
format   := fixed | binary | ternary            (case-insensitive, no spaces)
fixed    := ["u"] "fixed" BITS "." FRAC (":" ROUNDING | ":" OVERFLOW)*
            BITS in 1..62, FRAC an integer in -512..512 (e.g. fixed8.-2)
ROUNDING := "rne" | "rna" | "rtz" | "floor" | "ceil" | "sr"     (default rne)
OVERFLOW := "sat" | "wrap"                                     (default sat)
binary   := "binary" [":" ("mean_abs" | "per_channel")]
ternary  := "ternary" (":threshold=" ("twn" | FLOAT) | ":scale=" ("twn" | "none"))*
lns      := "lns" INT_BITS "." FRAC_BITS (":" ADDER | ":" LNS_ROUNDING | ":underflow=" ("zero" | "min"))*
            INT_BITS in 1..10, FRAC_BITS in 0..16 (e.g. lns5.10)
ADDER    := "exact" | "table" N | "interp" N ["g" GUARD]     (default exact; e.g. interp6g8)
LNS_ROUNDING := "rne" | "floor" | "ceil" | "sr"                 (default rne)
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
        if head.startswith("lns"):
            return _parse_lns(head, opts)
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


def _parse_adder(token: str) -> "Exact | Table | Interp":
    if token == "exact":
        return Exact()
    if token.startswith("table"):
        return Table(int(token[len("table"):]))
    body = token[len("interp"):]
    index, g, guard = body.partition("g")
    return Interp(int(index), int(guard)) if g else Interp(int(index))


def _parse_lns(head: str, opts: list[str]) -> LNS:
    int_s, dot, frac_s = head[len("lns"):].partition(".")
    if not dot:
        raise ValueError("lns needs INT_BITS.FRAC_BITS, e.g. lns5.10")
    kw: dict[str, object] = {}
    for opt in opts:
        if opt.startswith(("exact", "table", "interp")):
            key, val = "adder", _parse_adder(opt)
        elif opt.startswith("underflow="):
            key, val = "underflow", opt[len("underflow="):]
        else:
            key, val = "rounding", as_rounding(opt)
        if key in kw:
            raise ValueError(f"{key} given twice")
        kw[key] = val
    return LNS(int(int_s), int(frac_s), **kw)  # type: ignore[arg-type]
