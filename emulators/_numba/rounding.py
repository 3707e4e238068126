"""Rounding, overflow and the splitmix64 counter RNG: the Numba twins of the
inline helpers in ``csrc/lowbit.h`` (same names without the ``lowbit_`` prefix).

A format reaches the kernels as ``fmt = (bits, frac, is_signed, rounding, wrap,
lo, hi)``, a tuple of int64 built by :func:`lowbit.emulators._numba.fixed.fmt_tuple`.
"""

from __future__ import annotations

import numpy as np

from lowbit.emulators._numba.jit import inline

U64 = np.uint64
GAMMA = U64(0x9E3779B97F4A7C15)
MIX1 = U64(0xBF58476D1CE4E5B9)
MIX2 = U64(0x94D049BB133111EB)
ONE = U64(1)
ZERO = U64(0)
STEP_BITS = U64(32)
FINAL_STEP = U64(0xFFFFFFFF)
TWO53 = U64(1 << 53)

NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, FLOOR, CEIL, STOCHASTIC = range(6)


@inline
def u53(seed, counter):
    """Top 53 bits of the counter-th splitmix64 output from state seed (uint64s)."""
    z = seed + (counter + ONE) * GAMMA
    z = (z ^ (z >> U64(30))) * MIX1
    z = (z ^ (z >> U64(27))) * MIX2
    return (z ^ (z >> U64(31))) >> U64(11)


@inline
def step_counter(element, step):
    """Counter of rounding ``step`` of accumulation output ``element``."""
    return (U64(element) << STEP_BITS) | U64(step)


@inline
def final_counter(element):
    """Counter of the final rounding of accumulation output ``element``."""
    return (U64(element) << STEP_BITS) | FINAL_STEP


@inline
def wrap_bits(w, fmt):
    """Two's-complement wrap of the low ``bits`` bits of the uint64 ``w``."""
    bits = fmt[0]
    mask = (ONE << U64(bits)) - ONE
    w = w & mask
    if fmt[2] != 0 and ((w >> U64(bits - 1)) & ONE) != ZERO:
        w = w | ~mask
    return np.int64(w)


@inline
def overflow(n, fmt):
    """The overflow policy applied to the exact integer ``n`` (branch-free per element)."""
    if fmt[4] != 0:
        return wrap_bits(U64(n), fmt)
    lo = fmt[5]
    hi = fmt[6]
    return lo if n < lo else (hi if n > hi else n)


@inline
def round_shift62(p, s, rounding, u):
    """round(p * 2**-s) for 1 <= s <= 62 (no overflow); bitwise decisions, no branches."""
    q = p >> s
    r = U64(p) & ((ONE << U64(s)) - ONE)
    half = ONE << U64(s - 1)
    if rounding == NEAREST_EVEN:
        return q + np.int64((r > half) | ((r == half) & ((q & 1) != 0)))
    if rounding == NEAREST_AWAY:
        return q + np.int64((r > half) | ((r == half) & (p > 0)))
    if rounding == TOWARD_ZERO:
        return q + np.int64((p < 0) & (r != ZERO))
    if rounding == FLOOR:
        return q
    if rounding == CEIL:
        return q + np.int64(r != ZERO)
    if s <= 53:
        t = r << U64(53 - s)
    else:
        d = s - 53
        t = (r >> U64(d)) + U64((r & ((ONE << U64(d)) - ONE)) != ZERO)
    return q + np.int64(u < t)


@inline
def round_shift(p, s, rounding, u):
    """round(p * 2**-s) for any s >= 1 (sticky compression beyond 62)."""
    if s > 62:
        d = s - 62
        if d >= 63:
            p = np.int64(1) if p > 0 else (np.int64(-1) if p < 0 else np.int64(0))
        else:
            lost = U64(p) & ((ONE << U64(d)) - ONE)
            p = p >> d
            if lost != ZERO:
                p = p | 1
        s = 62
    return round_shift62(p, s, rounding, u)


