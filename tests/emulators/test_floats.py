"""Numba == C == reference for every Float cast: any layout, mode and policy, float64
and float32 inputs, every float32 bit pattern on a stride (the full 2^32 sweep is
tests/exhaustive/float_casts.py, its result committed in docs/results/float_casts.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.numerics import FLOAT_PRESETS, Float, Rounding, parse_format, rng
from lowbit.numerics import testing as lt
from lowbit.numerics.reference import floating as ref
from tests.emulators.helpers import assert_every_backend_gives


def _finite_if_needed(x: np.ndarray, fmt: Float) -> np.ndarray:
    """x without NaN when fmt has no NaN (a NaN there is an error, tested apart)."""
    if fmt.nan_code is None:
        x = np.where(np.isnan(x), 0.0, x).astype(x.dtype)
        if fmt.inf != "max":
            x = np.where(np.isinf(x), 1.0, x).astype(x.dtype)
    return x


def _float_values(fmt: Float):
    """Values that stress fmt: its grid points and their midpoints (ties), a hair off
    them, the edges of the range and beyond, subnormals, specials."""
    grid = ref.to_float(np.arange(min(fmt.max_code + 1, 1 << 12)), fmt)
    grid = grid[np.isfinite(grid)]
    pts = st.sampled_from(sorted(set(grid.tolist())))
    def around(v, k):
        return v * (1 + k * 2.0**-30)
    ties = st.builds(lambda a, b: (a + b) / 2, pts, pts)
    return st.one_of(lt.values(None, allow_infinity=True), pts, ties,
                     st.builds(around, pts, st.sampled_from([-1, 1])),
                     st.builds(around, ties, st.sampled_from([-1, 1])),
                     st.sampled_from([float(fmt.max_value) * k for k in (1.01, 1.5, 2, 1e3)]),
                     st.just(math.nan))


class TestCast:
    """Floats -> Float codes, rounded once, exactly as the reference."""

    @settings(max_examples=300)
    @given(lt.float_formats(max_man_bits=23), st.data())
    def test_cast(self, fmt, data):
        dtype = data.draw(st.sampled_from([np.float64, np.float32]))
        shape = data.draw(lt.shapes(max_dims=2, max_side=6))
        x = np.array(data.draw(st.lists(_float_values(fmt), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape)))), dtype=np.float64)
        with np.errstate(over="ignore"):
            x = _finite_if_needed(x.astype(dtype).reshape(shape), fmt)
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.cast(x, fmt, seed=seed, backend=be),
                                   ref.cast(x, fmt, seed), str(fmt))

    @pytest.mark.parametrize("name", sorted(FLOAT_PRESETS))
    def test_to_float_is_exact_for_every_code(self, name):
        """EmuArray.to_float of every code equals the reference's value (NaN where NaN,
        -0.0 where -0), and casting it back gives the code again (NaN: the canonical one)."""
        fmt = FLOAT_PRESETS[name]
        stride = max(1, (fmt.max_code + 1) >> 16) | 1  # every code up to 16 bits, else a stride
        codes = np.arange(0, fmt.max_code + 1, stride, dtype=np.int64)
        got = E.from_codes(codes, fmt).to_float()
        want = ref.to_float(codes, fmt)
        assert np.array_equal(got, want, equal_nan=True)
        real = ~np.isnan(want)
        assert np.array_equal(np.signbit(got[real]), np.signbit(want[real]))
        back = E.cast(got, fmt).codes
        assert np.array_equal(back[real], codes[real])
        if fmt.nan_code is not None:
            assert np.all(back[~real] == fmt.nan_code)

    @pytest.mark.parametrize("name", ["e4m3", "e4m3:inf", "e5m2", "e2m1", "e3m2", "e2m3",
                                      "fp16:rtz", "bf16:odd", "e4m3fnuz:inf", "e8m0",
                                      "binary8p3:floor", "e5m2:sr", "e4m3:sr8"])
    def test_every_float32_pattern_on_a_stride(self, name):
        """float32 bit patterns 0, 65537, 2*65537, ... (65,536 of them, specials included):
        Numba == C == reference."""
        fmt = parse_format(name)
        bits = (np.arange(0, 1 << 32, 65537, dtype=np.uint64)).astype(np.uint32)
        x = _finite_if_needed(bits.view(np.float32), fmt)
        # the reference on every 64th of them, with the same stochastic counters
        want = np.array([ref.quantize(float(x[i]), fmt, rng.random_u64(5, i))
                         for i in range(0, len(x), 64)], dtype=np.int64)
        outs = {be: E.cast(x, fmt, seed=5, backend=be).codes for be in ("numba", "c")}
        assert np.array_equal(outs["numba"], outs["c"])
        assert np.array_equal(outs["numba"][::64], want)

    def test_unrepresentable_nan_and_inf_name_their_index(self, backend):
        with pytest.raises(ValueError, match=r"x\[1\] is NaN, which e2m1 cannot represent"):
            E.cast(np.array([1.0, np.nan]), "e2m1", backend=backend)
        # inf into E2M1 saturates (its inf policy is max); NaN into E4M3 is its NaN
        assert E.cast(np.array([np.inf, -np.inf]), "e2m1", backend=backend).codes.tolist() == [7, 15]
        assert E.cast(np.array([np.nan]), "e4m3", backend=backend).codes.tolist() == [0x7F]

    def test_stochastic_rounding_is_the_same_on_every_backend_and_thread_count(self):
        """The draw of element i depends on (seed, i) only: a large array (parallel loops)
        equals its pieces cast one by one (serial loops) with the same counters."""
        x = np.random.default_rng(0).normal(size=200_000) * 3
        fmt = parse_format("e4m3:sr")
        whole = {be: E.cast(x, fmt, seed=11, backend=be).codes for be in ("numba", "c")}
        assert np.array_equal(whole["numba"], whole["c"])
        head = ref.cast(x[:300], fmt, seed=11)
        assert np.array_equal(whole["c"][:300], head)

    def test_float16_inputs_are_taken_exactly(self, backend):
        """float16 arrays are widened to float32 exactly, then cast once."""
        x = np.array([1 + 2**-10, 65504, 2**-24], dtype=np.float16)
        got = E.cast(x, "fp16", backend=backend).codes
        assert got.tolist() == x.view(np.uint16).astype(np.int64).tolist()


OPS = ("add", "sub", "mul", "div", "fma")


def _reference(op, a, fa, b, fb, c, fc, out, seed):
    if op == "fma":
        return ref.fma(a, fa, b, fb, c, fc, out, seed)
    return getattr(ref, op)(a, fa, b, fb, out, seed)


def _emulated(op, a, b, c, out, seed, backend):
    if op == "fma":
        return E.fma(a, b, c, out, seed=seed, backend=backend)
    return getattr(E, op)(a, b, out, seed=seed, backend=backend)


class TestArithmetic:
    """add, sub, mul, div, fma: the exact result rounded once, IEEE specials, on every
    backend as the reference (mixed operand formats, every output mode)."""

    @settings(max_examples=300)
    @given(lt.float_formats(max_man_bits=23), lt.float_formats(max_man_bits=23),
           lt.float_formats(max_man_bits=23), st.sampled_from(OPS), st.data())
    def test_elementwise(self, fa, fb, out, op, data):
        n = data.draw(st.integers(0, 12))
        a = data.draw(lt.codes(fa, (n,)))
        b = data.draw(lt.codes(fb, (n,)))
        c = data.draw(lt.codes(fa, (n,)))
        seed = data.draw(lt.seeds())
        try:
            want = _reference(op, a, fa, b, fb, c, fa, out, seed)
        except ValueError as exc:  # a NaN or inf out cannot hold: every backend must refuse
            for be in ("numba", "c"):
                with pytest.raises(ValueError, match="cannot be represented"):
                    _emulated(op, E.from_codes(a, fa), E.from_codes(b, fb), E.from_codes(c, fa),
                              out, seed, be)
            assert "cannot be represented" in str(exc)
            return
        assert_every_backend_gives(
            lambda be: _emulated(op, E.from_codes(a, fa), E.from_codes(b, fb),
                                 E.from_codes(c, fa), out, seed, be), want, f"{op} {out}")

    @pytest.mark.parametrize("op", OPS)
    def test_far_apart_operands_under_exact_stochastic_rounding(self, op, backend):
        """fp32 operands 2**100 apart: the smaller still moves the 53-bit decision (the sums
        need a window of about 80 bits below the top of the larger)."""
        f = parse_format("fp32:sr")
        big = np.array([ref.quantize(2.0**60 * (1 + 3 * 2.0**-23), f)] * 64)
        small = np.array([ref.quantize(-(2.0**-40) * (1 + k * 2.0**-20), f) for k in range(64)])
        ca = E.from_codes(big, f)
        cb = E.from_codes(small, f)
        want = _reference(op, big, f, small, f, small, f, f, 7)
        got = _emulated(op, ca, cb, cb, f, 7, backend)
        assert np.array_equal(got.codes, want)

    def test_signed_zeros_and_specials(self, backend):
        f = parse_format("fp16")
        x = E.cast(np.array([1.0, -0.0, 0.0, np.inf, -np.inf, 2.0**-20]), f)
        y = E.cast(np.array([-1.0, -0.0, -0.0, -np.inf, 1.0, -(2.0**-20)]), f)
        s = E.add(x, y, backend=backend).to_float()
        assert np.array_equal(np.signbit(s[:3]), [False, True, False]) and s[0] == 0
        assert np.isnan(s[3]) and s[4] == -np.inf and s[5] == 0
        floor = E.add(x, y, "fp16:floor", backend=backend).to_float()
        assert np.signbit(floor[0]) and np.signbit(floor[5])
        q = E.div(x, y, backend=backend).to_float()
        assert q[0] == -1 and np.isnan(q[1]) and np.isnan(q[3])

    def test_fma_rounds_once(self, backend):
        f = parse_format("fp16")
        a = E.cast(np.array([1 + 2.0**-6]), f)
        m1 = E.cast(np.array([-1.0]), f)
        assert E.fma(a, a, m1, backend=backend).to_float()[0] == 2.0**-5 + 2.0**-12
        assert E.add(E.mul(a, a, backend=backend), m1, backend=backend).to_float()[0] == 2.0**-5

    def test_conversions_between_families(self, backend):
        """Float -> Float rounds once (x * 1); Float -> Fixed and Fixed -> Float through the
        exact float64 values; LNS <-> Float is refused."""
        x = E.cast(np.array([1 + 2.0**-4 + 2.0**-7, -3.0, np.nan]), "bf16", backend=backend)
        assert E.cast(x, "e4m3", backend=backend).to_float()[:2].tolist() == [1.125, -3.0]
        assert np.isnan(E.cast(x, "e4m3", backend=backend).to_float()[2])
        with pytest.raises(ValueError, match="NaN of bf16 cannot be represented in e2m1"):
            E.cast(x, "e2m1", backend=backend)
        fx = E.cast(x[:2], "fixed16.8", backend=backend)
        assert E.cast(fx, "fp16", backend=backend).to_float().tolist() == [1.0703125, -3.0]
        with pytest.raises(NotImplementedError, match="LNS values are not float64"):
            E.cast(x[:2], "lns5.10", backend=backend)

    def test_bad_operands(self):
        a = E.cast(np.array([1.0, 2.0]), "bf16")
        b = E.cast(np.array([1.0, 2.0]), "fp16")
        with pytest.raises(ValueError, match="different formats .* give out="):
            E.add(a, b)
        assert E.add(a, b, "fp32").to_float().tolist() == [2.0, 4.0]
        with pytest.raises(ValueError, match="operand b is Fixed"):
            E.mul(a, E.cast(np.array([1.0, 1.0]), "fixed8.4"))
        with pytest.raises(ValueError, match="out must be a Float format"):
            E.add(a, a, "fixed16.8")
        with pytest.raises(ValueError, match="do not broadcast"):
            E.add(a, E.cast(np.ones(3), "bf16"))
        with pytest.raises(ValueError, match="fma takes Float operands"):
            E.fma(a, a, E.cast(np.ones(2), "fixed8.4"))


@pytest.mark.parametrize("name", ["e4m3", "e4m3:inf", "e5m2", "e5m2:sat", "e2m1", "e3m2:rtz",
                                  "e2m3:ceil", "binary8p3", "e4m3fnuz:odd", "e3m4:floor",
                                  "float4.6:rna:ftz", "bf16", "bf16:rtz", "float6.7:sat"])
def test_table_cast_equals_the_general_cast(name, backend):
    """A float32 cast through the table of its input classes gives the general
    kernel's codes and status on 2^20 random bit patterns (every low-16-bit pattern
    occurs, NaN and inf included)."""
    from lowbit.emulators import _float_ops

    fmt = parse_format(name)
    assert _float_ops.table_cast_ok(fmt)
    be = E.get_backend(backend)
    bits = np.random.default_rng(7).integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    if fmt.nan_code is None:
        x = x[~np.isnan(x)]
    got, st = be.float_cast(x, fmt, 0)
    want, st2 = be._general_float_cast(x, fmt, 0)
    assert np.array_equal(got, want) and st == st2
    assert _float_ops.cast_table(fmt, be._general_float_cast) is not None


def _operands(fa: Float, fb: Float, M: int, K: int, N: int, typical: bool, data):
    """Codes of an M x K and a K x N operand: ``typical`` values (normal, scaled by
    2^-8..2^8, cast) or random codes of every class."""
    if typical:
        r = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        a = E.cast(r.normal(size=(M, K)) * 2.0 ** r.integers(-8, 8, (M, K)), fa).codes
        b = E.cast(r.normal(size=(K, N)) * 2.0 ** r.integers(-8, 8, (K, N)), fb).codes
        return a, b
    return data.draw(lt.codes(fa, (M, K))), data.draw(lt.codes(fb, (K, N)))


def _models():
    """Accumulator models: the presets and small custom ones (groups, cuts, promotion)."""
    from lowbit.numerics.accumulators import ACCUMULATOR_MODELS, AccumulatorModel

    custom = st.builds(
        lambda g, n, reg, align, p: AccumulatorModel(g, n, reg, align, p * g if p else None),
        st.integers(1, 6), st.integers(1, 12),
        st.sampled_from([parse_format(s) for s in ("fp32:rtz", "float8.13:rtz", "bf16", "fp16",
                                                    "float5.6:rtz")]),
        st.sampled_from(["truncate", "floor"]), st.sampled_from([None, 1, 2, 3]))
    return st.one_of(st.sampled_from(list(ACCUMULATOR_MODELS.values())), custom)


class TestMatmul:
    """Float matmul: exact products, summed exactly, in a Float accumulator (sequential,
    pairwise, Kahan) or by a matrix-unit model; Numba == C == reference."""

    @settings(max_examples=200)
    @given(st.sampled_from(["e4m3", "e5m2", "e2m1", "e3m2", "e2m3", "bf16", "fp16",
                            "e4m3fnuz", "fp16:daz", "binary8p3"]),
           st.sampled_from(["e4m3", "e5m2", "e2m1", "bf16", "fp16:ftz"]),
           st.one_of(st.none(), lt.float_formats(max_man_bits=10, roundings=tuple(Rounding)),
                     _models()),
           st.sampled_from(["sequential", "pairwise", "kahan"]),
           lt.float_formats(max_man_bits=23), st.data())
    def test_matmul(self, fa_s, fb_s, acc, how, out, data):
        fa, fb = parse_format(fa_s), parse_format(fb_s)
        M, K, N = (data.draw(st.integers(0, 4)), data.draw(st.integers(0, 40)),
                   data.draw(st.integers(1, 3)))
        a = data.draw(lt.codes(fa, (M, K)))
        b = data.draw(lt.codes(fb, (K, N)))
        seed = data.draw(lt.seeds())
        order, compensated = ("sequential", False) if not isinstance(acc, Float) else \
            {"sequential": ("sequential", False), "pairwise": ("pairwise", False),
             "kahan": ("sequential", True)}[how]
        if isinstance(acc, Float) and not acc.zero:
            for be in ("numba", "c"):
                with pytest.raises(ValueError, match="an accumulator needs a zero"):
                    E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, acc, backend=be)
            with pytest.raises(ValueError, match="an accumulator needs a zero"):
                ref.matmul(a, fa, b, fb, out, acc, order, compensated, seed)
            return
        if acc is None and (fa.max_exponent - fa.min_exponent + fb.max_exponent
                            - fb.min_exponent + fa.man_bits + fb.man_bits + K.bit_length()
                            + 3 > 62):
            with pytest.raises(ValueError, match="give acc="):
                E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, acc)
            return
        try:
            want = ref.matmul(a, fa, b, fb, out, acc, order, compensated, seed)
        except ValueError:
            for be in ("numba", "c"):
                with pytest.raises(ValueError, match="cannot be represented"):
                    E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, acc, order,
                             compensated, seed=seed, backend=be)
            return
        assert_every_backend_gives(
            lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, acc, order,
                                compensated, seed=seed, backend=be), want, f"{acc} {out}")

    @settings(max_examples=200)
    @given(st.sampled_from(["fp16", "bf16", "tf32", "e4m3", "e5m2", "e2m1", "e3m2", "fp16:ftz",
                            "e4m3fnuz", "binary8p3", "float8.3:bias=200"]),
           st.sampled_from(["fp16", "bf16", "e4m3", "e5m2", "e2m3"]),
           st.one_of(st.sampled_from([parse_format(s) for s in
                                      ("fp32", "fp16", "bf16", "e4m3", "e5m2:sat", "fp16:ftz")]),
                     lt.float_formats(max_man_bits=23)),
           st.booleans(), st.data())
    def test_binary32_accumulation(self, fa_s, fb_s, out, typical, data):
        """acc='fp32' in sequential order runs as native binary32 arithmetic whenever every
        product is exact in binary32, and otherwise in the general kernel: either way the
        reference's codes. ``typical`` values (normal, scaled by 2^-8..2^8) take the native
        path; random codes (subnormals, the range's edges, inf, NaN) also fall back."""
        fa, fb = parse_format(fa_s), parse_format(fb_s)
        M, K, N = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 48)),
                   data.draw(st.integers(1, 6)))
        a, b = _operands(fa, fb, M, K, N, typical, data)
        seed = data.draw(lt.seeds())
        try:
            want = ref.matmul(a, fa, b, fb, out, parse_format("fp32"), "sequential", False, seed)
        except ValueError:
            for be in ("numba", "c"):
                with pytest.raises(ValueError, match="cannot be represented"):
                    E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, "fp32",
                             seed=seed, backend=be)
            return
        assert_every_backend_gives(
            lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, "fp32",
                                seed=seed, backend=be), want, f"{fa} {fb} {out}")

    def test_binary32_accumulation_takes_the_native_path(self, backend):
        """The native path is taken for typical fp16/bf16/FP8 operands (and refused where a
        product would not be exact), so the test above exercises it."""
        from lowbit.emulators import _float_ops, backends

        be = backends.get_backend(backend)
        r = np.random.default_rng(1)
        for f in ("fp16", "bf16", "e4m3", "e2m1"):
            fmt = parse_format(f)
            a, b = E.cast(r.normal(size=(3, 9)), fmt), E.cast(r.normal(size=(9, 2)), fmt)
            assert _float_ops.binary32_products(fmt, fmt, _float_ops.BINARY32, fmt)
            assert _float_ops._binary32_matmul(a.codes, fmt, b.codes, fmt, fmt, 0, be) is not None
        tiny = E.cast(np.full((2, 2), 2.0 ** -70), "bf16")  # products of 2^-140: not exact
        assert _float_ops._binary32_matmul(tiny.codes, tiny.fmt, tiny.codes, tiny.fmt,
                                           tiny.fmt, 0, be) is None
        assert not _float_ops.binary32_products(parse_format("fp32"), parse_format("bf16"),
                                                _float_ops.BINARY32, parse_format("fp32"))
        assert not _float_ops.binary32_products(parse_format("fp16:daz"), parse_format("bf16"),
                                                _float_ops.BINARY32, parse_format("fp32"))

    @settings(max_examples=150)
    @given(st.sampled_from(["e4m3", "e5m2", "bf16", "fp16", "e2m1", "e3m2"]),
           st.sampled_from(["e4m3", "bf16", "e2m3"]), _models(), st.booleans(), st.data())
    def test_models_on_float64_values(self, fa_s, fb_s, model, typical, data):
        """A matrix-unit model runs on float64 values when every product and cut stays a
        normal double (fused_in_float64 and the per-call range check), and otherwise in
        the general kernel: either way the reference's codes."""
        from lowbit.emulators import _float_ops

        fa, fb = parse_format(fa_s), parse_format(fb_s)
        M, K, N = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 140)),
                   data.draw(st.integers(1, 5)))
        a, b = _operands(fa, fb, M, K, N, typical, data)
        out = model.result_format
        try:
            want = ref.matmul(a, fa, b, fb, out, model)
        except ValueError:
            return  # a NaN the result format cannot hold: tested with the general kernel
        assert_every_backend_gives(
            lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), out, model, backend=be),
            want, f"{model}")
        if typical and _float_ops.fused_in_float64(model, out):
            be = E.get_backend("c")
            assert _float_ops._fused_matmul(a, fa, b, fb, model, out, 0, be) is not None

    @pytest.mark.parametrize("acc, want", [("hopper_fp8", 4324), ("hopper_fp8_promote128", 4608),
                                           ("blackwell", 4608), ("fp32", 4608), ("bf16", 512),
                                           (None, 4608)])
    def test_golden_vector(self, acc, want, backend):
        """a = 1.125 * ones(4096), b = ones, both E4M3: the published model predictions."""
        a = E.cast(np.full((2, 4096), 1.125), "e4m3")
        b = E.cast(np.ones((4096, 3)), "e4m3")
        got = E.matmul(a, b, "fp32", acc, backend=backend).to_float()
        assert np.all(got == want)

    @pytest.mark.parametrize("model", ["hopper_fp8", "hopper_fp8_promote128", "blackwell",
                                       "cdna3"])
    def test_fused_path_at_the_register_edges(self, model):
        """fp32 operands whose products straddle the register's normal range (2^-126: the
        round-toward-zero register's subnormal columns leave the vectorised step for the
        general rounding) and exceed it (2^128: a non-finite result sends the call to the
        general kernel): both paths give the reference's codes, and the float64 path is
        taken for the subnormal case."""
        from lowbit.emulators import _float_ops
        from lowbit.numerics import parse_accumulator

        m = parse_accumulator(model)
        f = parse_format("fp32")
        r = np.random.default_rng(7)
        for lo, hi in ((-68, -58), (60, 68)):
            x = r.normal(size=(5, 70)) * 2.0 ** r.integers(lo, hi, (5, 70))
            y = r.normal(size=(70, 9)) * 2.0 ** r.integers(lo, hi, (70, 9))
            a, b = E.cast(x, f), E.cast(y, f)
            want = ref.matmul(a.codes, f, b.codes, f, m.result_format, m)
            assert_every_backend_gives(lambda be: E.matmul(a, b, acc=m, backend=be), want,
                                       f"{model} 2^{lo}..2^{hi}")
            if lo < 0:
                for be in ("numba", "c"):
                    got = _float_ops._fused_matmul(a.codes, f, b.codes, f, m, m.result_format,
                                                   0, E.get_backend(be))
                    assert got is not None and np.array_equal(got, want), be

    def test_float32_path_and_its_hand_back(self):
        """FP8 models run in float32 when every product is a normal binary32: E4M3 and bf16
        operands under hopper_fp8 give the reference's codes through it; bf16 products
        near 2^-126 whose group sums cancel leave binary32's normal range in the register,
        so the float32 kernel reports it (status 1) and the float64 kernel gives the
        reference's codes."""
        from lowbit.emulators import _float_ops
        from lowbit.numerics import parse_accumulator

        r = np.random.default_rng(3)
        for name in ("hopper_fp8", "hopper_fp8_promote128", "ada_fp8"):
            m = parse_accumulator(name)
            for f, lo, hi, typical in (("e4m3", -4, 4, True), ("bf16", -8, 8, True),
                                       ("bf16", -64, -62, False)):
                fmt = parse_format(f)
                assert _float_ops.fused_in_float32(m, fmt, fmt)
                x = r.normal(size=(6, 100)) * 2.0 ** r.integers(lo, hi, (6, 100))
                y = r.normal(size=(100, 7)) * 2.0 ** r.integers(lo, hi, (100, 7))
                a, b = E.cast(x, fmt), E.cast(y, fmt)
                want = ref.matmul(a.codes, fmt, b.codes, fmt, m.result_format, m)
                for be in ("numba", "c"):
                    backend = E.get_backend(be)
                    _, status = backend.fused_matmul_f32(
                        a.to_float().astype(np.float32), b.to_float().astype(np.float32),
                        m.group, m.frac_bits, m.promote_every or 0, m.register)
                    assert status == (0 if typical else 1), (name, f, be)
                    got = _float_ops._fused_matmul(a.codes, fmt, b.codes, fmt, m,
                                                   m.result_format, 0, backend)
                    assert got is not None and np.array_equal(got, want), (name, f, be)
        assert not _float_ops.fused_in_float32(parse_accumulator("blackwell"), fmt, fmt)
        assert not _float_ops.fused_in_float32(parse_accumulator("cdna3"), fmt, fmt)
        assert not _float_ops.fused_in_float32(parse_accumulator("hopper_fp8"),
                                               parse_format("fp32"), fmt)

    @pytest.mark.parametrize("model", ["volta", "hopper_fp8"])
    def test_daz_operands_under_a_model(self, model, backend):
        """Found by hypothesis: an fp16:daz operand's subnormal code 1 is a zero, so its
        product is 0 under every model (the float64 path read its value and gave 2^-24 *
        2^-9 = 2^-33)."""
        a = E.from_codes(np.array([[1]]), "fp16:daz")
        b = E.from_codes(np.array([[1]]), "e4m3")
        got = E.matmul(a, b, "bf16", model, backend=backend)
        assert got.codes.tolist() == [[0]]

    def test_random_small_matmuls_under_every_model(self):
        """10,240 dot products (every preset, K up to 130, both signs, E4M3 and bf16): the
        kernels equal the reference (which tests/numerics checks against a straightforward
        implementation of the published algorithm)."""
        from lowbit.numerics.accumulators import ACCUMULATOR_MODELS

        r = np.random.default_rng(0)
        for name, model in sorted(ACCUMULATOR_MODELS.items()):
            f = parse_format("e4m3" if "fp8" in name else "bf16")
            for K in (1, 31, 32, 33, 130):
                x = r.normal(size=(16, K)) * 2.0 ** r.integers(-6, 6, size=(16, K))
                y = r.normal(size=(K, 16)) * 2.0 ** r.integers(-6, 6, size=(K, 16))
                a, b = E.cast(x, f), E.cast(y, f)
                want = ref.matmul(a.codes, f, b.codes, f, model.result_format, model)
                assert_every_backend_gives(lambda be: E.matmul(a, b, acc=model, backend=be),
                                           want, f"{name} K={K}")

    def test_sum_along_axes(self, backend):
        x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) * 0.375
        a = E.cast(x, "bf16")
        for axis in (None, 0, 1, -1):
            got = E.sum(a, axis, acc="fp32", backend=backend)
            assert np.array_equal(got.to_float(), x.sum(axis=axis))
            assert got.fmt == parse_format("fp32")

    def test_bad_accumulations(self):
        a = E.cast(np.ones((2, 3)), "bf16")
        b = E.cast(np.ones((3, 2)), "bf16")
        with pytest.raises(ValueError, match="needs .* bits .* give acc="):
            E.matmul(a, b)
        with pytest.raises(ValueError, match="fixes its own order"):
            E.matmul(a, b, acc="hopper_fp8", order="pairwise")
        with pytest.raises(ValueError, match="compensated=True needs order='sequential'"):
            E.matmul(a, b, acc="fp32", order="pairwise", compensated=True)
        with pytest.raises(ValueError, match="acc for Float operands must be"):
            E.matmul(a, b, acc="fixed32.16")
        with pytest.raises(ValueError, match="inner dimensions differ"):
            E.matmul(a, a, acc="fp32")
        with pytest.raises(ValueError, match="a is Fixed"):
            E.matmul(E.cast(np.ones((2, 3)), "fixed8.4"), b, acc="fp32")


