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
FIXED_ROUNDINGS = (Rounding.NEAREST_EVEN, Rounding.NEAREST_AWAY, Rounding.TOWARD_ZERO,
                   Rounding.FLOOR, Rounding.CEIL, Rounding.STOCHASTIC)
FIXED_OVERFLOWS = (Overflow.SATURATE, Overflow.WRAP)


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
        r = as_rounding(self.rounding, "Fixed.rounding")
        if r not in FIXED_ROUNDINGS:
            raise ValueError(f"Fixed.rounding must be one of {[m.name for m in FIXED_ROUNDINGS]}, "
                             f"got {r.name} (a Float mode)")
        o = as_overflow(self.overflow, "Fixed.overflow")
        if o not in FIXED_OVERFLOWS:
            raise ValueError(f"Fixed.overflow must be SATURATE or WRAP, got {o.name} (a Float mode)")
        object.__setattr__(self, "rounding", r)
        object.__setattr__(self, "overflow", o)

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


FLOAT_SPECIALS = ("ieee", "fn", "fnuz", "p3109", "none")
"""Special-value layouts of a :class:`Float` (S: sign bit, then exponent, mantissa):

- ``"ieee"``: the all-ones exponent field is reserved: mantissa 0 is ±inf, others NaN;
- ``"fn"`` (OCP "finite"): no infinities; NaN only at the all-ones code S.1…1.1…1,
  every other code finite (E4M3: max 448);
- ``"fnuz"`` (finite, unsigned zero; P3109's finite domain): no infinities, no -0, the
  one NaN at the code of -0 (1.0…0.0…0);
- ``"p3109"`` (IEEE P3109's extended domain): as fnuz, plus ±inf at the largest positive
  and negative codes (0.1…1.1…1, 1.1…1.1…1);
- ``"none"``: every code is a finite number (the MX elements E2M3, E3M2, E2M1).
"""
FLOAT_ROUNDINGS = tuple(Rounding)
FLOAT_OVERFLOWS = (Overflow.SATURATE, Overflow.INFINITY)
INF_POLICIES = ("max", "inf", "nan")
MAX_FLOAT_EXP_BITS = 10
"""Widest exponent field of a Float: every value stays a normal float64."""
MAX_FLOAT_MAN_BITS = 23
"""Widest mantissa field of a Float (fp32's): products of two significands fit 48 bits."""
MAX_SR_BITS = 32
"""Most random bits of k-bit stochastic rounding (``sr_bits``)."""


def _float_natural_overflow(specials: str) -> Overflow:
    return Overflow.INFINITY if specials in ("ieee", "p3109") else Overflow.SATURATE


def _float_natural_inf(specials: str, overflow: Overflow) -> str:
    if specials in ("ieee", "p3109"):
        return "inf"
    return "max" if overflow is Overflow.SATURATE else "nan"


def _float_default_bias(exp_bits: int, specials: str) -> int:
    half = 1 << (exp_bits - 1)
    return half if specials in ("fnuz", "p3109") else half - 1