@inline
def quantize(p, pfrac, fmt, seed, counter):
    """Code of the exact value p * 2**-pfrac in fmt: one rounding, then overflow."""
    s = pfrac - fmt[1]
    if s > 0:
        u = u53(seed, counter) if fmt[3] == STOCHASTIC else ZERO
        return overflow(round_shift(p, s, fmt[3], u), fmt)
    if s == 0 or p == 0:
        return overflow(p, fmt)
    k = -s
    if fmt[4] != 0:
        if k >= 64:
            return np.int64(0)
        return wrap_bits(U64(p) << U64(k), fmt)
    kk = 63 if k > 63 else k
    if p > (fmt[6] >> kk):
        return fmt[6]
    if p < -((-fmt[5]) >> kk):
        return fmt[5]
    return p << k


FAST_RIGHT, FAST_SR, FAST_LEFT, GENERIC, EXACT = 0, 1, 2, 3, 4


@inline
def rounding_path(s, fmt):
    """Which loop body rounds p * 2**-s into fmt: chosen once per operation.

    FAST_RIGHT: a deterministic mode + saturate with 1 <= s <= 62;
    FAST_SR: stochastic + saturate with 1 <= s <= 53;
    FAST_LEFT: saturate with -62 <= s <= 0 (exact shift, any rounding mode);
    GENERIC: everything else (:func:`quantize`). The fast bodies are
    branch-free, so the element loop vectorizes.
    """
    if fmt[4] != 0:
        return GENERIC
    if -62 <= s <= 0:
        return FAST_LEFT
    if fmt[3] == STOCHASTIC:
        return FAST_SR if 1 <= s <= 53 else GENERIC
    return FAST_RIGHT if 1 <= s <= 62 else GENERIC


@inline
def clamp(n, lo, hi):
    return lo if n < lo else (hi if n > hi else n)


@inline
def right_round(p, s, rounding):
    """p * 2**-s rounded by a deterministic mode, for 1 <= s <= 62 (int64 only, branch-free)."""
    q = p >> s
    r = p & ((np.int64(1) << s) - 1)
    half = np.int64(1) << (s - 1)
    above = r > half
    tie = r == half
    inexact = r != 0
    up = ((rounding == NEAREST_EVEN) & (above | (tie & ((q & 1) != 0))))
    up |= (rounding == NEAREST_AWAY) & (above | (tie & (p > 0)))
    up |= (rounding == TOWARD_ZERO) & (p < 0) & inexact
    up |= (rounding == CEIL) & inexact
    return q + np.int64(up)


@inline
def sr_round(p, s, seed, counter):
    """Stochastically rounded p * 2**-s for 1 <= s <= 53 (see docs/rng.md)."""
    q = p >> s
    t = (p & ((np.int64(1) << s) - 1)) << (53 - s)
    return q + np.int64(np.int64(u53(seed, counter)) < t)


@inline
def right_sat(p, s, rounding, lo, hi):
    return clamp(right_round(p, s, rounding), lo, hi)


@inline
def sr_sat(p, s, lo, hi, seed, counter):
    return clamp(sr_round(p, s, seed, counter), lo, hi)


@inline
def left_sat(p, k, lo, hi):
    """p * 2**k saturated to [lo, hi] for 0 <= k <= 62, without overflowing."""
    if p > (hi >> k):
        return hi
    if p < -((-lo) >> k):
        return lo
    return p << k


@inline
def round_on_path(path, p, s, fmt, seed, counter):
    """Round p * 2**-s into fmt on the path chosen by :func:`rounding_path`."""
    if path == FAST_RIGHT:
        return right_sat(p, s, fmt[3], fmt[5], fmt[6])
    if path == FAST_SR:
        return sr_sat(p, s, fmt[5], fmt[6], seed, counter)
    if path == FAST_LEFT:
        return left_sat(p, -s, fmt[5], fmt[6])
    return quantize(p, s + fmt[1], fmt, seed, counter)


