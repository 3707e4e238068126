"""Binary and ternary kernels in Numba: the twins of ``csrc/binary.c``."""

from __future__ import annotations

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import pjit, popcount64

U64 = np.uint64


@pjit
def binary_cast(x, out):
    """out[i] = +1 if x[i] >= 0 else -1; returns 1 if any x is NaN."""
    nans = 0
    for i in prange(x.size):
        v = x[i]
        nans += v != v
        out[i] = 1 if v >= 0 else -1
    return 1 if nans else 0


@pjit
def ternary_cast(x, threshold, out):
    """out[i] = sign(x[i]) if |x[i]| > threshold else 0; returns 1 if any x is NaN."""
    nans = 0
    for i in prange(x.size):
        v = np.float64(x[i])
        nans += v != v
        out[i] = (1 if v > 0 else -1) if abs(v) > threshold else 0
    return 1 if nans else 0


@pjit
def pack_bits(codes, W, value, words):
    """words[r, k // 64] bit k % 64 set where codes[r, k] == value (padding 0)."""
    rows, K = codes.shape
    for r in prange(rows):
        for w in range(W):
            word = U64(0)
            end = min(K - w * 64, 64)
            for b in range(end):
                if codes[r, w * 64 + b] == value:
                    word |= U64(1) << U64(b)
            words[r, w] = word


@pjit
def pack_cols(codes, W, value, words):
    """words[j, k // 64] bit k % 64 set where codes[k, j] == value (no transpose formed).

    Columns go in blocks; for each word, 64 rows of the block are folded into a
    contiguous temporary (a vectorizable loop over j) and then stored."""
    K, N = codes.shape
    block = 256
    for jb in prange((N + block - 1) // block):
        j0 = jb * block
        j1 = min(j0 + block, N)
        tmp = np.empty(j1 - j0, np.uint64)
        for w in range(W):
            tmp[:] = 0
            for b in range(min(64, K - w * 64)):
                row = w * 64 + b
                for j in range(j1 - j0):
                    tmp[j] |= U64(codes[row, j0 + j] == value) << U64(b)
            for j in range(j1 - j0):
                words[j0 + j, w] = tmp[j]


@pjit
def binary_matmul(a, bt, K, out):
    """out[i, j] = K - 2 * popcount(a[i] XOR bt[j]) over packed words."""
    M, W = a.shape
    N = bt.shape[0]
    for i in prange(M):
        for j in range(N):
            d = 0
            for w in range(W):
                d += popcount64(a[i, w] ^ bt[j, w])
            out[i, j] = K - 2 * d


@pjit
def ternary_matmul(ap, an, btp, btn, out):
    """out[i, j] = dot of {-1, 0, 1} codes held as +1 and -1 bit-planes."""
    M, W = ap.shape
    N = btp.shape[0]
    for i in prange(M):
        for j in range(N):
            d = 0
            for w in range(W):
                d += popcount64((ap[i, w] & btp[j, w]) | (an[i, w] & btn[j, w]))
                d -= popcount64((ap[i, w] & btn[j, w]) | (an[i, w] & btp[j, w]))
            out[i, j] = d
