"""Fixed-point kernels in Numba: the twins of ``csrc/fixed.c`` (``lowbit_fixed_*``).

Semantics: :mod:`lowbit.numerics.reference.fixed`. Kernels take validated, C-contiguous
arrays and write into ``out``; those that can fail return a status
(0 ok, 1 NaN input, 2 infinite input under WRAP).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import jit, pjit
from lowbit.emulators._numba.rounding import (
    CEIL,
    FLOOR,
    NEAREST_AWAY,
    NEAREST_EVEN,
    TOWARD_ZERO,
    TWO53,
    U64,
    accumulate_row,
    accumulate_step,
    accumulation_path,
    final_counter,
    overflow,
    quantize,
    round_on_path,
    round_products_row,
    rounding_path,
    step_counter,
    u53,
    wrap_bits,
)

OK, ERR_NAN, ERR_INF = 0, 1, 2
SEQUENTIAL, PAIRWISE = 0, 1
TWO62 = float(2**62)
TINY = 5e-324  # 2**-1074, the smallest subnormal


def fmt_tuple(fmt) -> tuple[int, ...]:
    """The kernels' view of a Fixed format: (bits, frac, is_signed, rounding, wrap, lo, hi)."""
    return (fmt.bits, fmt.frac, int(fmt.signed), int(fmt.rounding), int(fmt.overflow),
            fmt.min_code, fmt.max_code)


@jit
def round_float(y, rounding, seed, counter):
    """round(y) for finite |y| < 2**62, exact in every mode (twin of csrc round_float)."""
    if rounding == NEAREST_EVEN:
        return np.rint(y)
    if rounding == NEAREST_AWAY:
        t = math.trunc(y)
        return t + math.copysign(1.0, y) if abs(y - t) >= 0.5 else t
    if rounding == TOWARD_ZERO:
        return float(math.trunc(y))
    if rounding == FLOOR:
        return math.floor(y)
    if rounding == CEIL:
        return math.ceil(y)
    u = u53(seed, counter)
    if y >= 0:
        t = math.floor(y)
        return t + 1.0 if float(u) < (y - t) * 9007199254740992.0 else t
    c = math.ceil(y)
    d = c - y
    if d == 0:
        return c
    return c if d * 9007199254740992.0 < float(TWO53 - u) else c - 1.0


@jit
def cast_one(x, p, fmt, seed, counter):
    """(code, status) of one float; status 1 for NaN, 2 for inf under WRAP."""
    if x != x:
        return np.int64(0), 1
    y = x * p
    if not abs(y) < TWO62:
        if fmt[4] == 0:
            return (fmt[6], 0) if x > 0 else (fmt[5], 0)
        if math.isinf(x):
            return np.int64(0), 2
        m, e = math.frexp(x)
        mi = np.int64(math.ldexp(m, 53))
        k = e - 53 + fmt[1]
        if k >= 64:
            return np.int64(0), 0
        return wrap_bits(U64(mi) << U64(k), fmt), 0
    if y == 0.0 and x != 0.0:
        y = math.copysign(TINY, x)
    return overflow(np.int64(round_float(y, fmt[3], seed, counter)), fmt), 0


@pjit
def fixed_cast(x, fmt, seed, out):
    """out[i] = code of float x[i] in fmt; returns a status."""
    n = x.size
    p = math.ldexp(1.0, fmt[1])
    if fmt[3] == NEAREST_EVEN and fmt[4] == 0 and fmt[0] <= 53:
        lo = float(fmt[5])
        hi = float(fmt[6])
        nans = 0
        for i in prange(n):
            y = np.float64(x[i]) * p
            nans += y != y
            y = 0.0 if y != y else y
            y = lo if y < lo else y
            y = hi if y > hi else y
            out[i] = np.int64(np.rint(y))
        return ERR_NAN if nans else OK
    nans = 0
    infs = 0
    for i in prange(n):
        code, st = cast_one(np.float64(x[i]), p, fmt, seed, U64(i))
        out[i] = code
        nans += st == 1
        infs += st == 2
    if nans:
        return ERR_NAN
    return ERR_INF if infs else OK


@pjit
def fixed_convert(codes, src_frac, fmt, seed, counter_shift, counter_low, out):
    """out[i] = codes[i] * 2**-src_frac re-rounded into fmt."""
    s = src_frac - fmt[1]
    path = rounding_path(s, fmt)
    for i in prange(codes.size):
        c = (U64(i) << U64(counter_shift)) | U64(counter_low)
        out[i] = round_on_path(path, codes[i], s, fmt, seed, c)


@pjit
def fixed_add(a, fa, b, fb, negate_b, fmt, seed, out):
    """out[i] = a[i] * 2**-fa +- b[i] * 2**-fb rounded into fmt."""
    F = max(fa, fb)
    sa = F - fa
    sb = F - fb
    s = F - fmt[1]
    path = rounding_path(s, fmt)
    sign = -1 if negate_b else 1
    for i in prange(a.size):
        out[i] = round_on_path(path, (a[i] << sa) + sign * (b[i] << sb), s, fmt, seed, U64(i))


@pjit
def fixed_mul(a, b, pfrac, fmt, seed, out):
    """out[i] = a[i] * b[i] * 2**-pfrac rounded into fmt."""
    s = pfrac - fmt[1]
    path = rounding_path(s, fmt)
    for i in prange(a.size):
        out[i] = round_on_path(path, a[i] * b[i], s, fmt, seed, U64(i))


