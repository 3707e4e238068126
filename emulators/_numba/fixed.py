"""Fixed-point kernels in Numba: the twins of ``csrc/fixed.c`` (``lowbit_fixed_*``).

Semantics: :mod:`numerics.reference.fixed`. Kernels take validated, C-contiguous
arrays and write into ``out``; those that can fail return a status
(0 ok, 1 NaN input, 2 infinite input under WRAP).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from emulators._numba.jit import jit, pjit
from emulators._numba.rounding import (
    NEAREST_AWAY,
    NEAREST_EVEN,
    TOWARD_ZERO,
    FLOOR,
    CEIL,
    TWO53,
    U64,
    final_counter,
    overflow,
    quantize,
    round_shift,
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
    for i in prange(codes.size):
        c = (U64(i) << U64(counter_shift)) | U64(counter_low)
        out[i] = quantize(codes[i], src_frac, fmt, seed, c)


@pjit
def fixed_add(a, fa, b, fb, negate_b, fmt, seed, out):
    """out[i] = a[i] * 2**-fa +- b[i] * 2**-fb rounded into fmt."""
    F = max(fa, fb)
    sa = F - fa
    sb = F - fb
    for i in prange(a.size):
        x = a[i] << sa
        y = b[i] << sb
        out[i] = quantize(x - y if negate_b else x + y, F, fmt, seed, U64(i))


@pjit
def fixed_mul(a, b, pfrac, fmt, seed, out):
    """out[i] = a[i] * b[i] * 2**-pfrac rounded into fmt."""
    for i in prange(a.size):
        out[i] = quantize(a[i] * b[i], pfrac, fmt, seed, U64(i))


@jit
def accumulate(t, K, tfrac, acc, order, compensated, seed, element, buf):
    """Sum K exact terms (tfrac fractional bits) in the narrow format acc; the
    accumulator's code. buf: K scratch codes for the pairwise tree."""
    if order == SEQUENTIAL:
        F = max(acc[1], tfrac)
        ss = F - acc[1]
        st = F - tfrac
        s = np.int64(0)
        c = np.int64(0)
        for k in range(K):
            z = (s << ss) + (t[k] << st) - c
            if ss == 0:
                n = z
            else:
                u = u53(seed, step_counter(element, k)) if acc[3] == 5 else U64(0)
                n = round_shift(z, ss, acc[3], u)
                if compensated:
                    c = (n << ss) - z
            s = overflow(n, acc)
        return s
    for k in range(K):
        buf[k] = quantize(t[k], tfrac, acc, seed, step_counter(element, k))
    n = K
    while n > 1:
        m = 0
        for i in range(0, n - 1, 2):
            buf[m] = overflow(buf[i] + buf[i + 1], acc)
            m += 1
        if n & 1:
            buf[m] = buf[n - 1]
            m += 1
        n = m
    return buf[0] if K else np.int64(0)


@pjit
def fixed_matmul(a, bt, pfrac, acc, has_acc, order, compensated, fmt, seed, out):
    """out = a @ bt.T; exact sum when not has_acc, else narrow accumulation in acc."""
    M, K = a.shape
    N = bt.shape[0]
    if not has_acc:
        for i in prange(M):
            for j in range(N):
                s = np.int64(0)
                for k in range(K):
                    s += a[i, k] * bt[j, k]
                out[i, j] = quantize(s, pfrac, fmt, seed, final_counter(i * N + j))
        return
    for i in prange(M):
        prod = np.empty(K, np.int64)
        buf = np.empty(K, np.int64)
        for j in range(N):
            for k in range(K):
                prod[k] = a[i, k] * bt[j, k]
            e = i * N + j
            s = accumulate(prod, K, pfrac, acc, order, compensated, seed, e, buf)
            out[i, j] = quantize(s, acc[1], fmt, seed, final_counter(e))


@pjit
def fixed_sum(a, tfrac, acc, has_acc, order, compensated, fmt, seed, out):
    """out[m] = sum of row m of a (M x K); exact or narrow as in fixed_matmul."""
    M, K = a.shape
    if not has_acc:
        for m in prange(M):
            s = np.int64(0)
            for k in range(K):
                s += a[m, k]
            out[m] = quantize(s, tfrac, fmt, seed, final_counter(m))
        return
    for m in prange(M):
        buf = np.empty(K, np.int64)
        s = accumulate(a[m], K, tfrac, acc, order, compensated, seed, m, buf)
        out[m] = quantize(s, acc[1], fmt, seed, final_counter(m))
