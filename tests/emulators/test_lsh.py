"""SimHash on integer codes: reference == Numba == C; the projections; the tables."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lowbit.emulators as E
from lowbit.emulators.lsh import build_tables, simhash
from lowbit.numerics.lsh import SimHash
from lowbit.numerics.reference.lsh import simhash as reference


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 10), st.integers(1, 6), st.integers(1, 40), st.sampled_from([1 / 3, 0.1, 1.0]),
       st.integers(0, 2**64 - 1), st.integers(0, 6), st.integers(1, 2**40), st.integers(0, 2**32))
def test_backends_equal_the_reference(backend, K, L, dim, density, seed, n, peak, data_seed):
    spec = SimHash(K, L, dim, density, seed)
    codes = np.random.default_rng(data_seed).integers(-peak, peak + 1, (n, dim))
    got = simhash(codes, spec, backend=backend)
    assert got.shape == (n, L) and got.dtype == np.int64
    assert np.array_equal(got, reference(codes, spec))
    assert got.min(initial=0) >= 0 and got.max(initial=0) < 2**K


def test_projections():
    spec = SimHash(6, 50, 129, seed=7)
    idx, sign = spec.projections()
    assert idx.shape == sign.shape == (300, 43)
    assert all(len(set(r)) == 43 and list(r) == sorted(r) for r in idx.tolist())
    assert set(np.unique(sign)) == {-1, 1} and abs(sign.mean()) < 0.05
    assert np.array_equal(idx, SimHash(6, 50, 129, seed=7).projections()[0])
    assert not np.array_equal(idx, SimHash(6, 50, 129, seed=8).projections()[0])
    # coordinates are used about evenly
    assert np.bincount(idx.ravel(), minlength=129).min() > 50


def test_near_vectors_collide_more_than_random_ones():
    """The LSH property: a 5 % perturbation keeps far more bucket agreements than a random vector."""
    spec = SimHash(6, 30, 128, seed=1)
    rs = np.random.default_rng(0)
    x = rs.standard_normal((200, 128))
    near = x + 0.05 * rs.standard_normal(x.shape)
    far = rs.standard_normal(x.shape)
    q = lambda v: E.cast(v, "fixed16.10")  # noqa: E731
    bx, bn, bf = simhash(q(x), spec), simhash(q(near), spec), simhash(q(far), spec)
    assert (bx == bn).mean() > 0.8 and (bx == bf).mean() < 0.1


def test_codes_not_carriers():
    """The same codes hash the same whatever their format's scale (a row and its 2x are one grid step apart)."""
    spec = SimHash(4, 3, 10, seed=2)
    c = np.random.default_rng(3).integers(-50, 50, (5, 10))
    assert np.array_equal(simhash(E.from_codes(c, "fixed16.4"), spec), simhash(E.from_codes(c, "fixed16.12"), spec))


def test_tables_hold_every_id_once_by_bucket():
    spec = SimHash(5, 4, 16, seed=9)
    codes = np.random.default_rng(1).integers(-100, 100, (300, 16))
    b = simhash(codes, spec)
    t = build_tables(b, spec)
    assert t.offsets.shape == (4, 33) and t.ids.shape == (4, 300)
    for tab in range(4):
        assert sorted(t.ids[tab]) == list(range(300))
        for k in range(32):
            ids = t.bucket(tab, k)
            assert np.all(b[ids, tab] == k) and list(ids) == sorted(ids)
    assert t.loads().sum(axis=1).tolist() == [300] * 4
    u = t.union(b[7])
    want = sorted({i for i in range(300) if any(b[i, tab] == b[7, tab] for tab in range(4))})
    assert list(u) == want and 7 in u
    ids, counts = t.counts(b[7])
    assert list(ids) == want and counts[list(ids).index(7)] == 4


