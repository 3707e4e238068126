"""LNS kernels in Numba: the twins of ``csrc/lns.c`` (``lowbit_lns_*``).

Semantics: :mod:`lowbit.numerics.reference.lns`. An LNS format reaches the kernels as
``fmt = (frac_bits, e_min, e_max, underflow_min, rounding)`` and an adder as
its tables (:class:`lowbit.numerics.gaussian_log.AdderTables`): ``sub`` and ``tab``
arrays plus ``tp = (last, beyond_sb, beyond_db, k, guard, interp)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import inline, pjit
from lowbit.emulators._numba.rounding import (
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


ZD = np.int64(-(1 << 62))
"""The decoded zero. Inside the kernels a value is D = (e << 1) | sign (or ZD), so
that the arithmetic needs no branch on the data: random signs and exponents
made branches mispredict half the time."""


@inline
def decode(c, emin):
    """Code -> D."""
    return ZD if c == 0 else (((abs(c) - 1 + emin) << 1) | np.int64(c < 0))


@inline
def encode_d(d, emin):
    """D (already within the format's range) -> code."""
    if d == ZD:
        return np.int64(0)
    mag = (d >> 1) - emin + 1
    return -mag if (d & 1) else mag


@inline
def select(mask, a, b):
    """a where mask is all ones, b where it is 0 (no branch)."""
    return (a & mask) | (b & ~mask)


@inline
def ranged(e, sign, zero, fmt):
    """D of (-1)**sign 2**(e / 2**F) after the range policy: saturate above e_max;
    below e_min zero (or e_min with underflow="min"). ``zero`` is 0 or 1."""
    under = np.int64(e < fmt[1])
    zero = zero | (under & (1 - fmt[3]))
    e = min(max(e, fmt[1]), fmt[2])
    return select(-zero, ZD, (e << 1) | sign)


@inline
def encode(sign, e, fmt):
    """Code of (-1)**sign 2**(e / 2**F) after the range policy."""
    return encode_d(ranged(e, np.int64(sign), np.int64(0), fmt), fmt[1])


@inline
def gauss(which, zabs, sub, tab, tp):
    """The adder spec's value of sb (which = 0) or db (1) at -zabs, in units of
    2**-(F+P): the sub-table below 2**k, else tab[min(q, last + 1)] (the clamped
    column holds the value past the end), interpolated for Interp."""
    k = tp[3]
    low = (np.int64(1) << k) - 1
    s = sub[which, min(zabs, low)]
    q = min(zabs >> k, tp[0] + 1)
    lo = tab[which, q]
    if tp[5] != 0:
        lo += ((tab[which, q + 1] - lo) * (zabs & low)) >> k
    return s if zabs <= low else lo


@inline
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


@inline
def add_d(x, y, out, sub, tab, tp, seed, counter):
    """x + y for decoded values (shared frac_bits) rounded into out, as D."""
    xz = np.int64(x == ZD)
    yz = np.int64(y == ZD)
    ex = x >> 1
    ey = y >> 1
    sx = x & 1
    sy = y & 1
    big = max(ex, ey)
    zabs = big - min(ex, ey)
    which = sx ^ sy
    f = round_guard(gauss(which, zabs, sub, tab, tp), tp[4], out[4], seed, counter)
    mx = -xz
    my = -yz & ~mx
    e = select(mx, ey, select(my, ex, big + f))
    sign = select(mx | (~my & -np.int64(ex < ey)), sy, sx)
    zero = (xz & yz) | ((1 - xz) & (1 - yz) & which & np.int64(zabs == 0))
    return ranged(e, sign, zero, out)


@inline
def mul_d(x, y, shift, divide, out):
    """x * y (x / y when divide) for decoded values: exponents (shifted left by
    ``shift`` into out's frac_bits) add exactly, then out's range policy."""
    e = ((x >> 1) - (y >> 1) if divide else (x >> 1) + (y >> 1)) << shift
    return ranged(e, (x ^ y) & 1, np.int64((x == ZD) | (y == ZD)), out)


@inline
def add_codes(x, emin_x, y, emin_y, out, sub, tab, tp, seed, counter):
    """x + y for codes (each with its format's e_min), rounded into out, as a code."""
    return encode_d(add_d(decode(x, emin_x), decode(y, emin_y), out, sub, tab, tp, seed, counter),
                    out[1])


@inline
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
        zeros += divide and b[i] == 0
        d = mul_d(decode(a[i], emin_a), decode(b[i], emin_b), 0, divide, fmt)
        out[i] = encode_d(d, fmt[1])
    return 1 if zeros else 0


@pjit
def lns_add(a, emin_a, b, emin_b, negate_b, fmt, sub, tab, tp, seed, out):
    """out[i] = a[i] +- b[i] with the adder tables (counter: i)."""
    sign = -1 if negate_b else 1
    for i in prange(a.size):
        out[i] = add_codes(a[i], emin_a, sign * b[i], emin_b, fmt, sub, tab, tp, seed, U64(i))


@inline
def accumulate_d(s, c, t, acc, sub, tab, tp, compensated, seed, element, k):
    """One sequential step in acc on decoded values: s + t, or a Kahan step of four
    LNS operations; returns (s, c)."""
    if not compensated:
        return add_d(s, t, acc, sub, tab, tp, seed, step_counter(element, k)), c
    y = add_d(t, c ^ 1 if c != ZD else c, acc, sub, tab, tp, seed, step_counter(element, 4 * k))
    t2 = add_d(s, y, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 1))
    d = add_d(t2, s ^ 1 if s != ZD else s, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 2))
    c = add_d(d, y ^ 1 if y != ZD else y, acc, sub, tab, tp, seed, step_counter(element, 4 * k + 3))
    return t2, c


