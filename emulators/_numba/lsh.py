"""LSH kernels in Numba: the twins of ``csrc/lsh.c``."""

from __future__ import annotations

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import pjit


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
