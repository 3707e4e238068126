"""LSH hashing and bucket tables for SLIDE-style sparse layers (dispatch to the backends).

- :func:`simhash`: the buckets (n, L) of the rows of an EmuArray (its integer codes) or of
  an integer array, by a :class:`~lowbit.numerics.lsh.SimHash` (exact integer sums: the
  same on every backend and the reference);
- :func:`dwta`: the same by densified winner-take-all hashing (:class:`~lowbit.numerics.lsh.DWTA`);
- :class:`Tables` / :func:`build_tables`: L tables in a compact sorted layout -- per table
  the neuron ids sorted by bucket (a stable counting sort, ascending id within a bucket)
  and ``offsets`` (L, 2**K + 1) into them -- O(L (N + 2**K)) integers instead of SLIDE's
  2**K x capacity arrays;
- :meth:`Tables.union`: the ids in any of a query's L buckets, ascending.
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
