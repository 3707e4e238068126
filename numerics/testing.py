"""Hypothesis strategies for lowbit formats, codes and awkward values.

Use them to property-test your own kernels against :mod:`lowbit.numerics.reference`::

    from hypothesis import given
    from lowbit.numerics import testing as lt
    from lowbit.numerics.reference import fixed as ref

    @given(lt.fixed_formats(max_bits=16), lt.data())
    def test_my_cast(fmt, data):
        x = data.draw(lt.float_arrays(fmt))
        assert (my_cast(x, fmt) == ref.cast(x, fmt)).all()

Strategies:

- :func:`fixed_formats`, :func:`binary_formats`, :func:`ternary_formats`,
  :func:`lns_formats` (with :func:`adders`), :func:`formats` -- valid formats,
  every rounding, overflow and underflow mode; :func:`float_formats` -- every float
  layout, mode and preset;
- :func:`codes` -- int64 code arrays of a format, biased to the extreme codes;
- :func:`values` / :func:`float_arrays` -- floats that stress a format: exact
  ties, values a hair off a tie, the edges of the range and just beyond them,
  -0.0, subnormals, huge values and (optionally) infinities;
- :func:`shapes` and :func:`seeds`.

``data`` is re-exported from hypothesis for convenience.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowbit.numerics.formats import (
    FIXED_OVERFLOWS,
    FIXED_ROUNDINGS,
    FLOAT_PRESETS,
    FLOAT_SPECIALS,
    LNS,
    LNS_ROUNDINGS,
    MAX_BITS,
    MAX_FLOAT_EXP_BITS,
    MAX_SR_BITS,
    UNDERFLOWS,
    Binary,
    Exact,
    Fixed,
    Float,
    Format,
    Interp,
    Table,
    Ternary,
)
from lowbit.numerics.modes import Overflow, Rounding

data = st.data

SPECIAL_FLOATS = (0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300,
                  1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308)


def fixed_formats(min_bits: int = 1, max_bits: int = MAX_BITS, min_frac: int = -8,
                  max_frac: int = 70, roundings=FIXED_ROUNDINGS, overflows=FIXED_OVERFLOWS,
                  signed=(True, False)) -> st.SearchStrategy[Fixed]:
    """Valid :class:`Fixed` formats within the given bounds."""
    return st.builds(
        Fixed,
        bits=st.integers(min_bits, max_bits),
        frac=st.integers(min_frac, max_frac),
        signed=st.sampled_from(signed),
        rounding=st.sampled_from(roundings),
        overflow=st.sampled_from(overflows),
    )


def binary_formats() -> st.SearchStrategy[Binary]:
    """Every :class:`Binary` format."""
    return st.sampled_from([Binary(), Binary("mean_abs"), Binary("per_channel")])


def ternary_formats() -> st.SearchStrategy[Ternary]:
    """:class:`Ternary` formats: the TWN rule or an absolute threshold, with or without scale."""
    threshold = st.one_of(st.just("twn"), st.floats(0, 4, allow_nan=False))
    return st.builds(Ternary, threshold=threshold, scale=st.sampled_from([None, "twn"]))


def adders(max_index_bits: int = 10) -> st.SearchStrategy:
    """LNS adder specs: Exact, Table and Interp with small tables."""
    return st.one_of(st.just(Exact()), st.builds(Table, st.integers(1, max_index_bits)),
                     st.builds(Interp, st.integers(1, max_index_bits), st.integers(0, 12)))


def lns_formats(max_int_bits: int = 6, min_frac_bits: int = 0, max_frac_bits: int = 10,
                roundings=LNS_ROUNDINGS, underflows=UNDERFLOWS) -> st.SearchStrategy[LNS]:
    """Valid :class:`LNS` formats (small by default: their adder tables are cheap)."""
    return st.builds(LNS, int_bits=st.integers(1, max_int_bits),
                     frac_bits=st.integers(min_frac_bits, max_frac_bits), adder=adders(),
                     rounding=st.sampled_from(roundings), underflow=st.sampled_from(underflows))


def float_formats(max_exp_bits: int = MAX_FLOAT_EXP_BITS, max_man_bits: int = 10,
                  specials=FLOAT_SPECIALS, roundings=tuple(Rounding),
                  presets: bool = True) -> st.SearchStrategy[Float]:
    """Valid :class:`Float` formats: every layout, bias near its default, FTZ and DAZ,
    both overflow modes, every inf policy and rounding mode (k-bit SR included); with
    ``presets`` also the named formats and their variants."""
    @st.composite
    def build(draw) -> Float:
        while True:
            e = draw(st.integers(1, max_exp_bits))
            m = draw(st.integers(0, max_man_bits))
            sp = draw(st.sampled_from(specials))
            signed = draw(st.booleans()) if sp not in ("fnuz", "p3109") else True
            zero = draw(st.booleans()) if not signed and draw(st.integers(0, 4)) == 0 else True
            half = 1 << (e - 1)
            bias = draw(st.one_of(st.none(), st.integers(half - 3, half + 3)))
            rounding = draw(st.sampled_from(roundings))
            sr_bits = (draw(st.one_of(st.none(), st.integers(1, MAX_SR_BITS)))
                       if rounding is Rounding.STOCHASTIC else None)
            kw = dict(exp_bits=e, man_bits=m, bias=bias, specials=sp, signed=signed, zero=zero,
                      subnormals=draw(st.booleans()) if zero else False,
                      daz=draw(st.booleans()), rounding=rounding, sr_bits=sr_bits,
                      overflow=draw(st.sampled_from([None, Overflow.SATURATE,
                                                     Overflow.INFINITY])),
                      inf=draw(st.sampled_from([None, "max", "inf", "nan"])))
            if sp == "none":
                kw["overflow"], kw["inf"] = Overflow.SATURATE, "max"
            try:
                return Float(**kw)
            except ValueError:
                continue  # e.g. a layout with no finite value: draw again

    out = build()
    if presets:
        names = sorted(FLOAT_PRESETS)
        preset = st.builds(lambda n, r: dataclasses.replace(FLOAT_PRESETS[n], rounding=r),
                           st.sampled_from(names),
                           st.sampled_from([r for r in roundings]))
        out = st.one_of(out, preset)
    return out


def formats(max_bits: int = MAX_BITS) -> st.SearchStrategy[Format]:
    """Any format."""
    return st.one_of(fixed_formats(max_bits=max_bits), binary_formats(), ternary_formats(),
                     lns_formats())


def shapes(max_dims: int = 2, max_side: int = 6, min_dims: int = 0) -> st.SearchStrategy:
    """Array shapes, including 0-size and 1-element ones."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for stochastic rounding (0..2**64-1, biased to small and extreme ones)."""
    return st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1), st.just(2**64 - 1))


