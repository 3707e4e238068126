"""Block-scaled kernels in Numba: the twins of ``csrc/block.c`` (``lowbit_block_quantize``).

Semantics: :mod:`lowbit.numerics.reference.block`. The caller lays the input out as
``nblocks`` rows of ``width`` values (a partial block padded with zeros, whose ``index`` is
-1) and passes the tensor scale T. Per block: the largest magnitude, the scale by the rule
(every comparison with the exact block maximum is a float64 product that is exact: small
integers times T times a power of two, on the maximum normalised to [1, 2)), then each
element as the exact quotient x / (S * T) — a shift for a power-of-two divisor, else an
integer division with a sticky bit — rounded once by :func:`round_to_code`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from lowbit.emulators._numba.floating import (
    ONE,
    ZERO,
    bit_length,
    decode_raw,
    gt128,
    round_to_code,
    shl128,
    splitmix,
    zero_code,
)
from lowbit.emulators._numba.jit import inline, jit, pjit
from lowbit.emulators._numba.rounding import U64

RULE_FLOOR, RULE_CEIL, RULE_EVEN, RULE_RCEIL, RULE_NEAREST = 0, 1, 2, 3, 4
M32 = U64(0xFFFFFFFF)
FP32_SMALLEST_NORMAL = 2.0 ** -126


@inline
def parts(v):
    """(X, ex) with v = X * 2**ex, X an integer below 2**53 (v > 0 finite)."""
    m, e = math.frexp(v)
    return U64(math.ldexp(m, 53)), e - 53


@inline
def mul128(a, b):
    """The 128-bit product (hi, lo) of two uint64."""
    al, ah = a & M32, a >> U64(32)
    bl, bh = b & M32, b >> U64(32)
    p0, p1, p2, p3 = al * bl, al * bh, ah * bl, ah * bh
    mid = (p0 >> U64(32)) + (p1 & M32) + (p2 & M32)
    lo = (p0 & M32) | (mid << U64(32))
    hi = p3 + (p1 >> U64(32)) + (p2 >> U64(32)) + (mid >> U64(32))
    return hi, lo


@inline
def floor_log2_over(am, sh, t):
    """The largest k with t * 2**k <= amax, where am = amax * 2**-sh is in [1, 2)."""
    _, et = math.frexp(t)
    k = sh - (et - 1)
    if math.ldexp(t, k - sh) > am:
        k -= 1
    return k


@jit
def pow2_scale_exp(am, sh, T, rule, emax, precision, mpos):
    """The scale exponent of a block (before clamping) by a power-of-two rule."""
    if rule == RULE_RCEIL or rule == RULE_NEAREST:
        t = mpos * T
        k = floor_log2_over(am, sh, t)
        edge = math.ldexp(t, k - sh)
        if rule == RULE_RCEIL:
            return k if edge == am else k + 1
        # nearest: up iff amax**2 >= 2 * (t * 2**k)**2, compared as 128-bit integers
        A = U64(math.ldexp(am, 52))
        B = U64(math.ldexp(edge, 52))
        ah, al = mul128(A, A)
        bh, bl = mul128(B, B)
        bh, bl = shl128(bh, bl, 1)
        return k if gt128(bh, bl, ah, al) else k + 1
    k = floor_log2_over(am, sh, T)
    if rule == RULE_FLOOR:
        return k - emax
    if rule == RULE_CEIL:
        return (k if math.ldexp(T, k - sh) == am else k + 1) - emax
    # even: amax rounded to `precision` bits, ties away, reaches 2**(k+1)
    edge = math.ldexp(float((1 << (precision + 1)) - 1) * T, k - precision - sh)
    return (k + 1 if am >= edge else k) - emax


@inline
def rne_code64(b, f):
    """The round-to-nearest-even code of a normal double (biased exponent 1..2046) in a
    signed saturating element grid with a zero (the twin of csrc rne_code64)."""
    M = f[0]
    emin = f[1]
    e = np.int64((b >> U64(52)) & U64(0x7FF)) - 1023
    sig = (b & U64(0xFFFFFFFFFFFFF)) | (ONE << U64(52))
    ec = e if e > emin else emin
    s = ec - e + 52 - M
    t = s if s < 55 else 55
    up = ((ONE << U64(t - 1)) - ONE + ((sig >> U64(t)) & ONE)) if t > 0 else ZERO
    n = (sig + up) >> U64(t)
    sign = f[4] if (b >> U64(63)) != ZERO else 0
    mag = np.int64(n) + ((ec - emin) << M)
    if mag > f[3]:
        mag = f[3]
    if f[6] == 0 and mag < (1 << M):
        mag = 0
    if mag == 0:
        return sign if f[5] != 0 else np.int64(0)
    return mag | sign


@inline
def value_of(code, f):
    """The float64 value of a positive code of the scale format f."""
    _, _, sig, e2 = decode_raw(code, f, False)
    return math.ldexp(float(sig), e2)


@jit
def scale_code_rounded(amax, mT, f, round_up):
    """The code of amax / mT rounded into the scale format f (upward, or to nearest even),
    clamped to its smallest positive and largest finite codes (binary search on codes:
    positive codes are in value order)."""
    top = np.int64(f[3])
    if value_of(top, f) * mT < amax:
        return top
    lo = np.int64(1)
    hi = top  # the smallest code c with value(c) * mT >= amax is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if value_of(mid, f) * mT >= amax:
            hi = mid
        else:
            lo = mid + 1
    c = lo
    if round_up or c == 1:
        return c
    below = value_of(c - 1, f)
    edge = (below + value_of(c, f)) * 0.5 * mT
    if amax < edge or (amax == edge and (c & 1) == 1):
        return c - 1
    return c


@pjit
def block_quantize(x, index, nblocks, width, grid, is_int, asym, scale_f, pow2, rule, emax,
                   precision, mpos, T, daz, seed, codes, scales, clipped):
    """Block-cast x (nblocks x width float64, padded) into element codes (written at
    ``index``), scale codes and per-block clip counts; 1 if a NaN block has no NaN scale."""
    bad = 0
    stochastic = grid[11] == 5
    smin = scale_f[1]
    smax_code = np.int64(scale_f[3])
    for b in prange(nblocks):
        base = b * width
        amax = 0.0
        special = False
        for i in range(width):
            v = x[base + i]
            if not math.isfinite(v):
                special = True
            else:
                a = abs(v)
                if daz and a < FP32_SMALLEST_NORMAL:
                    a = 0.0
                if a > amax:
                    amax = a
        nclip = 0
        if special:
            if scale_f[8] < 0:
                bad += 1
                scales[b] = 0
            else:
                scales[b] = scale_f[8]
            for i in range(width):
                if index[base + i] >= 0:
                    codes[index[base + i]] = 0
            clipped[b] = 0
            continue
        if amax == 0.0:
            scales[b] = 0 if scale_f[2] == 0 else 1
            S = 1.0
        elif pow2:
            _, ea = math.frexp(amax)
            sh = ea - 1
            am = math.ldexp(amax, -sh)
            e = pow2_scale_exp(am, sh, T, rule, emax, precision, mpos)
            e = min(max(e, smin), scale_f[1] + smax_code)
            scales[b] = e - smin
            S = math.ldexp(1.0, e)
        else:
            c = scale_code_rounded(amax, mpos * T, scale_f, rule == RULE_RCEIL)
            scales[b] = c
            S = value_of(c, scale_f)
        D = S * T
        Dd, ed = parts(D)
        while (Dd & ONE) == ZERO:
            Dd >>= ONE
            ed += 1
        top_pos = mpos * D
        top_neg = (2.0 if asym else mpos) * D
        # a power-of-two divisor and RNE elements: the quotient is a double, rounded by the
        # fixed-mode path (the general one takes zeros and subnormal quotients)
        fast = Dd == ONE and grid[11] == 0 and not is_int and grid[7] == 0
        Sinv = math.ldexp(1.0, -ed) if Dd == ONE else 0.0
        for i in range(width):
            j = index[base + i]
            if j < 0:
                continue
            v = x[base + i]
            neg = v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)
            a = abs(v)
            if daz and a < FP32_SMALLEST_NORMAL:
                a = 0.0
            if a > (top_neg if neg else top_pos):
                nclip += 1
            q = (-a if neg else a) * Sinv
            qb = U64(np.float64(q).view(np.uint64)) if fast else ZERO
            qe = (qb >> U64(52)) & U64(0x7FF)
            if fast and a != 0.0 and qe != ZERO and qe != U64(0x7FF):
                code = rne_code64(qb, grid)
            elif a == 0.0:
                code = zero_code(neg, grid)
            else:
                X, ex = parts(a)
                if Dd == ONE:
                    sig = X
                    e2 = ex - ed
                else:
                    L = 63 - bit_length(X)
                    N = X << U64(L)
                    Q = N // Dd
                    R = N - Q * Dd
                    sig = (Q << ONE) | (ONE if R != ZERO else ZERO)
                    e2 = ex - L - ed - 1
                u = splitmix(seed, U64(j)) if stochastic else ZERO
                code = round_to_code(neg, sig, e2 + bit_length(sig) - 1, e2, grid, u)
            if is_int:
                mag = code & ~grid[4]
                field = mag >> 6
                mant = mag & 63
                k = mant if field == 0 else (64 + mant) << (field - 1)
                limit = 128 if (neg and asym) else 127
                k = min(k, limit)
                code = -k if neg else k
            codes[j] = code
        clipped[b] = nclip
    return bad
