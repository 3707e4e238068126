"""Numba == C == reference for every LNS operation, adder spec and rounding mode."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit.emulators as E
from lowbit.numerics import LNS, Exact, Fixed, Interp, Rounding, Table
from lowbit.numerics import testing as lt
from lowbit.numerics.reference import lns as ref
from tests.emulators.helpers import assert_every_backend_gives

CASTABLE = [r for r in (Rounding.NEAREST_EVEN, Rounding.FLOOR, Rounding.CEIL)]


def _shapes():
    return lt.shapes(max_dims=2, max_side=5)


class TestCast:
    """Floats -> LNS rounds log2|x| in the log domain, exactly."""

    @given(lt.lns_formats(roundings=CASTABLE), st.data())
    def test_cast(self, fmt, data):
        dtype = data.draw(st.sampled_from([np.float64, np.float32]))
        x = data.draw(lt.float_arrays(None, _shapes(), allow_infinity=True, dtype=dtype))
        assert_every_backend_gives(lambda be: E.cast(x, fmt, backend=be), ref.cast(x.astype(np.float64), fmt),
                         repr(fmt))

    @given(st.integers(0, 10), st.integers(1, 8), st.sampled_from(CASTABLE))
    def test_powers_of_two_and_their_neighbours(self, F, ib, rounding):
        fmt = LNS(ib, F, rounding=rounding)
        p = np.array([2.0**k for k in range(-4, 4)])
        x = np.concatenate([p, np.nextafter(p, 0), np.nextafter(p, 9), -p])
        assert_every_backend_gives(lambda be: E.cast(x, fmt, backend=be), ref.cast(x, fmt))

    def test_to_float_round_trips_every_code(self, backend):
        """Every code of LNS(3, 6) decodes to the float nearest its value and casts back."""
        fmt = LNS(3, 6)
        codes = np.arange(fmt.min_code, fmt.max_code + 1)
        x = E.from_codes(codes, fmt)
        f = x.to_float()
        assert np.array_equal(E.cast(f, fmt, backend=backend).codes, codes)
        for c in (1, 200, -313, fmt.max_code):
            assert f[c - fmt.min_code] == ref.to_float(c, fmt)


class TestConvert:
    """LNS -> LNS re-rounds exponents; LNS -> Fixed rounds the exact value once."""

    @given(lt.lns_formats(max_frac_bits=8), lt.lns_formats(max_frac_bits=8), st.data())
    def test_lns_to_lns(self, src, dst, data):
        codes = data.draw(lt.codes(src, _shapes()))
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.cast(E.from_codes(codes, src), dst, seed=seed, backend=be),
                         ref.convert(codes, src, dst, seed))

    @settings(max_examples=50)
    @given(lt.lns_formats(max_int_bits=4, max_frac_bits=6), lt.fixed_formats(max_bits=20, max_frac=12),
           st.data())
    def test_lns_to_fixed_matches_mpmath(self, src, dst, data):
        codes = data.draw(lt.codes(src, (6,)))
        got = E.cast(E.from_codes(codes, src), dst).codes
        for c, g in zip(codes.tolist(), got.tolist()):
            d = ref.decode(c, src)
            if d is None or dst.rounding is Rounding.STOCHASTIC:
                continue
            with mpmath.workdps(60):
                y = mpmath.power(2, mpmath.mpf(d[1]) / 2**src.frac_bits + dst.frac) * (-1) ** d[0]
                if dst.rounding is Rounding.FLOOR:
                    n = int(mpmath.floor(y))
                elif dst.rounding is Rounding.CEIL:
                    n = int(mpmath.ceil(y))
                elif dst.rounding is Rounding.TOWARD_ZERO:
                    n = int(mpmath.floor(y)) if y > 0 else int(mpmath.ceil(y))
                else:
                    n = int(mpmath.nint(y)) if abs(y - mpmath.floor(y) - 0.5) > 1e-30 else None
            if n is None:
                continue  # an exact tie (a power of two): checked by the reference's own tests
            expected = min(max(n, dst.min_code), dst.max_code) if dst.overflow.name == "SATURATE" \
                else ((n - dst.min_code) % (1 << dst.bits)) + dst.min_code
            assert g == expected, (c, d)


class TestArithmetic:
    """Element-wise add, sub, mul, div equal the reference; x - x is exactly 0."""

    @given(lt.lns_formats(), st.data())
    def test_elementwise(self, fmt, data):
        ib = data.draw(st.integers(1, 6))
        fb = LNS(ib, fmt.frac_bits)
        shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_side=4)
                                     ).input_shapes
        a = data.draw(lt.codes(fmt, shape_a))
        b = data.draw(lt.codes(fb, shape_b))
        seed = data.draw(lt.seeds())
        ea, eb = E.from_codes(a, fmt), E.from_codes(b, fb)
        for op, fn in (("add", ref.add), ("sub", ref.sub), ("mul", ref.mul)):
            assert_every_backend_gives(lambda be: getattr(E, op)(ea, eb, fmt, seed=seed, backend=be),
                             fn(a, fmt, b, fb, fmt, seed), f"{op} {fmt!r}")
        if not (b == 0).any():
            assert_every_backend_gives(lambda be: E.div(ea, eb, fmt, backend=be), ref.div(a, fmt, b, fb, fmt),
                             "div")

    def test_x_minus_x_is_zero(self, backend):
        """xlns returns tiny nonzero values for x - x on arrays."""
        x = E.cast(np.random.default_rng(0).standard_normal(1000), LNS(5, 10))
        assert not E.sub(x, x, backend=backend).codes.any()
        for adder in (Table(6), Interp(6)):
            y = E.cast(x, LNS(5, 10, adder))
            assert not E.sub(y, y, backend=backend).codes.any()


class TestExhaustive:
    """LNS(3, 6): every pair of the 1025 codes, every adder, equals the reference."""

    @pytest.mark.parametrize("fmt", [LNS(3, 6), LNS(3, 6, Table(5)), LNS(3, 6, Interp(4)),
                                     LNS(3, 6, rounding="sr", underflow="min")], ids=str)
    def test_every_pair(self, fmt):
        codes = np.arange(fmt.min_code, fmt.max_code + 1)
        a = np.repeat(codes, codes.size)
        b = np.tile(codes, codes.size)
        expected = np.array([ref.add_codes(x, fmt, y, fmt, fmt,
                                           ref._u53(fmt, 7, i))
                             for i, (x, y) in enumerate(zip(a.tolist(), b.tolist()))])
        ea, eb = E.from_codes(a, fmt), E.from_codes(b, fmt)
        assert_every_backend_gives(lambda be: E.add(ea, eb, seed=7, backend=be), expected, "add")
        if fmt.adder == Exact() and fmt.rounding is Rounding.NEAREST_EVEN:
            assert_every_backend_gives(lambda be: E.mul(ea, eb, backend=be), ref.mul(a, fmt, b, fmt, fmt), "mul")


class TestAccumulation:
    """matmul and sum: sequential, pairwise, Kahan, finer accumulators."""

    @given(lt.lns_formats(max_frac_bits=8), st.data())
    def test_matmul(self, fmt, data):
        M, K, N = (data.draw(st.integers(0, 4)) for _ in range(3))
        a = data.draw(lt.codes(fmt, (M, K)))
        b = data.draw(lt.codes(fmt, (K, N)))
        extra = data.draw(st.integers(0, 3))
        acc = LNS(data.draw(st.integers(1, 6)), min(fmt.frac_bits + extra, 10), fmt.adder,
                  data.draw(st.sampled_from([Rounding.NEAREST_EVEN, fmt.rounding])))
        order = data.draw(st.sampled_from(["sequential", "pairwise"]))
        compensated = order == "sequential" and data.draw(st.booleans())
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(
            lambda be: E.matmul(E.from_codes(a, fmt), E.from_codes(b, fmt), fmt, acc, order,
                                compensated, seed=seed, backend=be),
            ref.matmul(a, fmt, b, fmt, fmt, acc, order, compensated, seed),
            f"{acc!r} {order} compensated={compensated}")

    @given(lt.lns_formats(max_frac_bits=8), st.data())
    def test_sum(self, fmt, data):
        shape = data.draw(lt.shapes(max_dims=2, max_side=6))
        a = data.draw(lt.codes(fmt, shape))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))
                         if shape else st.none())
        order = data.draw(st.sampled_from(["sequential", "pairwise"]))
        compensated = order == "sequential" and data.draw(st.booleans())
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.sum(E.from_codes(a, fmt), axis, None, None, order,
                                          compensated, seed=seed, backend=be),
                         ref.sum(a, fmt, axis, fmt, None, order, compensated, seed))

    def test_xlns_stall_and_kahan(self, backend):
        """Adding 0.1 4000 times with 10 fractional bits stalls at 295.5; Kahan does not."""
        fmt = LNS(5, 10)
        x = E.cast(np.full(4000, 0.1), fmt)
        exact = 4000 * float(x.to_float()[0])
        plain = float(E.sum(x, backend=backend).to_float())
        kahan = float(E.sum(x, compensated=True, backend=backend).to_float())
        assert plain == pytest.approx(295.5, abs=0.1)
        eps = 2.0 ** (2.0**-11) - 1
        assert abs(kahan - exact) <= (2 * eps + 2 * 4000 * eps**2) * exact

    @pytest.mark.parametrize("F", [7, 10])
    def test_kahan_error_bound_on_adversarial_sums(self, backend, F):
        """A large term then many small ones: |Kahan - exact| <= (2 eps + 2 N eps^2) sum|x|,
        eps = 2**(2**-(F+1)) - 1 the relative error of one LNS rounding; plain rounding
        exceeds that bound."""
        fmt = LNS(5, F)
        n = 500
        x = E.cast(np.concatenate([[100.0], np.full(n, 0.05)]), fmt)
        vals = x.to_float()
        exact = math.fsum(vals)
        eps = 2.0 ** (2.0 ** -(F + 1)) - 1
        bound = (2 * eps + 2 * n * eps**2) * math.fsum(abs(vals))
        kahan = float(E.sum(x, compensated=True, backend=backend).to_float())
        plain = float(E.sum(x, backend=backend).to_float())
        assert abs(kahan - exact) <= bound
        assert abs(plain - exact) > bound


class TestErrors:
    """Bad LNS input raises a clear error."""

    def test_errors(self, backend):
        f = LNS(4, 6)
        x = E.cast(np.array([1.0, 2.0]), f, backend=backend)
        with pytest.raises(ValueError, match="stochastic rounding of log2|x| cannot be decided"):
            E.cast(np.array([1.0]), LNS(4, 6, rounding="sr"), backend=backend)
        with pytest.raises(ValueError, match=r"x\[1\] is NaN"):
            E.cast(np.array([1.0, np.nan]), f, backend=backend)
        with pytest.raises(ValueError, match="must share frac_bits"):
            E.add(x, E.cast(np.array([1.0, 2.0]), LNS(4, 7)), f, backend=backend)
        with pytest.raises(ValueError, match=r"division by zero at b\[1\]"):
            E.div(x, E.from_codes(np.array([3, 0]), f), backend=backend)
        with pytest.raises(ValueError, match="b must be an LNS format"):
            E.add(x, E.cast(np.array([1.0, 2.0]), Fixed(8, 4)), f, backend=backend)
        with pytest.raises(ValueError, match="needs at least the operands' frac_bits"):
            E.sum(x, acc=LNS(4, 5), backend=backend)
        with pytest.raises(ValueError, match="needs order='sequential'"):
            E.matmul(x, x, order="pairwise", compensated=True, backend=backend)
        with pytest.raises(ValueError, match="div is defined for LNS and Float operands"):
            E.div(E.cast(np.ones(2), Fixed(8, 2)), E.cast(np.ones(2), Fixed(8, 2)))
        with pytest.raises(ValueError, match="outside LNS"):
            E.from_codes(np.array([f.max_code + 1]), f)

    def test_saturation_and_underflow(self, backend):
        big, tiny = 2.0**40, 2.0**-40
        f = LNS(4, 6)  # magnitudes 2**-8 .. 2**8
        assert E.cast(np.array([big, -big]), f, backend=backend).codes.tolist() == [f.max_code,
                                                                                   -f.max_code]
        assert E.cast(np.array([tiny]), f, backend=backend).codes.tolist() == [0]
        assert E.cast(np.array([tiny]), LNS(4, 6, underflow="min"), backend=backend).codes.tolist() == [1]


# Table adders whose index covers every exponent difference (k = 0): the kernels' flat fast
# path must read f(0) from column 0 (a bug found by test_elementwise on 2026-12-01).
ZERO_K = [LNS(1, 0, Table(2)), LNS(2, 0, Table(4)), LNS(1, 1, Table(4)), LNS(2, 2, Table(6)),
          LNS(2, 1, Interp(4)), LNS(2, 0, Table(4), rounding="sr")]


@pytest.mark.parametrize("fmt", ZERO_K, ids=str)
def test_table_adder_with_k_zero_every_pair(fmt):
    """Every pair of codes adds and subtracts as the reference on every backend."""
    codes = np.arange(fmt.min_code, fmt.max_code + 1)
    a, b = np.repeat(codes, codes.size), np.tile(codes, codes.size)
    ea, eb = E.from_codes(a, fmt), E.from_codes(b, fmt)
    assert_every_backend_gives(lambda be: E.add(ea, eb, seed=3, backend=be),
                               ref.add(a, fmt, b, fmt, fmt, 3), "add")
    assert_every_backend_gives(lambda be: E.sub(ea, eb, seed=3, backend=be),
                               ref.sub(a, fmt, b, fmt, fmt, 3), "sub")


@pytest.mark.parametrize("compensated", [False, True])
@pytest.mark.parametrize("fmt", ZERO_K, ids=str)
def test_table_adder_with_k_zero_matmul(fmt, compensated):
    """Sequential (plain and Kahan) matmuls over all codes equal the reference."""
    codes = np.arange(fmt.min_code, fmt.max_code + 1)
    rng = np.random.default_rng(0)
    a = rng.choice(codes, (4, 2 * codes.size))
    b = rng.choice(codes, (2 * codes.size, 3))
    assert_every_backend_gives(
        lambda be: E.matmul(E.from_codes(a, fmt), E.from_codes(b, fmt), fmt, fmt, "sequential",
                            compensated, seed=5, backend=be),
        ref.matmul(a, fmt, b, fmt, fmt, fmt, "sequential", compensated, 5))