def codes(fmt: Format, shape=None) -> st.SearchStrategy[np.ndarray]:
    """int64 arrays of valid codes of ``fmt``, biased to the extreme codes."""
    if isinstance(fmt, Binary):
        elems = st.sampled_from([-1, 1])
    elif isinstance(fmt, LNS):  # 0 is zero; the extremes are the largest magnitudes
        lo, hi = fmt.min_code, fmt.max_code
        elems = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1, -1]))
    else:
        lo, hi = fmt.min_code, fmt.max_code
        elems = st.one_of(st.integers(lo, hi), st.sampled_from(sorted({lo, hi, 0, min(hi, 1),
                                                                        max(lo, -1)})))
    return hnp.arrays(np.int64, shape if shape is not None else shapes(), elements=elems)


def values(fmt: Format | None = None, allow_infinity: bool = False) -> st.SearchStrategy[float]:
    """Floats that stress ``fmt``: grid points, exact ties, a hair off ties, range edges."""
    general = st.floats(allow_nan=False, allow_infinity=allow_infinity, width=64)
    special = st.sampled_from(SPECIAL_FLOATS)
    out = [general, special]
    if allow_infinity:
        out.append(st.sampled_from([math.inf, -math.inf]))
    if isinstance(fmt, Fixed):
        out.append(_grid_values(fmt))
    elif isinstance(fmt, Ternary) and isinstance(fmt.threshold, float):
        t = fmt.threshold
        out.append(st.sampled_from([t, -t, math.nextafter(t, 9), -math.nextafter(t, 9)]))
    out.append(st.floats(-4, 4, allow_nan=False))
    return st.one_of(*out)


def _grid_values(fmt: Fixed) -> st.SearchStrategy[float]:
    """(code + offset) * ulp for codes near the edges and offsets at and around ties."""
    lo, hi = fmt.min_code, fmt.max_code
    code = st.one_of(st.integers(lo - 2, hi + 2), st.sampled_from([lo, hi, lo - 1, hi + 1, 0]))
    offset = st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(-1, 2), Fraction(1, 4),
                              Fraction(1, 2) + Fraction(1, 2**24), Fraction(1, 2) - Fraction(1, 2**24),
                              Fraction(1, 2**30), -Fraction(1, 2**30)])

    def build(c: int, off: Fraction) -> float:
        v = (c + off) * fmt.ulp
        try:
            return float(v)
        except OverflowError:
            return math.copysign(1.7976931348623157e308, v)

    return st.builds(build, code, offset)


def float_arrays(fmt: Format | None = None, shape=None, allow_infinity: bool = False,
                 dtype=np.float64) -> st.SearchStrategy[np.ndarray]:
    """float arrays (float64 or float32) drawn from :func:`values`."""
    elems = values(fmt, allow_infinity)
    if np.dtype(dtype) == np.float32:
        elems = elems.map(lambda v: float(np.float32(v)) if abs(v) < 3.4e38 or math.isinf(v)
                          else math.copysign(3.4e38, v))
    return hnp.arrays(dtype, shape if shape is not None else shapes(), elements=elems)