JBLOCK = 256  # output columns handled together by the pairwise tree
ROWS = 4  # rows of a per block of the exact matmul: each load of b serves 4 rows


@jit
def tree_reduce(buf, rows, width, acc):
    """Pairwise tree over the rows of buf[:rows, :width], level by level, rows
    (0+1), (2+3), ..., an odd last row carried; the sum ends in row 0."""
    n = rows
    while n > 1:
        m = 0
        for r in range(0, n - 1, 2):
            for j in range(width):
                buf[m, j] = overflow(buf[r, j] + buf[r + 1, j], acc)
            m += 1
        if n & 1:
            for j in range(width):
                buf[m, j] = buf[n - 1, j]
            m += 1
        n = m
    if rows == 0:
        for j in range(width):
            buf[0, j] = 0


@pjit
def fixed_matmul_exact(a, b, pfrac, fmt, seed, out):
    """out = a @ b with an exact int64 accumulator, rounded once into fmt.

    a and b are int32 or int64 codes; rows of a go in blocks of ROWS (i-k-j
    order), so each row of b is loaded once per block."""
    M, K = a.shape
    N = b.shape[1]
    s = pfrac - fmt[1]
    path = rounding_path(s, fmt)
    for blk in prange((M + ROWS - 1) // ROWS):
        i0 = blk * ROWS
        rows = min(ROWS, M - i0)
        acc = np.zeros((ROWS, N), np.int64)
        if rows == ROWS:
            for k in range(K):
                a0 = np.int64(a[i0, k])
                a1 = np.int64(a[i0 + 1, k])
                a2 = np.int64(a[i0 + 2, k])
                a3 = np.int64(a[i0 + 3, k])
                for j in range(N):
                    bk = np.int64(b[k, j])
                    acc[0, j] += a0 * bk
                    acc[1, j] += a1 * bk
                    acc[2, j] += a2 * bk
                    acc[3, j] += a3 * bk
        else:
            for r in range(rows):
                for k in range(K):
                    ak = np.int64(a[i0 + r, k])
                    for j in range(N):
                        acc[r, j] += ak * np.int64(b[k, j])
        for r in range(rows):
            for j in range(N):
                e = (i0 + r) * N + j
                out[i0 + r, j] = round_on_path(path, acc[r, j], s, fmt, seed, final_counter(e))


@pjit
def fixed_matmul_acc(a, b, pfrac, acc, order, compensated, fmt, seed, out):
    """out = a @ b accumulated in the narrow format acc (sequential or pairwise,
    each output summing over k in order), then rounded into fmt."""
    M, K = a.shape
    N = b.shape[1]
    F = max(acc[1], pfrac)
    ss = F - acc[1]
    st = F - pfrac
    step_path = accumulation_path(ss, acc)
    leaf_s = pfrac - acc[1]
    leaf_path = rounding_path(leaf_s, acc)
    s_out = acc[1] - fmt[1]
    out_path = rounding_path(s_out, fmt)
    for i in prange(M):
        if order == SEQUENTIAL:
            s = np.zeros(N, np.int64)
            c = np.zeros(N, np.int64)
            for k in range(K):
                accumulate_row(step_path, s, c, a[i, k], b[k], ss, st, acc, compensated, seed,
                               i * N, k)
            for j in range(N):
                out[i, j] = round_on_path(out_path, s[j], s_out, fmt, seed,
                                          final_counter(i * N + j))
        else:
            buf = np.empty((max(K, 1), JBLOCK), np.int64)
            for j0 in range(0, N, JBLOCK):
                w = min(JBLOCK, N - j0)
                for k in range(K):
                    round_products_row(leaf_path, buf[k, :w], a[i, k], b[k, j0:j0 + w], leaf_s,
                                       acc, seed, i * N + j0, k)
                tree_reduce(buf, K, w, acc)
                for j in range(w):
                    out[i, j0 + j] = round_on_path(out_path, buf[0, j], s_out, fmt, seed,
                                                   final_counter(i * N + j0 + j))


@pjit
def fixed_sum(a, tfrac, acc, has_acc, order, compensated, fmt, seed, out):
    """out[m] = sum of row m of a (M x K); exact, or narrow as in fixed_matmul_acc."""
    M, K = a.shape
    F = max(acc[1], tfrac)
    ss = F - acc[1]
    st = F - tfrac
    step_path = accumulation_path(ss, acc)
    for m in prange(M):
        s = np.int64(0)
        if not has_acc:
            for k in range(K):
                s += a[m, k]
            out[m] = quantize(s, tfrac, fmt, seed, final_counter(m))
            continue
        if order == SEQUENTIAL:
            c = np.int64(0)
            for k in range(K):
                s, c = accumulate_step(step_path, s, c, a[m, k], ss, st, acc, compensated, seed,
                                       step_counter(m, k))
        else:
            buf = np.empty((max(K, 1), 1), np.int64)
            for k in range(K):
                buf[k, 0] = quantize(a[m, k], tfrac, acc, seed, step_counter(m, k))
            tree_reduce(buf, K, 1, acc)
            s = buf[0, 0]
        out[m] = quantize(s, acc[1], fmt, seed, final_counter(m))
