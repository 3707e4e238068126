"""Exact reference of the LSH families of :mod:`lowbit.numerics.lsh`: Python integers."""

from __future__ import annotations

import numpy as np

from lowbit.numerics.lsh import DWTA, SimHash


def simhash(codes: np.ndarray, spec: SimHash) -> np.ndarray:
    """Buckets (n, L) of the rows of ``codes`` (n, dim): bit j of table l is 1 when
    sum_t sign[h, t] * codes[row, idx[h, t]] < 0 (h = l * K + j), packed high bit first."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != spec.dim:
        raise ValueError(f"simhash: codes of shape {codes.shape}, expected (n, {spec.dim})")
    idx, sign = spec.projections()
    K, L = spec.bits, spec.tables
    rows = [[int(c) for c in row] for row in codes.tolist()]
    out = np.zeros((len(rows), L), np.int64)
    for r, row in enumerate(rows):
        for t in range(L):
            bucket = 0
            for j in range(K):
                h = t * K + j
                s = sum(int(sg) * row[int(c)] for c, sg in zip(idx[h], sign[h]))
                bucket |= (1 if s < 0 else 0) << (K - 1 - j)
            out[r, t] = bucket
    return out


def _bin_code(row, coords) -> int | None:
    """Position of the largest non-zero code among coords (first on ties), None if all zero."""
    best, pos = None, None
    for i, c in enumerate(coords):
        v = row[int(c)]
        if v != 0 and (best is None or v > best):
            best, pos = v, i
    return pos


def dwta(codes: np.ndarray, spec: "DWTA") -> np.ndarray:
    """Buckets (n, L) by densified winner-take-all hashing (see numerics/lsh.py)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != spec.dim:
        raise ValueError(f"dwta: codes of shape {codes.shape}, expected (n, {spec.dim})")
    bins, probes = spec.bins(), spec.probes()
    K, L = spec.bits, spec.tables
    out = np.zeros((codes.shape[0], L), np.int64)
    for r, row in enumerate(codes.tolist()):
        raw = [_bin_code(row, bins[b]) for b in range(bins.shape[0])]
        for t in range(L):
            bucket = 0
            for j in range(K):
                h = t * K + j
                code = raw[h]
                if code is None:
                    code = next((raw[int(p)] for p in probes[h] if raw[int(p)] is not None), 0)
                bucket += code << ((K - 1 - j) * spec.shift)
            out[r, t] = bucket
    return out


def bucket_union(offsets: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                 extra_offsets: np.ndarray, extra_ids: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per query b: the ascending distinct ids of its L buckets (table t's bucket q = ids[t,
    offsets[t, q]:offsets[t, q + 1]]) and of its extra ids (extra_ids[extra_offsets[b]:
    extra_offsets[b + 1]]), as CSR (out_offsets (B + 1,), out_ids)."""
    out, counts = [], []
    for b, q in enumerate(np.asarray(queries).tolist()):
        got = {int(i) for t, qb in enumerate(q) for i in ids[t, offsets[t, qb]:offsets[t, qb + 1]]}
        got |= {int(i) for i in extra_ids[extra_offsets[b]:extra_offsets[b + 1]]}
        out.extend(sorted(got))
        counts.append(len(got))
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), np.array(out, np.int64)
