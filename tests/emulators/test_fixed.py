"""Numba == C == reference, code for code, for every fixed-point operation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lowbit.emulators as E
from lowbit.numerics import Fixed, Overflow, Rounding
from lowbit.numerics import testing as lt
from lowbit.numerics.formats import FIXED_ROUNDINGS
from lowbit.numerics.reference import fixed as ref
from tests.emulators.helpers import assert_every_backend_gives

ORDERS = st.sampled_from(["sequential", "pairwise"])


class TestCast:
    """cast(float array) equals the reference for every format, mode and seed."""

    @given(lt.fixed_formats(), st.data())
    def test_float64(self, fmt, data):
        x = data.draw(lt.float_arrays(fmt, allow_infinity=fmt.overflow is Overflow.SATURATE))
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.cast(x, fmt, seed=seed, backend=be),
                         ref.cast(x, fmt, seed), f"{fmt!r} seed={seed}")

    @given(lt.fixed_formats(), st.data())
    def test_float32(self, fmt, data):
        x = data.draw(lt.float_arrays(fmt, dtype=np.float32))
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.cast(x, fmt, seed=seed, backend=be),
                         ref.cast(x.astype(np.float64), fmt, seed), repr(fmt))

    @given(lt.fixed_formats(max_bits=20), st.data())
    def test_non_contiguous_and_int_input(self, fmt, data):
        x = data.draw(lt.float_arrays(fmt, shape=(4, 6)))
        view = x[::2, ::-3].T
        assert_every_backend_gives(lambda be: E.cast(view, fmt, backend=be), ref.cast(view, fmt))
        ints = data.draw(st.lists(st.integers(-2**40, 2**40), max_size=5))
        assert_every_backend_gives(lambda be: E.cast(np.array(ints, dtype=np.int64), fmt, backend=be),
                         ref.cast(np.array(ints, dtype=np.float64), fmt))

    @pytest.mark.parametrize("rounding", FIXED_ROUNDINGS)
    def test_fast_path_boundaries(self, rounding):
        """The float fast path and the exact path agree at 53 bits and at range edges."""
        for bits in (52, 53, 54, 62):
            fmt = Fixed(bits, 0, rounding=rounding)
            x = np.array([2.0**(bits - 1) - 1, -2.0**(bits - 1), 2.0**(bits - 1), 2.0**62, -2.0**63,
                          2.0**(bits - 1) - 0.5, 0.5, -0.5, 1.5, 2.5, 4503599627370495.5])
            assert_every_backend_gives(lambda be: E.cast(x, fmt, seed=5, backend=be), ref.cast(x, fmt, 5))

    def test_peer_bugs(self):
        """QPyTorch rounds 2^-9 + 2^-32 twice; APyTypes does not wrap wide values."""
        assert_every_backend_gives(lambda be: E.cast(np.array([2.0**-9 + 2.0**-32]), Fixed(16, 8), backend=be),
                         [1])
        wrap8 = Fixed(8, 0, overflow=Overflow.WRAP)
        x = np.array([2.0**52 + 3, -(2.0**52 + 3), 1.5 * 2.0**70, 1e300])
        assert_every_backend_gives(lambda be: E.cast(x, wrap8, backend=be), [3, -3, 0, 0])
        wide = E.from_codes(np.array([2**61 - 1, -2**61 + 5]), Fixed(62, 0))
        assert_every_backend_gives(lambda be: E.cast(wide, wrap8, backend=be), [-1, 5])

    def test_edge_values(self):
        x = np.array([-0.0, 5e-324, -5e-324, 2.2250738585072014e-308])
        for rounding, expected in [(Rounding.FLOOR, [0, 0, -1, 0]), (Rounding.CEIL, [0, 1, 0, 1]),
                                   (Rounding.NEAREST_EVEN, [0, 0, 0, 0])]:
            fmt = Fixed(8, -4, rounding=rounding)
            assert_every_backend_gives(lambda be: E.cast(x, fmt, backend=be), expected, repr(fmt))


class TestConvert:
    """cast(EmuArray) re-rounds exact values like the reference."""

    @given(lt.fixed_formats(), lt.fixed_formats(), st.data())
    def test_convert(self, src, dst, data):
        codes = data.draw(lt.codes(src))
        seed = data.draw(lt.seeds())
        x = E.from_codes(codes, src)
        assert_every_backend_gives(lambda be: E.cast(x, dst, seed=seed, backend=be),
                         ref.convert(codes, src.frac, dst, seed), f"{src!r} -> {dst!r}")


def _aligned(fa: Fixed, fb: Fixed) -> bool:
    F = max(fa.frac, fb.frac)
    return fa.magnitude_bits + F - fa.frac <= 61 and fb.magnitude_bits + F - fb.frac <= 61


class TestElementwise:
    """add, sub and mul round the exact result once, with broadcasting."""

    @given(lt.fixed_formats(max_bits=40, min_frac=-6, max_frac=30),
           lt.fixed_formats(max_bits=40, min_frac=-6, max_frac=30),
           lt.fixed_formats(), st.data())
    def test_add_sub(self, fa, fb, out, data):
        assume(_aligned(fa, fb))
        shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_side=4)
                                     ).input_shapes
        a = data.draw(lt.codes(fa, shape_a))
        b = data.draw(lt.codes(fb, shape_b))
        seed = data.draw(lt.seeds())
        ea, eb = E.from_codes(a, fa), E.from_codes(b, fb)
        assert_every_backend_gives(lambda be: E.add(ea, eb, out, seed=seed, backend=be),
                         ref.add(a, fa.frac, b, fb.frac, out, seed), "add")
        assert_every_backend_gives(lambda be: E.sub(ea, eb, out, seed=seed, backend=be),
                         ref.sub(a, fa.frac, b, fb.frac, out, seed), "sub")

    @given(lt.fixed_formats(max_bits=32, min_frac=-6, max_frac=40),
           lt.fixed_formats(max_bits=32, min_frac=-6, max_frac=40),
           lt.fixed_formats(), st.data())
    def test_mul(self, fa, fb, out, data):
        assume(fa.magnitude_bits + fb.magnitude_bits <= 62)
        shape = data.draw(lt.shapes())
        a = data.draw(lt.codes(fa, shape))
        b = data.draw(lt.codes(fb, shape))
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.mul(E.from_codes(a, fa), E.from_codes(b, fb), out,
                                          seed=seed, backend=be),
                         ref.mul(a, fa.frac, b, fb.frac, out, seed), f"{fa!r}*{fb!r}->{out!r}")


def _matmul_case(data, max_bits):
    fa = data.draw(lt.fixed_formats(max_bits=max_bits, min_frac=-4, max_frac=16))
    fb = data.draw(lt.fixed_formats(max_bits=max_bits, min_frac=-4, max_frac=16))
    assume(fa.magnitude_bits + fb.magnitude_bits <= 62)
    M, K, N = (data.draw(st.integers(0, 5)) for _ in range(3))
    a = data.draw(lt.codes(fa, (M, K)))
    b = data.draw(lt.codes(fb, (K, N)))
    return fa, fb, a, b


class TestMatmulSum:
    """matmul and sum equal the reference for exact and narrow accumulators."""

    @given(st.data())
    def test_matmul_exact(self, data):
        fa, fb, a, b = _matmul_case(data, 30)
        assume(a.shape[1] * int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0)) < 2**62)
        out = data.draw(lt.fixed_formats())
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out,
                                             seed=seed, backend=be),
                         ref.matmul(a, fa.frac, b, fb.frac, out, seed=seed), "exact matmul")

    @given(st.data())
    def test_matmul_narrow(self, data):
        fa, fb, a, b = _matmul_case(data, 24)
        acc = data.draw(lt.fixed_formats(max_bits=40, min_frac=-4, max_frac=40))
        pfrac = fa.frac + fb.frac
        F = max(acc.frac, pfrac)
        assume(acc.magnitude_bits + F - acc.frac <= 61)
        assume(fa.magnitude_bits + fb.magnitude_bits + F - pfrac <= 61)
        order = data.draw(ORDERS)
        compensated = order == "sequential" and data.draw(st.booleans())
        out = data.draw(lt.fixed_formats())
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(
            lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, acc, order,
                                compensated, seed=seed, backend=be),
            ref.matmul(a, fa.frac, b, fb.frac, out, acc, order, compensated, seed),
            f"{acc!r} {order} compensated={compensated}")

    @given(st.data())
    def test_sum(self, data):
        fmt = data.draw(lt.fixed_formats(max_bits=30, min_frac=-4, max_frac=30))
        shape = data.draw(lt.shapes(max_dims=3, max_side=5))
        a = data.draw(lt.codes(fmt, shape))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))
                         if shape else st.none())
        use_acc = data.draw(st.booleans())
        acc = data.draw(lt.fixed_formats(max_bits=40, min_frac=-4, max_frac=40)) if use_acc else None
        if acc is not None:
            F = max(acc.frac, fmt.frac)
            assume(acc.magnitude_bits + F - acc.frac <= 61 and fmt.magnitude_bits + F - fmt.frac <= 61)
        order = data.draw(ORDERS)
        compensated = acc is not None and order == "sequential" and data.draw(st.booleans())
        out = data.draw(lt.fixed_formats())
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(
            lambda be: E.sum(E.from_codes(a, fmt), axis, out, acc, order, compensated,
                             seed=seed, backend=be),
            ref.sum(a, fmt.frac, axis, out, acc, order, compensated, seed),
            f"axis={axis} acc={acc!r} {order}")

    def test_blas_and_int32_paths_equal_int64_kernel(self, backend):
        """The float64 BLAS path (sums < 2**53) and int32 operands give the int64 kernel's codes."""
        rs = np.random.default_rng(0)
        fmt = Fixed(16, 8)
        a = rs.integers(fmt.min_code, fmt.max_code + 1, (33, 64))
        b = rs.integers(fmt.min_code, fmt.max_code + 1, (64, 17))
        be = E.get_backend(backend)
        kernel = be.fixed_matmul(a, b, 16, None, "sequential", False, fmt, 0)
        fast = E.matmul(E.from_codes(a, fmt), E.from_codes(b, fmt), backend=backend)
        assert np.array_equal(fast.codes, kernel)
        narrow = be.fixed_matmul(a.astype(np.int32), b.astype(np.int32), 16, None, "sequential",
                                 False, fmt, 0)
        assert np.array_equal(narrow, kernel)
        big = rs.integers(-2**30, 2**30, (5, 3))  # K * max^2 > 2**53: the int32 kernel
        wide = E.matmul(E.from_codes(big, Fixed(32, 0)), E.from_codes(big.T, Fixed(32, 0)),
                        Fixed(62, 0), backend=backend)
        assert wide.codes.tolist() == (big.astype(object) @ big.T.astype(object)).tolist()

    def test_vectors_and_shapes(self, backend):
        fmt = Fixed(8, 2)
        v = E.from_codes(np.array([1, 2, 3]), fmt)
        m = E.from_codes(np.arange(6).reshape(3, 2), fmt)
        assert E.matmul(v, v, Fixed(16, 4), backend=backend).codes.tolist() == 14
        assert E.matmul(v, m, Fixed(16, 4), backend=backend).shape == (2,)
        assert E.matmul(m.T, v, Fixed(16, 4), backend=backend).codes.tolist() == [16, 22]
        assert E.matmul(E.from_codes(np.zeros((2, 0), np.int64), fmt),
                        E.from_codes(np.zeros((0, 3), np.int64), fmt),
                        backend=backend).codes.tolist() == [[0] * 3] * 2

    def test_kahan_recovers_swamped_terms(self, backend):
        """Many small terms added to a large one: Kahan keeps them, plain rounding drops them."""
        terms = np.array([1024] + [3] * 1000)  # Fixed(16, 4) codes: 64.0 then 0.1875s
        a = E.from_codes(terms, Fixed(16, 4))
        acc = Fixed(16, 0)
        exact = 64 + 1000 * 3 / 16
        plain = E.sum(a, acc=acc, backend=backend).to_float()
        kahan = E.sum(a, acc=acc, compensated=True, backend=backend).to_float()
        assert plain == 64.0
        assert abs(kahan - exact) <= 0.5
