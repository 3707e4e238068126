"""Binary and ternary casts and XNOR-popcount matmuls equal the integer reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.numerics import Binary, Fixed, Ternary
from lowbit.numerics import testing as lt
from lowbit.numerics.reference import binary as rb
from lowbit.numerics.reference import fixed as rf
from tests.conftest import BACKENDS
from tests.emulators.helpers import assert_every_backend_gives


def _reference_or_error(cast, x, fmt):
    """The reference's (codes, scale), or the ValueError every backend must raise too."""
    try:
        return cast(x, fmt)
    except ValueError as exc:
        for be in BACKENDS:
            with pytest.raises(ValueError) as info:
                E.cast(x, fmt, backend=be)
            assert str(info.value) == str(exc)
        return None


def _same_scale(result, expected):
    if expected is None:
        assert result.scale is None
    else:
        assert np.array_equal(np.broadcast_to(result.scale, result.shape),
                              np.broadcast_to(expected, result.shape))


class TestCast:
    """Binary/ternary codes and scales match the reference on every backend."""

    @given(lt.binary_formats(), st.data())
    def test_binary(self, fmt, data):
        min_dims = 2 if fmt.scale == "per_channel" else 0
        x = data.draw(lt.float_arrays(fmt, shape=lt.shapes(min_dims=min_dims), allow_infinity=True))
        expected = _reference_or_error(rb.cast_binary, x, fmt)
        if expected is None:
            return
        codes, scale = expected
        assert_every_backend_gives(lambda be: E.cast(x, fmt, backend=be), codes, repr(fmt))
        for be in BACKENDS:
            _same_scale(E.cast(x, fmt, backend=be), scale)

    @given(lt.ternary_formats(), st.data())
    def test_ternary(self, fmt, data):
        dtype = data.draw(st.sampled_from([np.float32, np.float64]))
        x = data.draw(lt.float_arrays(fmt, dtype=dtype))
        expected = _reference_or_error(rb.cast_ternary, x, fmt)
        if expected is None:
            return
        codes, scale = expected
        assert_every_backend_gives(lambda be: E.cast(x, fmt, backend=be), codes, repr(fmt))
        for be in BACKENDS:
            _same_scale(E.cast(x, fmt, backend=be), scale)


def _codes(fmt, shape):
    return lt.codes(fmt, shape)


class TestMatmul:
    """Popcount matmuls equal the exact integer matmul; scales multiply outside."""

    @given(st.sampled_from([Binary(), Ternary(scale=None)]),
           st.sampled_from([Binary(), Ternary(scale=None)]),
           st.integers(0, 4), st.integers(0, 200), st.integers(0, 4), st.data())
    def test_popcount_matmul(self, fa, fb, M, K, N, data):
        a = data.draw(_codes(fa, (M, K)))
        b = data.draw(_codes(fb, (K, N)))
        expected = rf.matmul(a, 0, b, 0, Fixed(32, 0))
        assert_every_backend_gives(lambda be: E.matmul(E.from_codes(a, fa), E.from_codes(b, fb), backend=be),
                         expected, f"{fa!r} @ {fb!r} K={K}")

    @given(st.integers(1, 4), st.integers(1, 70), st.integers(1, 4), st.data())
    def test_binary_times_fixed_and_rounded_out(self, M, K, N, data):
        fx = Fixed(8, 3)
        a = data.draw(_codes(Binary(), (M, K)))
        b = data.draw(_codes(fx, (K, N)))
        out = data.draw(lt.fixed_formats(max_bits=16, min_frac=-3, max_frac=6))
        seed = data.draw(lt.seeds())
        assert_every_backend_gives(lambda be: E.matmul(E.from_codes(a, Binary()), E.from_codes(b, fx), out,
                                             seed=seed, backend=be),
                         rf.matmul(a, 0, b, 3, out, seed=seed), "binary @ fixed")
        c = data.draw(_codes(Binary(), (K, N)))
        assert_every_backend_gives(lambda be: E.matmul(E.from_codes(a, Binary()), E.from_codes(c, Binary()),
                                             out, seed=seed, backend=be),
                         rf.matmul(a, 0, c, 0, out, seed=seed), "binary @ binary -> out")

    def test_scales_follow_rows_and_columns(self, backend):
        rs = np.random.default_rng(1)
        w = rs.normal(size=(3, 130))
        x = rs.normal(size=(5, 130))
        bw = E.cast(w, Binary("per_channel"), backend=backend)   # one scale per row of w
        bx = E.cast(x, Binary("mean_abs"), backend=backend)
        y = E.matmul(bx, bw.T, backend=backend)
        expected = (np.sign(x + (x == 0)) * np.abs(x).mean()) @ (np.sign(w + (w == 0)) *
                                                                  np.abs(w).mean(1, keepdims=True)).T
        assert y.scale.shape == (1, 3)  # scalar mean_abs of x times one scale per row of w
        np.testing.assert_allclose(y.to_float(), expected, rtol=1e-12, atol=1e-12)
