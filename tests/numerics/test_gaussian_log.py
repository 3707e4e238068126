"""The adder tables the kernels index equal the per-z mpmath reference for every z."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings

from lowbit.numerics import LNS, Exact, Interp, Rounding, Table
from lowbit.numerics import gaussian_log as gl
from lowbit.numerics import testing as lt


def lookup(t: gl.AdderTables, which: int, zabs: int) -> int:
    """The kernels' table lookup, written out in Python."""
    if zabs < (1 << t.k):
        return int(t.sub[which, zabs])
    q, r = zabs >> t.k, zabs & ((1 << t.k) - 1)
    if q > t.last:
        return int(t.beyond[which]) << t.guard
    lo = int(t.tab[which, q])
    if t.interp:
        return lo + (((int(t.tab[which, q + 1]) - lo) * r) >> t.k)
    return lo


EXHAUSTIVE = [LNS(3, 6), LNS(3, 6, Table(4)), LNS(3, 6, Interp(4)), LNS(3, 6, rounding="floor"),
              LNS(3, 6, Table(3), rounding="ceil"), LNS(3, 6, Interp(3, 4), rounding="sr"),
              LNS(2, 0), LNS(2, 1, Interp(1)), LNS(5, 7, rounding="sr"), LNS(5, 10, Interp(6))]


@pytest.mark.parametrize("fmt", EXHAUSTIVE, ids=str)
def test_tables_equal_reference_for_every_z(fmt):
    t = gl.adder_tables(fmt)
    top = max((t.last + 2) << t.k, 64)
    for which in (gl.SB, gl.DB):
        for z in range(1 if which == gl.DB else 0, top):
            assert lookup(t, which, z) == gl.reference_value(which, z, fmt), (which, z)


@settings(max_examples=25)
@given(lt.lns_formats(max_frac_bits=9), lt.data())
def test_tables_equal_reference_sampled(fmt, data):
    t = gl.adder_tables(fmt)
    for z in data.draw(lt.st.lists(lt.st.integers(1, (t.last + 3) << t.k), min_size=1, max_size=30)):
        for which in (gl.SB, gl.DB):
            assert lookup(t, which, z) == gl.reference_value(which, z, fmt)


def test_exact_is_correctly_rounded():
    """Exact(): sb and db at F bits are the nearest integers to 2**F f(z), checked in mpmath."""
    fmt = LNS(5, 8)
    for z in [1, 2, 3, 100, 255, 256, 1000, 2400, 2477]:
        x = -z / 2**8
        for which, f in ((gl.SB, lambda x: mpmath.log(1 + mpmath.power(2, x), 2)),
                         (gl.DB, lambda x: mpmath.log(1 - mpmath.power(2, x), 2))):
            with mpmath.workdps(60):
                expected = int(mpmath.nint(f(mpmath.mpf(x)) * 2**8))
            assert gl.reference_value(which, z, fmt) == expected


def test_essential_zero():
    """Past the essential zero, sb rounds to 0; just before it, to 1 ulp."""
    for F in (4, 7, 10):
        ez = gl.essential_zero(F)
        fmt = LNS(5, F)
        assert gl.reference_value(gl.SB, ez, fmt) == 1
        assert gl.reference_value(gl.SB, ez + 1, fmt) == 0
        assert ez == pytest.approx((F + 1 - math.log2(math.log(2))) * 2**F, abs=2)
    assert gl.adder_tables(LNS(5, 10)).last == gl.essential_zero(10)


def test_geometry_of_hardware_tables():
    ez = gl.essential_zero(10)  # 11805 < 2**14
    assert gl.geometry(LNS(5, 10, Table(8))).k == 14 - 8
    assert gl.geometry(LNS(5, 10, Table(8))).coverage > ez
    assert gl.geometry(LNS(5, 10, Interp(6, 10))).guard == 10
    assert gl.geometry(LNS(5, 10, rounding=Rounding.STOCHASTIC)).guard == 20


@pytest.mark.parametrize("F, rounding", [(4, Rounding.NEAREST_EVEN), (6, Rounding.FLOOR),
                                         (5, Rounding.CEIL)])
def test_cast_thresholds_bracket_the_irrational_points(F, rounding):
    th = gl.cast_thresholds(F, rounding)
    assert np.all(np.diff(th) > 0) and th[0] >= 1.0 and th[-1] < 2.0
    with mpmath.workdps(60):
        for t in th:
            if t == 1.0:
                continue
            nxt = math.nextafter(t, 2.0)
            j = mpmath.log(mpmath.mpf(t), 2) * 2**F
            j2 = mpmath.log(mpmath.mpf(nxt), 2) * 2**F
            boundary = (int(mpmath.floor(j2 - 0.5)) + 0.5) if rounding is Rounding.NEAREST_EVEN \
                else int(mpmath.floor(j2))
            assert j < boundary <= j2  # the irrational point lies between t and the next float


def test_mantissa_table_is_correctly_rounded():
    tab = gl.mantissa_table(6)
    for j in (0, 1, 17, 63):
        exact = mpmath.power(2, mpmath.mpf(j) / 64)
        assert abs(mpmath.mpf(tab[j]) - exact) <= abs(mpmath.mpf(math.nextafter(tab[j], 3)) - exact)
        assert abs(mpmath.mpf(tab[j]) - exact) <= abs(mpmath.mpf(math.nextafter(tab[j], 0)) - exact)


def test_bad_lns_formats():
    with pytest.raises(ValueError, match="LNS.int_bits must be in 1..10, got 0"):
        LNS(0, 4)
    with pytest.raises(ValueError, match="LNS.frac_bits must be in 0..16, got 17"):
        LNS(4, 17)
    with pytest.raises(ValueError, match="LNS.rounding must be one of .* got TOWARD_ZERO"):
        LNS(4, 4, rounding="rtz")
    with pytest.raises(ValueError, match="LNS.underflow must be one of"):
        LNS(4, 4, underflow="flush")
    with pytest.raises(TypeError, match="LNS.adder must be"):
        LNS(4, 4, adder="exact")
    with pytest.raises(ValueError, match="Table.index_bits must be in 1..24"):
        Table(0)
    with pytest.raises(ValueError, match="Interp.guard_bits must be in 0..30"):
        Interp(4, 31)
    assert repr(LNS(5, 10)) == "LNS(5, 10)" and Exact() == Exact()