@inline
def accumulation_path(ss, acc):
    """The rounding body of a sequential accumulation step (chosen once per call):
    EXACT when the accumulator is at least as fine as the terms (ss == 0), else a
    fast path for saturating or wrapping accumulators with a small shift, else GENERIC."""
    if ss == 0:
        return EXACT
    if acc[3] == STOCHASTIC:
        return FAST_SR if ss <= 53 else GENERIC
    return FAST_RIGHT if ss <= 62 else GENERIC


@inline
def accumulate_step(path, s, c, t, ss, st, acc, compensated, seed, counter):
    """s = q(s + t) in the accumulator format acc; returns (s, c) where c is the
    exact Kahan compensation (the bits the rounding dropped, never overflow)."""
    z = (s << ss) + (t << st) - c
    if path == EXACT:
        return overflow(z, acc), c
    if path == FAST_RIGHT:
        n = right_round(z, ss, acc[3])
    elif path == FAST_SR:
        n = sr_round(z, ss, seed, counter)
    else:
        u = u53(seed, counter) if acc[3] == STOCHASTIC else ZERO
        n = round_shift(z, ss, acc[3], u)
    if compensated:
        c = (n << ss) - z
    return overflow(n, acc), c


@inline
def accumulate_row(path, s, c, aik, brow, ss, st, acc, compensated, seed, e0, k):
    """One step k of sequential accumulation for a row of outputs:
    s[j] = q(s[j] + aik * brow[j]) for every j, element numbers e0 + j.

    The path and flags are tested once per row, so the common bodies (exact
    steps; saturating deterministic rounding without Kahan) are branch-free
    loops that vectorize; everything else goes through :func:`accumulate_step`."""
    N = s.size
    lo = acc[5]
    hi = acc[6]
    if acc[4] == 0 and path == EXACT:
        for j in range(N):
            s[j] = clamp((s[j] << ss) + ((aik * brow[j]) << st) - c[j], lo, hi)
    elif acc[4] == 0 and path == FAST_RIGHT and not compensated:
        r = acc[3]
        for j in range(N):
            s[j] = clamp(right_round((s[j] << ss) + ((aik * brow[j]) << st), ss, r), lo, hi)
    elif acc[4] == 0 and path == FAST_SR and not compensated:
        for j in range(N):
            z = (s[j] << ss) + ((aik * brow[j]) << st)
            s[j] = clamp(sr_round(z, ss, seed, step_counter(e0 + j, k)), lo, hi)
    elif acc[4] == 0 and path == FAST_RIGHT:
        r = acc[3]
        for j in range(N):
            z = (s[j] << ss) + ((aik * brow[j]) << st) - c[j]
            n = right_round(z, ss, r)
            c[j] = (n << ss) - z
            s[j] = clamp(n, lo, hi)
    elif acc[4] == 0 and path == FAST_SR:
        for j in range(N):
            z = (s[j] << ss) + ((aik * brow[j]) << st) - c[j]
            n = sr_round(z, ss, seed, step_counter(e0 + j, k))
            c[j] = (n << ss) - z
            s[j] = clamp(n, lo, hi)
    else:
        for j in range(N):
            s[j], c[j] = accumulate_step(path, s[j], c[j], aik * brow[j], ss, st, acc,
                                         compensated, seed, step_counter(e0 + j, k))


@inline
def round_products_row(path, dst, aik, brow, s, fmt, seed, e0, k):
    """dst[j] = aik * brow[j] rounded into fmt (shift s), stochastic counter
    step_counter(e0 + j, k); one branch-free loop per path."""
    N = dst.size
    lo = fmt[5]
    hi = fmt[6]
    if path == FAST_RIGHT:
        r = fmt[3]
        for j in range(N):
            dst[j] = clamp(right_round(aik * brow[j], s, r), lo, hi)
    elif path == FAST_SR:
        for j in range(N):
            dst[j] = clamp(sr_round(aik * brow[j], s, seed, step_counter(e0 + j, k)), lo, hi)
    elif path == FAST_LEFT:
        for j in range(N):
            dst[j] = left_sat(aik * brow[j], -s, lo, hi)
    else:
        for j in range(N):
            dst[j] = quantize(aik * brow[j], s + fmt[1], fmt, seed, step_counter(e0 + j, k))
