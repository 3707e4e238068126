"""LSH hashing and bucket tables for SLIDE-style sparse layers (dispatch to the backends).

- :func:`simhash`: the buckets (n, L) of the rows of an EmuArray (its integer codes) or of
  an integer array, by a :class:`~lowbit.numerics.lsh.SimHash` (exact integer sums: the
  same on every backend and the reference);
- :func:`dwta`: the same by densified winner-take-all hashing (:class:`~lowbit.numerics.lsh.DWTA`);
- :class:`Tables` / :func:`build_tables`: L tables in a compact sorted layout -- per table
  the neuron ids sorted by bucket (a stable counting sort, ascending id within a bucket)
  and ``offsets`` (L, 2**K + 1) into them -- O(L (N + 2**K)) integers instead of SLIDE's
  2**K x capacity arrays;
- :meth:`Tables.union`: the ids in any of a query's L buckets, ascending;
  :meth:`Tables.unions`: all queries' at once (plus extra ids), CSR, one kernel call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.emulators.array import EmuArray, contiguous, kernel_codes
from lowbit.emulators.backends import get_backend
from lowbit.numerics.lsh import DWTA, SimHash

LIMIT = 1 << 62


def _codes(x) -> np.ndarray:
    if isinstance(x, EmuArray):
        if x.scale is not None:
            raise ValueError("simhash: arrays with scales (binary/ternary with a scale) hash "
                             "their codes; pass from_codes(x.codes, fmt)")
        return contiguous(kernel_codes(x))
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"simhash: integer codes expected (an EmuArray or an int array), got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def simhash(x, spec: SimHash, *, backend: str | None = None) -> np.ndarray:
    """Buckets (n, L) int64 of the n rows of ``x`` (n, spec.dim), see numerics/lsh.py."""
    if not isinstance(spec, SimHash):
        raise TypeError(f"simhash: spec must be a SimHash, got {spec!r}")
    c = _codes(x)
    if c.ndim != 2 or c.shape[1] != spec.dim:
        raise ValueError(f"simhash: rows of shape {c.shape}, expected (n, {spec.dim})")
    peak = max(int(c.max()), -int(c.min())) if c.size else 0
    if peak * spec.terms >= LIMIT:
        raise ValueError(f"simhash: codes up to {peak} summed over {spec.terms} terms could "
                         "overflow 62 bits")
    idx, sign = spec.projections()
    return get_backend(backend).simhash(c, idx, sign, spec.bits, spec.tables)


def dwta(x, spec: DWTA, *, backend: str | None = None) -> np.ndarray:
    """Buckets (n, L) int64 of the n rows of ``x`` (n, spec.dim) by densified
    winner-take-all hashing, see numerics/lsh.py (comparisons only: no overflow)."""
    if not isinstance(spec, DWTA):
        raise TypeError(f"dwta: spec must be a DWTA, got {spec!r}")
    c = _codes(x)
    if c.ndim != 2 or c.shape[1] != spec.dim:
        raise ValueError(f"dwta: rows of shape {c.shape}, expected (n, {spec.dim})")
    return get_backend(backend).dwta(c, np.ascontiguousarray(spec.bins()),
                                     np.ascontiguousarray(spec.probes()), spec.bits, spec.tables,
                                     spec.shift)


def lsh_hash(x, spec: "SimHash | DWTA", *, backend: str | None = None) -> np.ndarray:
    """:func:`simhash` or :func:`dwta`, by the spec's family."""
    return (dwta if isinstance(spec, DWTA) else simhash)(x, spec, backend=backend)