@inline
def tree_reduce_d(buf, rows, width, acc, sub, tab, tp, seed, e0):
    """Pairwise tree over decoded buf[:rows, :width] (additions numbered rows,
    rows+1, ... level by level; column j is output element e0 + j); the sum ends
    in row 0."""
    n = rows
    step = rows
    while n > 1:
        m = 0
        for r in range(0, n - 1, 2):
            for j in range(width):
                buf[m, j] = add_d(buf[r, j], buf[r + 1, j], acc, sub, tab, tp, seed,
                                  step_counter(e0 + j, step))
            step += 1
            m += 1
        if n & 1:
            for j in range(width):
                buf[m, j] = buf[n - 1, j]
            m += 1
        n = m
    if rows == 0:
        for j in range(width):
            buf[0, j] = ZD


@inline
def sel(mask, a, b):
    """mask ? a : b for mask 0 or -1, with bit operations (no branch for LLVM to keep)."""
    return (a & mask) | (b & ~mask)


@inline
def mask(cond):
    return -np.int64(cond)


@inline
def ranged_fast(e, sign, zero, emin, emax, zero_below):
    """D after the range policy (twin of csrc lns_ranged); zero is 0 or -1 and
    zero_below is e_min, or the smallest int64 with underflow="min"."""
    zero |= mask(e < zero_below)
    e = sel(mask(e < emin), emin, e)
    e = sel(mask(e > emax), emax, e)
    return sel(zero, ZD, (e << 1) | sign)


@inline
def add_fast(x, y, tabf, L, last, emin, emax, zero_below):
    """x + y for decoded values with the Exact adder's flat table (guard 0)."""
    ex = x >> 1
    ey = y >> 1
    sx = x & 1
    sy = y & 1
    xbig = mask(ex >= ey)
    big = sel(xbig, ex, ey)
    zabs = big - sel(xbig, ey, ex)
    which = sx ^ sy
    idx = sel(mask(zabs < last + 1), zabs, last + 1)
    e = big + tabf[which * L + idx]
    sign = sel(xbig, sx, sy)
    zero = mask(zabs == 0) & -which
    xz = mask(x == ZD)
    yz = mask(y == ZD)
    e = sel(xz, ey, sel(yz, ex, e))
    sign = sel(xz, sy, sel(yz, sx, sign))
    zero = sel(xz | yz, xz & yz, zero)
    return ranged_fast(e, sign, zero, emin, emax, zero_below)


@inline
def mul_fast(x, y, widen, emin, emax, zero_below):
    z = mask(x == ZD) | mask(y == ZD)
    e = (x >> 1) + (y >> 1)
    e = sel(mask(e < -(np.int64(1) << 40)), -(np.int64(1) << 40), e)  # keep zeros in range
    return ranged_fast(e << widen, (x ^ y) & 1, z, emin, emax, zero_below)


@inline
def neg(d):
    return d ^ (~mask(d == ZD) & 1)


