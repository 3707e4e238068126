"""LNS kernels in Numba: the twins of ``csrc/lns.c`` (``lowbit_lns_*``).

Semantics: :mod:`numerics.reference.lns`. An LNS format reaches the kernels as
``fmt = (frac_bits, e_min, e_max, underflow_min, rounding)`` and an adder as
its tables (:class:`numerics.gaussian_log.AdderTables`): ``sub`` and ``tab``
arrays plus ``tp = (last, beyond_sb, beyond_db, k, guard, interp)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from emulators._numba.jit import jit, pjit
from emulators._numba.rounding import (
    CEIL,
    FLOOR,
    STOCHASTIC,
    U64,
    final_counter,
    round_shift,
    step_counter,
    u53,
)

SEQUENTIAL, PAIRWISE = 0, 1


def fmt_tuple(fmt) -> tuple[int, ...]:
    """The kernels' view of an LNS format."""
    return (fmt.frac_bits, fmt.e_min, fmt.e_max, int(fmt.underflow == "min"), int(fmt.rounding))


def tables_tuple(t) -> tuple[int, ...]:
    """The scalars of an AdderTables."""
    return (t.last, int(t.beyond[0]), int(t.beyond[1]), t.k, t.guard, int(t.interp))


@jit
def encode(sign, e, fmt):
    """Code of (-1)**sign 2**(e / 2**F) after the range policy (saturate; underflow)."""
    if e > fmt[2]:
        e = fmt[2]
    elif e < fmt[1]:
        if fmt[3] == 0:
            return np.int64(0)
        e = fmt[1]
    mag = e - fmt[1] + 1
    return -mag if sign else mag


@jit
def gauss(which, zabs, sub, tab, tp):
    """The adder spec's value of sb (which = 0) or db (1) at -zabs, in units of 2**-(F+P)."""
    k = tp[3]
    if zabs < (np.int64(1) << k):
        return sub[which, zabs]
    q = zabs >> k
    if q > tp[0]:
        return (tp[1] if which == 0 else tp[2]) << tp[4]
    lo = tab[which, q]
    if tp[5] != 0:
        r = zabs & ((np.int64(1) << k) - 1)
        return lo + (((tab[which, q + 1] - lo) * r) >> k)
    return lo


@jit
def round_guard(v, guard, rounding, seed, counter):
    """v * 2**-guard rounded to an integer in the given mode."""
    if guard == 0:
        return v
    q = v >> guard
    r = v & ((np.int64(1) << guard) - 1)
    if rounding == FLOOR:
        return q
    if rounding == CEIL:
        return q + np.int64(r != 0)
    if rounding == STOCHASTIC:
        return q + np.int64(np.int64(u53(seed, counter)) < (r << (53 - guard)))
    half = np.int64(1) << (guard - 1)
    return q + np.int64((r > half) | ((r == half) & ((q & 1) != 0)))


@jit
def add_codes(x, emin_x, y, emin_y, out, sub, tab, tp, seed, counter):
    """x + y (codes; each with its format's e_min; shared frac_bits) rounded into out."""
    if x == 0:
        if y == 0:
            return np.int64(0)
        return encode(y < 0, abs(y) - 1 + emin_y, out)
    if y == 0:
        return encode(x < 0, abs(x) - 1 + emin_x, out)
    ex = abs(x) - 1 + emin_x
    ey = abs(y) - 1 + emin_y
    sx = x < 0
    if ex < ey:
        ex, ey = ey, ex
        sx = y < 0
    zabs = ex - ey
    which = np.int64((x < 0) != (y < 0))
    if which == 1 and zabs == 0:
        return np.int64(0)
    v = gauss(which, zabs, sub, tab, tp)
    return encode(sx, ex + round_guard(v, tp[4], out[4], seed, counter), out)


@jit
def mul_codes(x, emin_x, y, emin_y, shift, divide, out):
    """x * y (x / y when divide): exponents (shifted left by ``shift`` into out's
    frac_bits) add exactly, then out's range policy."""
    if x == 0 or y == 0:
        return np.int64(0)
    ex = (abs(x) - 1 + emin_x) << shift
    ey = (abs(y) - 1 + emin_y) << shift
    return encode((x < 0) != (y < 0), ex - ey if divide else ex + ey, out)


@jit
def convert_code(c, emin_src, shift, dst, seed, counter):
    """A code re-rounded from src to dst frac_bits (shift = F_src - F_dst), then dst's range."""
    if c == 0:
        return np.int64(0)
    e = abs(c) - 1 + emin_src
    if shift > 0:
        u = u53(seed, counter) if dst[4] == STOCHASTIC else U64(0)
        e = round_shift(e, shift, dst[4], u)
    elif shift < 0:
        e = e << -shift
    return encode(c < 0, e, dst)


# ------------------------------------------------------------- kernels ---

@pjit
def lns_cast(x, thresholds, fmt, out):
    """out[i] = code of float x[i]; returns 1 if any x is NaN."""
    F = fmt[0]
    nans = 0
    for i in prange(x.size):
        v = np.float64(x[i])
        if v != v:
            nans += 1
            out[i] = 0
        elif v == 0.0:
            out[i] = 0
        elif math.isinf(v):
            out[i] = encode(v < 0, fmt[2], fmt)
        else:
            m, E = math.frexp(abs(v))
            j = np.searchsorted(thresholds, m * 2.0)
            out[i] = encode(v < 0, ((np.int64(E) - 1) << F) + j, fmt)
    return 1 if nans else 0


