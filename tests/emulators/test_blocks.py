"""Block-scaled formats (MX, NVFP4): Numba == C == the exact reference for the block cast
under every rule, layout and policy, the specification's named cases, and matmuls of block
operands against a straightforward float32 oracle written here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.numerics import Block, FLOAT_PRESETS, Fixed, Rounding, parse_format
from lowbit.numerics.blocks import SCALE_RULES
from lowbit.numerics.formats import FIXED_ROUNDINGS
from lowbit.numerics.reference import block as rb
from tests.emulators.helpers import BACKENDS

ELEMENTS = ["e4m3", "e5m2", "e2m3", "e3m2", "e2m1", "e3m4", "fp16:ftz", "binary8p3"]


@st.composite
def blocks(draw) -> Block:
    pow2 = draw(st.booleans())
    elem_name = draw(st.sampled_from(ELEMENTS + ["mxint8"]))
    if elem_name == "mxint8":
        element = Fixed(8, 6, rounding=draw(st.sampled_from(
            [r for r in FIXED_ROUNDINGS if pow2 or r is not Rounding.STOCHASTIC])))
    else:
        element = parse_format(elem_name)
        r = draw(st.sampled_from(list(Rounding)))
        sr = draw(st.sampled_from([None, 8, 16])) if r is Rounding.STOCHASTIC else None
        if r is Rounding.STOCHASTIC and not pow2 and sr is None:
            sr = 8
        element = Float(**{**element.__dict__, "rounding": r, "sr_bits": sr})
    scale = FLOAT_PRESETS["e8m0"] if pow2 else FLOAT_PRESETS["ue4m3"]
    rule = draw(st.sampled_from(SCALE_RULES if pow2 else ("rceil", "nearest")))
    tile = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 5))))
    kw = dict(element=element, scale=scale, scale_rule=rule, tile=tile,
              tensor_scale=draw(st.booleans()), daz=draw(st.booleans()),
              asymmetric=isinstance(element, Fixed) and draw(st.booleans()))
    if tile is None:
        kw.update(block=draw(st.integers(1, 40)), axis=draw(st.sampled_from([-1, 0])))
    return Block(**kw)


from lowbit.numerics import Float  # noqa: E402


def _values(dtype):
    big = float(np.float32(1e30))
    finite = st.floats(-big, big, allow_nan=False, width=32 if dtype == np.float32 else 64)
    special = st.sampled_from([0.0, -0.0, 1e-40, -3e-39, 448.0, 464.0, 7.0, 0.5, 6.0, 2.0 ** -127,
                               2.0 ** 127, np.inf, -np.inf, np.nan])
    return st.one_of(finite, special, st.builds(lambda m, e: m * 2.0 ** e,
                                                st.floats(-2, 2), st.integers(-140, 100)))


class TestBlockCast:
    @settings(max_examples=300, deadline=None)
    @given(blocks(), st.sampled_from([np.float32, np.float64]), st.data())
    def test_every_backend_gives_the_reference(self, fmt, dtype, data):
        shape = data.draw(st.sampled_from([(7,), (3, 11), (2, 3, 9), (5, 40)]))
        if fmt.tile is not None and len(shape) < 2:
            shape = (4, 7)
        n = int(np.prod(shape))
        x = np.array(data.draw(st.lists(_values(dtype), min_size=n, max_size=n)),
                     dtype=dtype).reshape(shape)
        seed = data.draw(st.integers(0, 2**32))
        if fmt.tensor_scale and data.draw(st.booleans()):
            x = np.where(np.isfinite(x), x, 1.0).astype(dtype)  # exercise T != 1
        want = rb.quantize(x, fmt, seed)
        for be in BACKENDS:
            got = E.block_cast(x, fmt, seed=seed, backend=be)
            assert np.array_equal(got.array.codes, want.codes), (be, str(fmt))
            assert np.array_equal(got.scales, want.scales), (be, str(fmt))
            assert got.clipped == want.clipped, (be, str(fmt))
            assert got.tensor_scale == float(want.tensor_scale)
            assert np.array_equal(got.array.to_float(), rb.decode(want, fmt), equal_nan=True)

    @pytest.mark.parametrize("rule, top, small", [("floor", 6.0, 0.5), ("ceil", 8.0, 0.0),
                                                  ("even", 8.0, 0.0), ("rceil", 8.0, 0.0)])
    def test_amax_7_in_e2m1(self, rule, top, small, backend):
        """Spec sheet T16: FLOOR clips 7 to 6 and keeps 0.5; the other rules pick scale 2."""
        r = E.block_cast(np.array([7.0, 0.5, 1.0, 0.0]), f"mxfp4:block=4:rule={rule}",
                         backend=backend)
        assert r.array.to_float().tolist() == [top, small, 1.0, 0.0]
        assert r.clipped == (1 if rule == "floor" else 0)

    def test_even_rule_ties_away(self, backend):
        """EVEN rounds amax to the element's 2 bits first, ties away: 7 = 1.11b x 4 is a tie
        and goes up to 8 (scale 2^1); 6.999 rounds down to 6 (scale 2^0, 6.999 clips)."""
        for amax, scale, clipped in ((7.0, 128, 0), (6.999, 127, 1)):
            r = E.block_cast(np.array([amax, 1.0]), "mxfp4:block=2:rule=even", backend=backend)
            assert int(r.scales[0]) == scale and r.clipped == clipped

    def test_nearest_rule_and_ties(self, backend):
        """round(log2(a / 6)): 6 * 2**0.5 = 8.485...: 8.48 takes scale 1 (clips), 8.49 scale 2."""
        for a, want_scale in ((8.48, 127), (8.49, 128)):
            r = E.block_cast(np.array([a, 1.0]), "mxfp4:block=2:rule=nearest", backend=backend)
            assert int(r.scales[0]) == want_scale

    def test_zero_nan_partial_and_subnormal_blocks(self, backend):
        x = np.array([0.0, -0.0, 0.0, 1.0, np.nan, 2.0, 3.0, 1e-40, 5.0], np.float32)
        r = E.block_cast(x, "mxfp8:block=3", backend=backend)
        assert r.scales.tolist() == [0, 255, 127 - 8 + 2]  # 2^-127; NaN; 5 -> 2^(2 - 8)
        v = r.array.to_float()
        assert v[:3].tolist() == [0.0, -0.0, 0.0] and np.signbit(v[1])
        assert np.isnan(v[3:6]).all()
        assert v[6:].tolist() == [3.0, 0.0, 5.0]  # 1e-40 / 2^-6 underflows e4m3
        r = E.block_cast(np.array([1e-40, 2e-40], np.float32), "mxfp8:daz", backend=backend)
        assert r.array.to_float().tolist() == [0.0, 0.0] and int(r.scales[0]) == 0
        r = E.block_cast(np.array([1e-40, 2e-40], np.float32), "mxfp8", backend=backend)
        assert r.array.to_float()[1] > 0

    @pytest.mark.parametrize("elem", ["", ":rtz", ":rna", ":floor", ":ceil", ":odd", ":sr8",
                                      ":sr16"])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_quotients_at_and_beside_ties(self, elem, dtype):
        """A non-power-of-two divisor (UE4M3 scale 1.375 = 11 * 2^-3, and with the tensor
        scale a 24-bit T) runs on the double quotient x / D: values at every E2M1 grid
        point and midpoint times D, and 1, 2^-20 ... 2^-52 relative beside them, give the
        exact reference's codes under every rounding (docs/floats.md: the quotient never
        lands on a grid point or midpoint unless the exact one does)."""
        fmt = parse_format(f"nvfp4:nots:rule=nearest{elem}")
        ties = np.array([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0])
        rel = [0.0] + [s * 2.0 ** -k for k in (20, 23, 24, 30, 40, 45, 52) for s in (1, -1)]
        vals = np.concatenate([ties * (1 + r) for r in rel]) * 1.375
        vals = np.concatenate([vals, -vals]).astype(dtype)
        x = np.empty((vals.size, 16), dtype)
        x[:] = dtype(8.25)  # amax 8.25 = 6 * 1.375: the block scale is 1.375
        x[:, 1] = vals
        for f in (fmt, parse_format(f"nvfp4:rule=nearest{elem}")):
            want = rb.quantize(x, f, 5)
            for be in BACKENDS:
                got = E.block_cast(x, f, seed=5, backend=be)
                assert np.array_equal(got.array.codes, want.codes), (be, str(f), dtype)
                assert np.array_equal(got.scales, want.scales), (be, str(f))

    @pytest.mark.parametrize("name", ["mxfp8", "mxfp8e5m2", "mxfp6", "mxfp6e3m2", "mxfp4"])
    @pytest.mark.parametrize("opts", ["", ":rule=ceil", ":rule=even", ":rule=rceil",
                                      ":rule=nearest", ":daz", ":axis=0", ":block=7"])
    def test_mx_float32_path(self, name, opts):
        """Float32 inputs under a power-of-two scale and RNE elements take the float32 MX
        kernels: values over 2^-149..2^127 (float32 subnormals, whose quotients are not
        normal floats and take the general path), signed zeros, NaN and inf blocks, partial
        blocks and the axis-0 layout give the exact reference's codes, scales and clips."""
        fmt = parse_format(name + opts)
        r = np.random.default_rng(abs(hash((name, opts))) % 2**32)
        x = (r.normal(size=(24, 70)) * 2.0 ** r.integers(-150, 110, (24, 1))
             * 2.0 ** r.integers(-12, 12, (24, 70))).astype(np.float32)
        x[0, :5] = [0.0, -0.0, 1e-45, -3e-39, 2e-38]
        x[1, 3] = np.nan
        x[2, 40] = -np.inf
        x[3, :] = -0.0
        want = rb.quantize(x, fmt, 0)
        for be in BACKENDS:
            got = E.block_cast(x, fmt, backend=be)
            assert np.array_equal(got.array.codes, want.codes), (be, str(fmt))
            assert np.array_equal(got.scales, want.scales), (be, str(fmt))
            assert got.clipped == want.clipped, (be, str(fmt))

    def test_mxint8_minus_two(self, backend):
        x = np.array([-2.0, 1.0, -1.99])
        sym = E.block_cast(x, "mxint8:block=3", backend=backend)
        asym = E.block_cast(x, "mxint8:block=3:asym", backend=backend)
        assert sym.scales[0] == asym.scales[0] == 128  # floor(log2 2) - 0 = 1
        assert sym.array.codes.tolist() == [-64, 32, -64]
        x = np.array([-1.999, 0.5, 1.0])  # scale 2^0: -1.999 * 64 = -127.9
        assert E.block_cast(x, "mxint8:block=3", backend=backend).array.codes[0] == -127
        assert E.block_cast(x, "mxint8:block=3:asym", backend=backend).array.codes[0] == -128

    def test_nvfp4_tensor_scale(self, backend):
        """T = fp32(amax / (448 * 6)); block scales UE4M3 rounded up; value = q * S * T."""
        x = np.linspace(-1.0, 1.0, 32, dtype=np.float32) * 100
        r = E.block_cast(x, "nvfp4", backend=backend)
        assert r.tensor_scale == float(np.float32(100.0 / 2688.0))
        v = r.array.to_float()
        # RNE in E2M1: at most half its widest step (2, between 4 and 6), times S * T
        assert np.abs(v - x).max() <= 1.0 * (r.array.scale * r.tensor_scale).max()
        # T = fp32(100 / 2688) is rounded down, so the top block's scale 100 / (6 T) exceeds
        # 448 and saturates: the two elements +-100 clip, by less than 2^-23 relative
        assert r.clipped == 2 and r.scales.tolist() == [126, 126]
        assert np.abs(np.abs(v[[0, -1]]) - 100).max() < 100 * 2.0 ** -23
        y = x * np.float32(0.5)  # below the top of a block: the rounded-up scale clips nothing
        r = E.block_cast(np.concatenate([x, y[:16]]), "nvfp4", backend=backend)
        assert r.clipped == 2

    def test_layout_of_the_scale_grid(self, backend):
        x = np.arange(64 * 3, dtype=np.float64).reshape(64, 3)
        assert E.block_cast(x, "mxfp8:axis=0", backend=backend).scales.shape == (2, 3)
        assert E.block_cast(x, "mxfp8:tile=16x2", backend=backend).scales.shape == (4, 2)
        assert E.block_cast(x, "mxfp8", backend=backend).scales.shape == (64, 1)

    @pytest.mark.parametrize("text, match", [
        ("mxfp8:block=0", "Block.block must be in"),
        ("nvfp4:rule=floor", "power-of-two rule"),
        ("mxfp4:asym", "MXINT8's option"),
        ("nvfp4:sr", "k <= 16 random bits"),
        ("mxfp8:rule=median", "Block.scale_rule must be one of"),
        ("mxfp8:tile=4", "tile needs ROWSxCOLS"),
    ])
    def test_bad_formats(self, text, match):
        with pytest.raises(ValueError, match=match):
            parse_format(text)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="at least 2 dimensions"):
            E.block_cast(np.ones(4), "mxfp8:tile=2x2")
        with pytest.raises(ValueError, match="axis=3 is out of range"):
            E.block_cast(np.ones(4), "mxfp8:axis=3")
        with pytest.raises(ValueError, match="block_cast takes a block format"):
            E.block_cast(np.ones(4), "e4m3")
        with pytest.raises(ValueError, match="has no NaN"):
            E.block_cast(np.array([np.nan]), Block(parse_format("e2m1"),
                                                    scale=parse_format("float5.0:none:unsigned:nozero")))

    def test_grammar_round_trips(self):
        for text in ("mxfp8", "mxfp8e5m2:rule=rceil", "mxfp6:block=16:axis=0", "mxfp4:tile=16x16",
                     "nvfp4:sr8:nots", "mxint8:rtz:asym", "nvfp4:rule=nearest", "mxfp8:daz"):
            f = parse_format(text)
            assert str(f) == text and parse_format(str(f)) == f