@inline
def row_step_fast(s, c, b, da, widen, acc, tabf, L, last, compensated):
    """One k-step of a row of sequential accumulators: s[j] += da * b[j]
    (Kahan when compensated); the Exact adder, guard 0 (twin of csrc)."""
    emin = acc[1]
    emax = acc[2]
    zero_below = -(np.int64(1) << 62) if acc[3] else emin
    if not compensated:
        for j in range(s.size):
            s[j] = add_fast(s[j], mul_fast(da, b[j], widen, emin, emax, zero_below), tabf, L,
                            last, emin, emax, zero_below)
        return
    for j in range(s.size):
        p = mul_fast(da, b[j], widen, emin, emax, zero_below)
        y = add_fast(p, neg(c[j]), tabf, L, last, emin, emax, zero_below)
        t = add_fast(s[j], y, tabf, L, last, emin, emax, zero_below)
        d = add_fast(t, neg(s[j]), tabf, L, last, emin, emax, zero_below)
        c[j] = add_fast(d, neg(y), tabf, L, last, emin, emax, zero_below)
        s[j] = t


JBLOCK = 256


@pjit
def decode_all(codes, emin, out):
    """out = the decoded values of an array of codes."""
    flat = codes.reshape(-1)
    dst = out.reshape(-1)
    for i in prange(flat.size):
        dst[i] = decode(flat[i], emin)


@pjit
def lns_matmul(a, b, ab, acc, out_fmt, sub, tab, tp, order, compensated, seed, out):
    """out = a @ b for decoded a (M x K) and b (K x N): products exact in acc,
    accumulated in acc, converted into out_fmt.

    ``ab = (widen,)``: acc.frac_bits minus the operands' frac_bits."""
    M, K = a.shape
    N = b.shape[1]
    shift = acc[0] - out_fmt[0]
    widen = ab[0]
    fast = order == SEQUENTIAL and tp[3] == 0 and tp[4] == 0 and tp[5] == 0
    tabf = tab.reshape(-1)
    L = tab.shape[1]
    for i in prange(M):
        if fast:
            s = np.full(N, ZD)
            c = np.full(N, ZD)
            for k in range(K):
                row_step_fast(s, c, b[k], a[i, k], widen, acc, tabf, L, tp[0], compensated)
            for j in range(N):
                out[i, j] = convert_code(encode_d(s[j], acc[1]), acc[1], shift, out_fmt, seed,
                                         final_counter(i * N + j))
        elif order == SEQUENTIAL:
            s = np.full(N, ZD)
            c = np.full(N, ZD)
            for k in range(K):
                aik = a[i, k]
                for j in range(N):
                    p = mul_d(aik, b[k, j], widen, False, acc)
                    s[j], c[j] = accumulate_d(s[j], c[j], p, acc, sub, tab, tp, compensated,
                                              seed, i * N + j, k)
            for j in range(N):
                out[i, j] = convert_code(encode_d(s[j], acc[1]), acc[1], shift, out_fmt, seed,
                                         final_counter(i * N + j))
        else:
            buf = np.empty((max(K, 1), JBLOCK), np.int64)
            for j0 in range(0, N, JBLOCK):
                w = min(JBLOCK, N - j0)
                for k in range(K):
                    aik = a[i, k]
                    for j in range(w):
                        buf[k, j] = mul_d(aik, b[k, j0 + j], widen, False, acc)
                tree_reduce_d(buf, K, w, acc, sub, tab, tp, seed, i * N + j0)
                for j in range(w):
                    out[i, j0 + j] = convert_code(encode_d(buf[0, j], acc[1]), acc[1], shift,
                                                  out_fmt, seed, final_counter(i * N + j0 + j))


@pjit
def lns_sum(a, emin_a, widen, acc, out_fmt, sub, tab, tp, order, compensated, seed, out):
    """out[m] = sum of row m of a (M x K) accumulated in acc, converted into out_fmt."""
    M, K = a.shape
    shift = acc[0] - out_fmt[0]
    for m in prange(M):
        buf = np.empty((max(K, 1), 1), np.int64)
        for k in range(K):
            x = decode(a[m, k], emin_a)
            buf[k, 0] = ZD if x == ZD else ranged((x >> 1) << widen, x & 1, np.int64(0), acc)
        if order == SEQUENTIAL:
            s = ZD
            c = ZD
            for k in range(K):
                s, c = accumulate_d(s, c, buf[k, 0], acc, sub, tab, tp, compensated, seed, m, k)
        else:
            tree_reduce_d(buf, K, 1, acc, sub, tab, tp, seed, m)
            s = buf[0, 0]
        out[m] = convert_code(encode_d(s, acc[1]), acc[1], shift, out_fmt, seed, final_counter(m))