@pytest.mark.parametrize("bad, match", [
    (dict(bits=0), "SimHash.bits"), (dict(bits=25), "SimHash.bits"), (dict(density=0), "density"),
    (dict(tables=True), "SimHash.tables"), (dict(seed=-1), "seed"),
])
def test_bad_specs(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SimHash(**({"bits": 4, "tables": 2, "dim": 8} | bad))


def test_bad_inputs():
    spec = SimHash(4, 2, 8)
    with pytest.raises(ValueError, match=r"expected \(n, 8\)"):
        simhash(np.zeros((3, 7), np.int64), spec)
    with pytest.raises(TypeError, match="integer codes"):
        simhash(np.zeros((3, 8)), spec)
    with pytest.raises(ValueError, match="overflow"):
        simhash(np.full((1, 8), 2**61), spec)
    with pytest.raises(ValueError, match="buckets must lie"):
        build_tables(np.full((2, 2), 16), spec)


# --- DWTA ----------------------------------------------------------------------------------

from lowbit.emulators.lsh import dwta  # noqa: E402
from lowbit.numerics.lsh import DWTA  # noqa: E402
from lowbit.numerics.reference.lsh import dwta as dwta_reference  # noqa: E402


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 8), st.integers(1, 6), st.integers(8, 40), st.sampled_from([4, 8]),
       st.sampled_from([2, 3]), st.integers(0, 2**64 - 1), st.integers(0, 6),
       st.sampled_from([0.0, 0.5, 0.95]), st.integers(0, 2**32))
def test_dwta_backends_equal_the_reference(backend, K, L, dim, width, shift, seed, n, zeros, data_seed):
    spec = DWTA(K, L, dim, width, shift, seed)
    rs = np.random.default_rng(data_seed)
    codes = rs.integers(-1000, 1000, (n, dim)) * (rs.random((n, dim)) >= zeros)  # sparse rows densify
    got = dwta(codes, spec, backend=backend)
    assert np.array_equal(got, dwta_reference(codes, spec))
    assert got.min(initial=0) >= 0 and got.max(initial=0) < spec.buckets


def test_dwta_semantics():
    spec = DWTA(2, 3, 16, 8, 3, seed=1)
    bins = spec.bins()
    assert bins.shape[1] == 8 and bins.shape[0] >= spec.hashes
    row = np.zeros((1, 16), np.int64)
    assert dwta(row, spec).tolist() == [[0, 0, 0]]  # nothing non-zero anywhere: codes 0
    b0 = bins[0]
    row[0, b0[5]] = 7  # the only non-zero code of bin 0 is at position 5
    row[0, b0[2]] = -9  # a negative code is smaller
    out = dwta(row, spec)
    assert out[0, 0] >> 3 == 5
    # SLIDE's 2-bit packing shift at K = 6: 9,556 reachable bucket indices (the fact sheet)
    assert DWTA(6, 50, 128, shift=2).buckets == 9556 and DWTA(6, 50, 128).buckets == 2**18


def test_dwta_tables_and_bad_specs():
    spec = DWTA(4, 3, 24, seed=2)
    b = dwta(np.random.default_rng(0).integers(0, 50, (100, 24)), spec)
    t = build_tables(b, spec)
    assert t.loads().sum(axis=1).tolist() == [100] * 3
    with pytest.raises(ValueError, match="smaller than a bin"):
        DWTA(2, 2, 4, bin=8)
    with pytest.raises(ValueError, match="DWTA.shift"):
        DWTA(2, 2, 16, shift=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 5), st.integers(1, 8), st.integers(1, 300), st.integers(0, 40),
       st.integers(0, 4), st.integers(0, 2**32))
def test_bucket_unions_equal_the_reference(backend, K, L, N, B, extras, seed):
    from lowbit.numerics.reference.lsh import bucket_union

    rs = np.random.default_rng(seed)
    spec = SimHash(K, L, 8, seed=seed)
    t = build_tables(rs.integers(0, 2**K, (N, L)), spec)
    q = rs.integers(0, 2**K, (B, L))
    counts = rs.integers(0, extras + 1, B)
    eoff = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    eids = rs.integers(0, N, int(eoff[-1]))
    off, ids = t.unions(q, eoff, eids, backend=backend)
    want_off, want = bucket_union(t.offsets, t.ids, q, eoff, eids)
    assert np.array_equal(off, want_off) and np.array_equal(ids, want)
    for b in range(B):  # the single-query union, plus the extras
        assert np.array_equal(ids[off[b]:off[b + 1]],
                              np.union1d(t.union(q[b]), eids[eoff[b]:eoff[b + 1]]))


def test_bucket_unions_refuse_bad_input():
    t = build_tables(np.zeros((5, 2), np.int64), SimHash(2, 2, 4, seed=0))
    with pytest.raises(ValueError, match="buckets must lie"):
        t.unions(np.array([[0, 4]]))
    with pytest.raises(ValueError, match="extra ids"):
        t.unions(np.array([[0, 1]]), [0, 1], [7])
