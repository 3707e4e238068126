"""LSH kernels in Numba: the twins of ``csrc/lsh.c``."""

from __future__ import annotations

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import jit, pjit


@pjit
def simhash(codes, idx, sign, K, L, out):
    """out[r, t] = the K-bit bucket of row r in table t (see numerics/lsh.py)."""
    n = codes.shape[0]
    m = idx.shape[1]
    for r in prange(n):
        for t in range(L):
            bucket = 0
            for j in range(K):
                h = t * K + j
                s = 0
                for q in range(m):
                    s += sign[h, q] * codes[r, idx[h, q]]
                if s < 0:
                    bucket |= 1 << (K - 1 - j)
            out[r, t] = bucket


@pjit
def dwta(codes, bins, probes, K, L, shift, out):
    """out[r, t] = the DWTA bucket of row r in table t (see numerics/lsh.py)."""
    n = codes.shape[0]
    n_bins, width = bins.shape
    n_probes = probes.shape[1]
    for r in prange(n):
        raw = np.empty(n_bins, np.int64)
        for b in range(n_bins):
            pos = -1
            best = 0
            for i in range(width):
                v = codes[r, bins[b, i]]
                if v != 0 and (pos < 0 or v > best):
                    best = v
                    pos = i
            raw[b] = pos
        for t in range(L):
            bucket = 0
            for j in range(K):
                h = t * K + j
                code = raw[h]
                if code < 0:
                    code = 0
                    for c in range(n_probes):
                        if raw[probes[h, c]] >= 0:
                            code = raw[probes[h, c]]
                            break
                bucket += code << ((K - 1 - j) * shift)
            out[r, t] = bucket


@jit
def bucket_union_pass(offsets, ids, queries, eoff, eids, stamp, counts, out_off, out, fill):
    """One pass over the queries (stamp: a scratch array of N, entries -1 on entry): with
    ``fill`` false, counts[b] = |union of query b's buckets and extras|; with ``fill``,
    out[out_off[b]:out_off[b + 1]] = that union, ascending (the C twin's union_pass)."""
    L = queries.shape[1]
    for b in range(queries.shape[0]):
        k = out_off[b] if fill else 0
        start = k
        for t in range(L + 1):
            if t < L:
                q = queries[b, t]
                lo, hi, src = offsets[t, q], offsets[t, q + 1], t
            else:
                lo, hi, src = eoff[b], eoff[b + 1], -1
            for e in range(lo, hi):
                i = ids[src, e] if src >= 0 else eids[e]
                if stamp[i] != b:
                    stamp[i] = b
                    if fill:
                        out[k] = i
                    k += 1
        if fill:
            out[start:k] = np.sort(out[start:k])
        else:
            counts[b] = k