@pytest.mark.parametrize("name, dtype", [("e4m3:inf", "float8_e4m3fn"), ("e5m2", "float8_e5m2")])
@pytest.mark.parametrize("op", ["add", "mul"])
def test_all_pairs_of_8_bit_codes(name, dtype, op, backend):
    """Every pair of codes (65,536) added and multiplied under RNE: the kernels equal
    ml_dtypes' cast of the exact float64 result (float64 holds every sum and product of
    two FP8 values exactly; ml_dtypes rounds float64 once), NaN for NaN."""
    import ml_dtypes

    fmt = parse_format(name)
    codes = np.arange(256, dtype=np.int64)
    a, b = (c.ravel() for c in np.meshgrid(codes, codes))
    av, bv = E.from_codes(a, fmt).to_float(), E.from_codes(b, fmt).to_float()
    with np.errstate(invalid="ignore", over="ignore"):
        exact = av + bv if op == "add" else av * bv
        want = exact.astype(getattr(ml_dtypes, dtype)).astype(np.float64)
    got = getattr(E, op)(E.from_codes(a, fmt), E.from_codes(b, fmt), fmt, backend=backend)
    v = got.to_float()
    same = (v == want) | (np.isnan(v) & np.isnan(want))
    assert same.all(), (np.flatnonzero(~same)[:5], v[~same][:5], want[~same][:5])
    zero = (v == 0) & (want == 0)
    assert np.array_equal(np.signbit(v[zero]), np.signbit(want[zero]))