@dataclass(frozen=True)
class Float:
    """A binary floating-point format; codes are its bit patterns (int64 in
    0 .. 2**width - 1: sign bit on top, then ``exp_bits`` exponent and ``man_bits``
    mantissa bits).

    A code with exponent field E >= 1 and mantissa field M has the value
    (-1)**s * 2**(E - bias) * (1 + M / 2**man_bits); E = 0 holds zero and the subnormals
    (-1)**s * 2**(1 - bias) * M / 2**man_bits. ``bias`` defaults to 2**(exp_bits-1) - 1,
    or 2**(exp_bits-1) for the fnuz and p3109 layouts. ``specials`` places infinities and
    NaNs (:data:`FLOAT_SPECIALS`). ``signed=False`` has no sign bit (E8M0, UE4M3);
    ``zero=False`` (E8M0) makes E = 0 a normal binade, 2**-bias * (1 + M / 2**man_bits):
    no zero and no subnormals.

    Every operation rounds the exact result once (``rounding``: the modes of
    :class:`Rounding`, including ODD, round to odd), on the magnitude. STOCHASTIC rounds
    away from zero with probability equal to the dropped fraction φ: from 53 random bits
    when ``sr_bits`` is None (up iff u53 < φ·2**53, as every lowbit format), or, with
    ``sr_bits`` = k, the hardware way (``cvt.rs``, k = 8): the top k random bits r are
    added to floor(φ·2**k) and the sum's carry rounds up. Then:

    - a magnitude above the largest finite value follows ``overflow``: SATURATE gives
      ±max; INFINITY gives ±inf (NaN without infinities) for the nearest and stochastic
      modes and, as IEEE 754 says, ±max where the directed mode rounds toward zero
      (TOWARD_ZERO, ODD, FLOOR of a positive and CEIL of a negative value). Default:
      INFINITY for the layouts with infinities, SATURATE otherwise;
    - ``subnormals=False`` flushes a subnormal result to the zero of its sign (FTZ);
      ``daz=True`` reads subnormal operands as zero;
    - a magnitude below the smallest of a format without zero becomes the smallest.

    Special inputs: NaN gives the format's NaN; ±inf follows ``inf`` ("max": ±max,
    "inf": ±inf, "nan"; default "inf" for layouts with infinities, else "max" under
    SATURATE and "nan" under INFINITY). A negative value into an unsigned format
    saturates to the smallest value under SATURATE and is NaN under INFINITY; -0.0 into a
    format without -0 is +0. A NaN or inf that the format cannot hold is a ValueError.

    >>> Float(4, 3, specials="fn").max_value, Float(5, 2).max_value
    (Fraction(448, 1), Fraction(57344, 1))
    >>> str(Float(4, 3, specials="fn")), str(Float(8, 7)), str(Float(3, 2, specials="none"))
    ('e4m3', 'bf16', 'e3m2')
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    specials: str = "ieee"
    signed: bool = True
    zero: bool = True
    subnormals: bool = True
    daz: bool = False
    overflow: Overflow | None = None
    inf: str | None = None
    rounding: Rounding = Rounding.NEAREST_EVEN
    sr_bits: int | None = None

    def __post_init__(self) -> None:
        _check_int("Float.exp_bits", self.exp_bits, 1, MAX_FLOAT_EXP_BITS)
        _check_int("Float.man_bits", self.man_bits, 0, MAX_FLOAT_MAN_BITS)
        for name in ("signed", "zero", "subnormals", "daz"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Float.{name} must be a bool, got {getattr(self, name)!r}")
        if self.specials not in FLOAT_SPECIALS:
            raise ValueError(f"Float.specials must be one of {FLOAT_SPECIALS}, "
                             f"got {self.specials!r}")
        if self.bias is None:
            object.__setattr__(self, "bias", _float_default_bias(self.exp_bits, self.specials))
        _check_int("Float.bias", self.bias, -(1 << MAX_FLOAT_EXP_BITS),
                   1 << (MAX_FLOAT_EXP_BITS + 1))
        object.__setattr__(self, "rounding", as_rounding(self.rounding, "Float.rounding"))
        o = (_float_natural_overflow(self.specials) if self.overflow is None
             else as_overflow(self.overflow, "Float.overflow"))
        if o not in FLOAT_OVERFLOWS:
            raise ValueError(f"Float.overflow must be SATURATE or INFINITY, got {o.name}")
        object.__setattr__(self, "overflow", o)
        if self.inf is None:
            object.__setattr__(self, "inf", _float_natural_inf(self.specials, o))
        if self.inf not in INF_POLICIES:
            raise ValueError(f"Float.inf must be one of {INF_POLICIES}, got {self.inf!r}")
        if self.sr_bits is not None:
            _check_int("Float.sr_bits", self.sr_bits, 1, MAX_SR_BITS)
            if self.rounding is not Rounding.STOCHASTIC:
                raise ValueError(f"Float.sr_bits needs rounding=STOCHASTIC, "
                                 f"got {self.rounding.name}")
        if self.specials in ("fnuz", "p3109") and not self.signed:
            raise ValueError(f"Float.specials={self.specials!r} puts its NaN at the code of -0 "
                             "and needs signed=True")
        if not self.zero and (self.subnormals or self.signed):
            raise ValueError("Float.zero=False (E8M0-like: no zero, no subnormals) needs "
                             "subnormals=False and signed=False")
        if self.width > 32:
            raise ValueError(f"Float: a code of {self.width} bits (sign + exp_bits + man_bits); "
                             "the kernels hold at most 32")
        if self.max_field < (1 if self.zero else 0):
            raise ValueError(f"Float({self.exp_bits}, {self.man_bits}) with specials="
                             f"{self.specials!r} leaves no finite nonzero value")
        if self.max_exponent >= 1023 or self.min_exponent - self.man_bits <= -1022:
            raise ValueError(f"Float.bias={self.bias} puts values outside the normal float64 "
                             f"range (2^{self.min_exponent - self.man_bits} .. "
                             f"2^{self.max_exponent + 1}); the kernels decode through float64")
        if o is Overflow.INFINITY and not self.has_nan:
            raise ValueError("Float.overflow=INFINITY needs a format with inf or NaN "
                             f"(specials={self.specials!r} has neither)")
        if self.inf != "max" and not self.has_nan:
            raise ValueError(f"Float.inf={self.inf!r} needs a format with inf or NaN "
                             f"(specials={self.specials!r} has neither): use inf='max'")
        if self.inf == "inf" and not self.has_inf:
            object.__setattr__(self, "inf", "nan")  # no inf to give: "inf" means NaN here

    # -- layout ----------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Bits of a code: sign (if signed) + exponent + mantissa."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def has_inf(self) -> bool:
        """Whether the layout has infinities."""
        return self.specials in ("ieee", "p3109")

    @property
    def has_nan(self) -> bool:
        """Whether the layout has a NaN."""
        return self.specials != "none"

    @property
    def has_negative_zero(self) -> bool:
        """Whether -0 is a code of its own."""
        return self.signed and self.zero and self.specials not in ("fnuz", "p3109")

    @property
    def sign_bit(self) -> int:
        """The code's sign bit (0 when unsigned)."""
        return 1 << (self.exp_bits + self.man_bits) if self.signed else 0

    @property
    def max_field(self) -> int:
        """The magnitude bits (exponent and mantissa fields) of the largest finite value."""
        ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials == "ieee":
            return ones - (1 << self.man_bits)  # the all-ones exponent is reserved
        if self.specials in ("fn", "p3109"):
            return ones - 1  # S.1..1.1..1 is NaN (fn) or inf (p3109)
        return ones

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest normal binade: 1 - bias (-bias with zero=False)."""
        return (1 if self.zero else 0) - self.bias

    @property
    def max_exponent(self) -> int:
        """Exponent of the largest finite value."""
        return max(self.max_field >> self.man_bits, 1 if self.zero else 0) - self.bias

    @property
    def max_value(self) -> Fraction:
        """The largest finite value."""
        m = self.max_field & ((1 << self.man_bits) - 1)
        e = self.max_field >> self.man_bits
        if e == 0 and self.zero:  # only subnormals
            return Fraction(2) ** (1 - self.bias - self.man_bits) * m
        return Fraction(2) ** (e - self.bias - self.man_bits) * ((1 << self.man_bits) | m)

    @property
    def min_normal(self) -> Fraction:
        """The smallest positive normal value, 2**min_exponent."""
        return Fraction(2) ** self.min_exponent

    @property
    def min_value(self) -> Fraction:
        """The smallest positive value (a subnormal when there are any)."""
        if not self.zero:
            return self.min_normal
        return Fraction(2) ** (self.min_exponent - self.man_bits)

    @property
    def min_code(self) -> int:
        return 0

    @property
    def max_code(self) -> int:
        return (1 << self.width) - 1

    @property
    def nan_code(self) -> int | None:
        """The NaN an operation returns (None without NaN): ieee: +, all-ones exponent,
        top mantissa bit (a quiet NaN); fn: the positive all-ones code; fnuz, p3109: the
        code of -0."""
        if self.specials == "ieee":
            top = 1 << (self.man_bits - 1) if self.man_bits else 0
            return ((1 << self.exp_bits) - 1) << self.man_bits | top
        if self.specials == "fn":
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials in ("fnuz", "p3109"):
            return self.sign_bit
        return None

    @property
    def inf_code(self) -> int | None:
        """The code of +inf (None without infinities); -inf is it with the sign bit."""
        if self.specials == "ieee":
            return ((1 << self.exp_bits) - 1) << self.man_bits
        if self.specials == "p3109":
            return (1 << (self.exp_bits + self.man_bits)) - 1
        return None

    def _layout(self) -> tuple:
        return (self.exp_bits, self.man_bits, self.bias, self.specials, self.signed, self.zero)

    def __repr__(self) -> str:
        extra = ""
        if self.bias != _float_default_bias(self.exp_bits, self.specials):
            extra += f", bias={self.bias}"
        if self.specials != "ieee":
            extra += f", specials={self.specials!r}"
        for name, default in (("signed", True), ("zero", True), ("subnormals", True),
                              ("daz", False)):
            if getattr(self, name) != default:
                extra += f", {name}={getattr(self, name)}"
        if self.overflow is not _float_natural_overflow(self.specials):
            extra += f", overflow={self.overflow!r}"
        if self.inf != _float_natural_inf(self.specials, self.overflow):
            extra += f", inf={self.inf!r}"
        if self.rounding is not Rounding.NEAREST_EVEN:
            extra += f", rounding={self.rounding!r}"
        if self.sr_bits is not None:
            extra += f", sr_bits={self.sr_bits}"
        return f"Float({self.exp_bits}, {self.man_bits}{extra})"

    def __str__(self) -> str:
        base = FLOAT_PRESETS_BY_LAYOUT.get(self._layout())
        ref = FLOAT_PRESETS[base] if base else None
        opts = []
        if base is None:
            base = f"float{self.exp_bits}.{self.man_bits}"
            if self.specials != "ieee":
                opts.append(self.specials)
            if self.bias != _float_default_bias(self.exp_bits, self.specials):
                opts.append(f"bias={self.bias}")
            if not self.signed:
                opts.append("unsigned")
            if not self.zero:
                opts.append("nozero")
            ref = Float(self.exp_bits, self.man_bits, self.bias, self.specials, self.signed,
                        self.zero, subnormals=self.zero)
        if self.subnormals != ref.subnormals:
            opts.append("ftz" if not self.subnormals else "subnormals")
        if self.daz:
            opts.append("daz")
        if self.overflow is not ref.overflow:
            opts.append(self.overflow.short)
        if self.inf != _float_natural_inf(self.specials, self.overflow):
            opts.append(f"inf={self.inf}")
        if self.rounding is not Rounding.NEAREST_EVEN:
            opts.append(f"sr{self.sr_bits}" if self.sr_bits else self.rounding.short)
        return ":".join([base] + opts)


def _float_preset_fields() -> dict[str, dict]:
    p = {
        "e4m3": dict(exp_bits=4, man_bits=3, specials="fn"),
        "e5m2": dict(exp_bits=5, man_bits=2),
        "e4m3fnuz": dict(exp_bits=4, man_bits=3, specials="fnuz"),
        "e5m2fnuz": dict(exp_bits=5, man_bits=2, specials="fnuz"),
        "e3m4": dict(exp_bits=3, man_bits=4),
        "fp16": dict(exp_bits=5, man_bits=10),
        "bf16": dict(exp_bits=8, man_bits=7),
        "tf32": dict(exp_bits=8, man_bits=10),
        "fp32": dict(exp_bits=8, man_bits=23),
        "e2m3": dict(exp_bits=2, man_bits=3, specials="none"),
        "e3m2": dict(exp_bits=3, man_bits=2, specials="none"),
        "e2m1": dict(exp_bits=2, man_bits=1, specials="none"),
        "e8m0": dict(exp_bits=8, man_bits=0, specials="fn", signed=False, zero=False,
                     subnormals=False),
        "ue4m3": dict(exp_bits=4, man_bits=3, specials="fn", signed=False),
    }
    for precision in range(1, 8):  # IEEE P3109 binary8pP, extended domain
        p[f"binary8p{precision}"] = dict(exp_bits=8 - precision, man_bits=precision - 1,
                                         specials="p3109", bias=63 if precision == 1 else None)
    return p


FLOAT_PRESET_FIELDS = _float_preset_fields()
FLOAT_PRESETS = {name: Float(**kw) for name, kw in FLOAT_PRESET_FIELDS.items()}
"""The named float formats: OCP FP8 (e4m3, e5m2), AMD's fnuz FP8, e3m4, IEEE fp16, bf16,
tf32, fp32, the MX elements (e2m3, e3m2, e2m1), the scales e8m0 and ue4m3 (NVFP4's), and
IEEE P3109 binary8p1..binary8p7."""
FLOAT_PRESETS_BY_LAYOUT = {f._layout(): name for name, f in FLOAT_PRESETS.items()}



FORMAT_GRAMMAR = """\
format   := fixed | binary | ternary | lns | float | block     (case-insensitive, no spaces)
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
float    := (PRESET | "float" EXP_BITS "." MAN_BITS) (":" FLOAT_OPT)*
            EXP_BITS in 1..10, MAN_BITS in 0..23, at most 32 bits in all (e.g. float5.2)
PRESET   := "e4m3" | "e5m2" | "e4m3fnuz" | "e5m2fnuz" | "e3m4" | "fp16" | "bf16" | "tf32"
          | "fp32" | "e2m3" | "e3m2" | "e2m1" | "e8m0" | "ue4m3" | "binary8p" P (P in 1..7)
FLOAT_OPT := "ieee" | "fn" | "fnuz" | "p3109" | "none"          (special values; default ieee)
          | "bias=" INT | "unsigned" | "nozero"                  (layout)
          | "ftz" | "subnormals" | "daz"                         (subnormal results / operands)
          | "sat" | "inf"                        (overflow: +-max, or +-inf / NaN; see Float)
          | "inf=" ("max" | "inf" | "nan")                        (what an inf input becomes)
          | ROUNDING | "odd" | "sr" K                      (K random bits, e.g. sr8; default rne)
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
        if head in FLOAT_PRESET_FIELDS or head.startswith("float"):
            return _parse_float(head, opts)
        if head in BLOCK_PRESET_FIELDS:
            return parse_block(head, opts)
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
        if opt in ("sat", "wrap", "inf"):
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


def _parse_float(head: str, opts: list[str]) -> Float:
    if head in FLOAT_PRESET_FIELDS:
        kw: dict[str, object] = dict(FLOAT_PRESET_FIELDS[head])
        generic = False
    else:
        exp_s, dot, man_s = head[len("float"):].partition(".")
        if not dot:
            raise ValueError("float needs EXP_BITS.MAN_BITS, e.g. float5.2")
        kw = {"exp_bits": int(exp_s), "man_bits": int(man_s)}
        generic = True
    seen: set[str] = set()

    def put(key: str, value: object) -> None:
        if key in seen:
            raise ValueError(f"{key} given twice")
        seen.add(key)
        kw[key] = value

    for opt in opts:
        if opt in FLOAT_SPECIALS or opt.startswith("bias=") or opt in ("unsigned", "nozero"):
            if not generic:
                raise ValueError(f"{opt!r} changes the layout of the preset {head!r}: "
                                 f"write it as floatE.M:{opt}")
            if opt in FLOAT_SPECIALS:
                put("specials", opt)
            elif opt.startswith("bias="):
                put("bias", int(opt[len("bias="):]))
            elif opt == "unsigned":
                put("signed", False)
            else:
                put("zero", False)
                kw.setdefault("subnormals", False)
        elif opt in ("ftz", "subnormals"):
            put("subnormals", opt == "subnormals")
        elif opt == "daz":
            put("daz", True)
        elif opt in ("sat", "inf"):
            put("overflow", as_overflow(opt))
        elif opt.startswith("inf="):
            put("inf", opt[len("inf="):])
        elif opt.startswith("sr") and opt[2:].isdigit():
            put("rounding", Rounding.STOCHASTIC)
            kw["sr_bits"] = int(opt[2:])
        else:
            put("rounding", as_rounding(opt))
    return Float(**kw)  # type: ignore[arg-type]


# Block formats (lowbit.numerics.blocks) build on Float and Fixed above.
from lowbit.numerics.blocks import (  # noqa: E402
    BLOCK_GRAMMAR,
    BLOCK_PRESET_FIELDS,
    BLOCK_PRESETS,
    Block,
    parse_block,
)

Format = Union[Fixed, Binary, Ternary, LNS, Float, Block]
FORMAT_TYPES = (Fixed, Binary, Ternary, LNS, Float, Block)
FORMAT_GRAMMAR += BLOCK_GRAMMAR
