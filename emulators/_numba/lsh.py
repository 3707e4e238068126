"""LSH kernels in Numba: the twins of ``csrc/lsh.c``."""

from __future__ import annotations

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