class TestBlockMatmul:
    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(["mxfp8", "mxfp4", "nvfp4", "mxfp6", "mxint8", "mxfp8e5m2"]),
           st.sampled_from(["mxfp8", "nvfp4", "e4m3"]), st.integers(1, 70), st.data())
    def test_fp32_accumulation_against_a_float32_oracle(self, fa, fb, K, data):
        """Each product element * scale is exact; the oracle sums them in numpy float32 in
        k order (every product is a float32 here), multiplies by the float32 alpha
        T_a * T_b and rounds into fp32."""
        r = np.random.default_rng(data.draw(st.integers(0, 2**32)))
        x = r.normal(size=(3, K)) * 2.0 ** r.integers(-4, 4, (3, K))
        y = r.normal(size=(K, 2)) * 2.0 ** r.integers(-4, 4, (K, 2))
        fa_, fb_ = parse_format(fa), parse_format(fb)
        if isinstance(fb_, Block):
            fb_ = Block(**{**fb_.__dict__, "axis": 0})
        a, b = E.cast(x, fa_), E.cast(y, fb_)
        av = (a.to_float() / a.tensor_scale).astype(np.float32)
        bv = (b.to_float() / b.tensor_scale).astype(np.float32)
        acc = np.zeros((3, 2), np.float32)
        for k in range(K):
            acc += av[:, k:k + 1] * bv[k:k + 1, :]
        alpha = np.float32(a.tensor_scale) * np.float32(b.tensor_scale)
        want = acc * alpha
        for be in BACKENDS:
            got = E.matmul(a, b, acc="fp32", backend=be).to_float()
            assert np.array_equal(got, want.astype(np.float64)), be

    def test_hopper_model_takes_block_operands(self, backend):
        a = E.cast(np.full((2, 4096), 1.125), "mxfp8")
        b = E.cast(np.ones((4096, 3)), "mxfp8:axis=0")
        assert np.all(E.matmul(a, b, "fp32", "hopper_fp8", backend=backend).to_float() == 4324)
        assert np.all(E.matmul(a, b, "fp32", "hopper_fp8_promote128",
                               backend=backend).to_float() == 4608)

    @settings(max_examples=40, deadline=None)
    @given(st.sampled_from(["mxfp8", "mxfp4", "mxint8", "mxfp8e5m2", "nvfp4:nots"]),
           st.sampled_from(["fp32", "bf16", "hopper_fp8", "hopper_fp8_promote128", "cdna3",
                            "blackwell"]),
           st.sampled_from([None, "bf16", "e5m2"]), st.integers(1, 80), st.data())
    def test_the_value_path_equals_the_carrier_path(self, f, acc, out, K, data):
        """Block operands without tensor scales go to the fast paths as exact float64 values
        (element x block scale); encoded as carrier codes instead, the general entry gives
        the same codes, for every accumulator (fp32, bf16, the matrix-unit models)."""
        from lowbit.emulators import _block_ops, _float_ops

        r = np.random.default_rng(data.draw(st.integers(0, 2**32)))
        x = r.normal(size=(4, K)) * 2.0 ** r.integers(-6, 6, (4, K))
        y = r.normal(size=(K, 3)) * 2.0 ** r.integers(-6, 6, (K, 3))
        fmt = parse_format(f)
        a, b = E.cast(x, fmt), E.cast(y, Block(**{**fmt.__dict__, "axis": 0}))
        for be in BACKENDS:
            backend = E.get_backend(be)
            got = E.matmul(a, b, out, acc, backend=be)
            (ca, _), (cb, _) = _block_ops.to_carrier(a, backend), _block_ops.to_carrier(b, backend)
            want = _float_ops.matmul(ca, cb, out, acc, "sequential", False, 0, backend)
            assert got.fmt == want.fmt and np.array_equal(got.codes, want.codes), (be, acc)
