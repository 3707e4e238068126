"""Per-sample sparse products (SLIDE's forward and backward): reference == Numba == C, bit
for bit, float32 and int64 codes; they equal the dense product under the same mask."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowbit.emulators.sparse import sparse_dots, sparse_grad_input, sparse_grad_rows
from lowbit.numerics.reference import sparse as ref


def _problem(seed, B, N, d, per, dtype):
    rs = np.random.default_rng(seed)
    counts = rs.integers(0, per + 1, B)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = rs.integers(0, N, int(offsets[-1])).astype(np.int64)  # repeats allowed
    if dtype == np.float32:
        # wide exponent range: rounding and order matter
        x = (rs.standard_normal((B, d)) * 2.0 ** rs.integers(-20, 20, (B, d))).astype(np.float32)
        w = (rs.standard_normal((N, d)) * 2.0 ** rs.integers(-20, 20, (N, d))).astype(np.float32)
        g = (rs.standard_normal(len(ids)) * 2.0 ** rs.integers(-20, 20, len(ids))).astype(np.float32)
    else:
        x, w = rs.integers(-2**20, 2**20, (B, d)), rs.integers(-2**20, 2**20, (N, d))
        g = rs.integers(-2**20, 2**20, len(ids))
    return x, w, g, offsets, ids


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32), st.integers(0, 7), st.integers(1, 12), st.integers(0, 9),
       st.integers(0, 6), st.sampled_from([np.float32, np.int64]))
def test_backends_equal_the_reference(backend, seed, B, N, d, per, dtype):
    x, w, g, offsets, ids = _problem(seed, B, N, d, per, dtype)
    dots = sparse_dots(x, w, offsets, ids, backend=backend)
    assert dots.dtype == dtype and np.array_equal(dots, ref.sparse_dots(x, w, offsets, ids))
    dx = sparse_grad_input(g, w, offsets, ids, backend=backend)
    assert dx.dtype == dtype and np.array_equal(dx, ref.sparse_grad_input(g, w, offsets, ids))
    rows, dw = sparse_grad_rows(g, x, offsets, ids, backend=backend)
    want_rows, want = ref.sparse_grad_rows(g, x, offsets, ids)
    assert np.array_equal(rows, want_rows) and np.array_equal(dw, want)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_large_problem_backends_agree(dtype):
    """Big enough for the threaded paths (dynamic schedules in C, prange in Numba)."""
    x, w, g, offsets, ids = _problem(1, 64, 3000, 96, 200, dtype)
    for f, args in ((sparse_dots, (x, w)), (sparse_grad_input, (g, w))):
        a = f(*args, offsets, ids, backend="numba")
        assert np.array_equal(a, f(*args, offsets, ids, backend="c"))
    (ra, a), (rb, b) = (sparse_grad_rows(g, x, offsets, ids, backend=k) for k in ("numba", "c"))
    assert np.array_equal(ra, rb) and np.array_equal(a, b)


def test_integer_products_equal_the_dense_masked_product():
    """Exact int64 sums: the active pairs of the dense product, and its transposed products
    restricted to the mask."""
    x, w, g, offsets, ids = _problem(3, 20, 50, 16, 10, np.int64)
    sample = np.repeat(np.arange(20), np.diff(offsets))
    assert np.array_equal(sparse_dots(x, w, offsets, ids), (x @ w.T)[sample, ids])
    G = np.zeros((20, 50), np.int64)
    np.add.at(G, (sample, ids), g)  # the dense gradient of the masked logits
    assert np.array_equal(sparse_grad_input(g, w, offsets, ids), G @ w)
    rows, dw = sparse_grad_rows(g, x, offsets, ids)
    assert np.array_equal(rows, np.unique(ids)) and np.array_equal(dw, (G.T @ x)[rows])


def test_float32_sums_in_order_not_as_blas_does():
    """x . w summed j ascending in float32: 2^24 + 1 - 2^24 loses the 1 (BLAS may not)."""
    x = np.array([[2.0**24, 1.0, -(2.0**24)]], np.float32)
    w = np.ones((1, 3), np.float32)
    assert sparse_dots(x, w, [0, 1], [0])[0] == 0.0


@pytest.mark.parametrize("bad, match", [
    (dict(offsets=[0, 2]), "offsets"), (dict(ids=[0, 5]), "ids must be"),
    (dict(dtype=np.float64), "float32 or int64"),
])
def test_bad_input_is_refused(bad, match):
    dtype = bad.get("dtype", np.float32)
    x, w = np.ones((2, 3), dtype), np.ones((4, 3), dtype)
    with pytest.raises((ValueError, TypeError), match=match):
        sparse_dots(x, w, bad.get("offsets", [0, 1, 2]), bad.get("ids", [0, 1]))


def test_integer_overflow_is_refused():
    x = np.full((1, 4), 2**31, np.int64)
    with pytest.raises(ValueError, match="overflow 62 bits"):
        sparse_dots(x, x, [0, 1], [0])
