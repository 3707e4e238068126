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
def bucket_union_counts(offsets, ids, queries, eoff, eids, stamp, counts, lo, hi):
    """counts[b] = |union of query b's buckets and extras| for b in lo..hi-1 (stamp: a
    scratch array of N, entries < lo on entry)."""
    L = queries.shape[1]
    for b in range(lo, hi):
        c = 0
        for t in range(L):
            q = queries[b, t]
            for e in range(offsets[t, q], offsets[t, q + 1]):
                i = ids[t, e]
                if stamp[i] != b:
                    stamp[i] = b
                    c += 1
        for e in range(eoff[b], eoff[b + 1]):
            i = eids[e]
            if stamp[i] != b:
                stamp[i] = b
                c += 1
        counts[b] = c


@jit
def bucket_union_fill(offsets, ids, queries, eoff, eids, stamp, out_off, out, lo, hi):
    """out[out_off[b]:out_off[b + 1]] = query b's union, ascending, for b in lo..hi-1."""
    L = queries.shape[1]
    for b in range(lo, hi):
        k = out_off[b]
        for t in range(L):
            q = queries[b, t]
            for e in range(offsets[t, q], offsets[t, q + 1]):
                i = ids[t, e]
                if stamp[i] != b:
                    stamp[i] = b
                    out[k] = i
                    k += 1
        for e in range(eoff[b], eoff[b + 1]):
            i = eids[e]
            if stamp[i] != b:
                stamp[i] = b
                out[k] = i
                k += 1
        out[out_off[b]:k] = np.sort(out[out_off[b]:k])