@dataclass(frozen=True)
class Tables:
    """L hash tables of N ids: table t's bucket b holds ``ids[t, offsets[t, b]:offsets[t, b+1]]``."""

    spec: "SimHash | DWTA"
    offsets: np.ndarray  # (L, buckets + 1) int64
    ids: np.ndarray      # (L, N) int64

    @property
    def size(self) -> int:
        return self.ids.shape[1]

    def bucket(self, t: int, b: int) -> np.ndarray:
        return self.ids[t, self.offsets[t, b]:self.offsets[t, b + 1]]

    def loads(self) -> np.ndarray:
        """Ids per bucket, (L, 2**K)."""
        return np.diff(self.offsets, axis=1)

    def union(self, query_buckets: np.ndarray) -> np.ndarray:
        """The ids in any of one query's buckets (L,), ascending."""
        q = np.asarray(query_buckets, np.int64)
        if q.shape != (self.spec.tables,):
            raise ValueError(f"union: one bucket per table ({self.spec.tables}), got {q.shape}")
        parts = [self.bucket(t, int(b)) for t, b in enumerate(q)]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def unions(self, query_buckets: np.ndarray, extra_offsets=None, extra_ids=None, *,
               backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every query's :meth:`union` at once, with its extra ids (e.g. its labels, CSR
        ``extra_offsets`` (B + 1,) / ``extra_ids``) merged in: CSR (offsets (B + 1,), ids),
        each query's ids ascending and distinct. One kernel call (C / Numba; the reference
        is :func:`lowbit.numerics.reference.lsh.bucket_union`)."""
        q = np.ascontiguousarray(query_buckets, dtype=np.int64)
        B, L = q.shape[0], self.spec.tables
        if q.ndim != 2 or q.shape[1] != L:
            raise ValueError(f"unions: buckets (B, {L}) expected, got {q.shape}")
        if q.size and (q.min() < 0 or q.max() >= self.offsets.shape[1] - 1):
            raise ValueError(f"unions: buckets must lie in 0..{self.offsets.shape[1] - 2}")
        eoff = np.zeros(B + 1, np.int64) if extra_offsets is None else \
            np.ascontiguousarray(extra_offsets, dtype=np.int64)
        eids = np.zeros(0, np.int64) if extra_ids is None else \
            np.ascontiguousarray(extra_ids, dtype=np.int64)
        if eoff.shape != (B + 1,) or eoff[0] != 0 or eoff[-1] != len(eids) \
                or (np.diff(eoff) < 0).any():
            raise ValueError("unions: extra_offsets must be (B + 1,), nondecreasing from 0 to "
                             "len(extra_ids)")
        if eids.size and (eids.min() < 0 or eids.max() >= self.size):
            raise ValueError(f"unions: extra ids must lie in 0..{self.size - 1}")
        loads = np.diff(self.offsets, axis=1)
        cap = int(loads[np.arange(L), q].sum()) + len(eids)  # an upper bound on the output
        return get_backend(backend).bucket_union(np.ascontiguousarray(self.offsets),
                                                 np.ascontiguousarray(self.ids), q, eoff, eids,
                                                 cap)

    def counts(self, query_buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, in how many of the query's L buckets each appears), ids ascending."""
        q = np.asarray(query_buckets, np.int64)
        parts = np.concatenate([self.bucket(t, int(b)) for t, b in enumerate(q)])
        return np.unique(parts, return_counts=True)


def build_tables(buckets: np.ndarray, spec: "SimHash | DWTA") -> Tables:
    """The tables of N neurons whose buckets (N, L) are given (e.g. ``simhash(W_aug, spec)``)."""
    b = np.asarray(buckets, np.int64)
    if b.ndim != 2 or b.shape[1] != spec.tables:
        raise ValueError(f"build_tables: buckets of shape {b.shape}, expected (N, {spec.tables})")
    if b.size and (b.min() < 0 or b.max() >= spec.buckets):
        raise ValueError(f"build_tables: buckets must lie in 0..{spec.buckets - 1}")
    N, L = b.shape
    ids = np.argsort(b.T, axis=1, kind="stable").astype(np.int64)
    offsets = np.zeros((L, spec.buckets + 1), np.int64)
    for t in range(L):
        offsets[t, 1:] = np.cumsum(np.bincount(b[:, t], minlength=spec.buckets))
    return Tables(spec, offsets, ids)