@pjit
def lns_convert(codes, emin_src, shift, dst, seed, out):
    """out[i] = codes[i] re-rounded into dst (counter: i)."""
    for i in prange(codes.size):
        out[i] = convert_code(codes[i], emin_src, shift, dst, seed, U64(i))


@pjit
def lns_mul(a, emin_a, b, emin_b, divide, fmt, out):
    """out[i] = a[i] * b[i] (or a[i] / b[i]); returns 1 if dividing by a zero."""
    zeros = 0
    for i in prange(a.size):
        if divide and b[i] == 0:
            zeros += 1
            out[i] = 0
        else:
            out[i] = mul_codes(a[i], emin_a, b[i], emin_b, 0, divide, fmt)
    return 1 if zeros else 0


@pjit
def lns_add(a, emin_a, b, emin_b, negate_b, fmt, sub, tab, tp, seed, out):
    """out[i] = a[i] +- b[i] with the adder tables (counter: i)."""
    sign = -1 if negate_b else 1
    for i in prange(a.size):
        out[i] = add_codes(a[i], emin_a, sign * b[i], emin_b, fmt, sub, tab, tp, seed, U64(i))


@jit
def accumulate_step(s, c, t, acc, sub, tab, tp, compensated, seed, element, k):
    """One sequential step in acc: s + t, or a Kahan step (four LNS operations);
    returns (s, c)."""
    emin = acc[1]
    if not compensated:
        return add_codes(s, emin, t, emin, acc, sub, tab, tp, seed, step_counter(element, k)), c
    y = add_codes(t, emin, -c, emin, acc, sub, tab, tp, seed, step_counter(element, 4 * k))
    t2 = add_codes(s, emin, y, emin, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 1))
    d = add_codes(t2, emin, -s, emin, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 2))
    c = add_codes(d, emin, -y, emin, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 3))
    return t2, c


@jit
def tree_reduce(buf, rows, width, acc, sub, tab, tp, seed, e0):
    """Pairwise tree over buf[:rows, :width] (additions numbered rows, rows+1, ...
    level by level; column j is output element e0 + j); the sum ends in row 0."""
    n = rows
    step = rows
    emin = acc[1]
    while n > 1:
        m = 0
        for r in range(0, n - 1, 2):
            for j in range(width):
                buf[m, j] = add_codes(buf[r, j], emin, buf[r + 1, j], emin, acc, sub, tab, tp,
                                      seed, step_counter(e0 + j, step))
            step += 1
            m += 1
        if n & 1:
            for j in range(width):
                buf[m, j] = buf[n - 1, j]
            m += 1
        n = m
    if rows == 0:
        for j in range(width):
            buf[0, j] = 0


JBLOCK = 256


@pjit
def lns_matmul(a, b, ab, acc, out_fmt, sub, tab, tp, order, compensated, seed, out):
    """out = a @ b: products exact in acc, accumulated in acc, converted into out_fmt.

    ``ab = (emin_a, emin_b, widen)``: the operands' e_min and acc.frac_bits - their frac_bits."""
    M, K = a.shape
    N = b.shape[1]
    shift = acc[0] - out_fmt[0]
    for i in prange(M):
        if order == SEQUENTIAL:
            s = np.zeros(N, np.int64)
            c = np.zeros(N, np.int64)
            for k in range(K):
                aik = a[i, k]
                for j in range(N):
                    p = mul_codes(aik, ab[0], b[k, j], ab[1], ab[2], False, acc)
                    s[j], c[j] = accumulate_step(s[j], c[j], p, acc, sub, tab, tp, compensated,
                                                 seed, i * N + j, k)
            for j in range(N):
                out[i, j] = convert_code(s[j], acc[1], shift, out_fmt, seed, final_counter(i * N + j))
        else:
            buf = np.empty((max(K, 1), JBLOCK), np.int64)
            for j0 in range(0, N, JBLOCK):
                w = min(JBLOCK, N - j0)
                for k in range(K):
                    aik = a[i, k]
                    for j in range(w):
                        buf[k, j] = mul_codes(aik, ab[0], b[k, j0 + j], ab[1], ab[2], False, acc)
                tree_reduce(buf, K, w, acc, sub, tab, tp, seed, i * N + j0)
                for j in range(w):
                    out[i, j0 + j] = convert_code(buf[0, j], acc[1], shift, out_fmt, seed,
                                                  final_counter(i * N + j0 + j))


@pjit
def lns_sum(a, emin_a, widen, acc, out_fmt, sub, tab, tp, order, compensated, seed, out):
    """out[m] = sum of row m of a (M x K) accumulated in acc, converted into out_fmt."""
    M, K = a.shape
    shift = acc[0] - out_fmt[0]
    for m in prange(M):
        buf = np.empty((max(K, 1), 1), np.int64)
        for k in range(K):
            c0 = a[m, k]
            buf[k, 0] = 0 if c0 == 0 else encode(c0 < 0, (abs(c0) - 1 + emin_a) << widen, acc)
        if order == SEQUENTIAL:
            s = np.int64(0)
            c = np.int64(0)
            for k in range(K):
                s, c = accumulate_step(s, c, buf[k, 0], acc, sub, tab, tp, compensated, seed, m, k)
        else:
            tree_reduce(buf, K, 1, acc, sub, tab, tp, seed, m)
            s = buf[0, 0]
        out[m] = convert_code(s, acc[1], shift, out_fmt, seed, final_counter(m))
