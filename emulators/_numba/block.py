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
def scale_code_rounded(amax, mT, f, sv, round_up):
    """The code of amax / mT rounded into the scale format f (upward, or to nearest even),
    clamped to its smallest positive and largest finite codes; sv: the values of f's codes
    0..max_field (positive codes are in value order: a binary search)."""
    top = np.int64(f[3])
    if sv[top] * mT < amax:
        return top
    lo = np.int64(1)
    hi = top  # the smallest code c with sv[c] * mT >= amax is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if sv[mid] * mT >= amax:
            hi = mid
        else:
            lo = mid + 1
    c = lo
    if round_up or c == 1:
        return c
    edge = (sv[c - 1] + sv[c]) * 0.5 * mT
    if amax < edge or (amax == edge and (c & 1) == 1):
        return c - 1
    return c


@inline
def quotient_rounds_exactly(grid, Dd):
    """Whether a / D correctly rounded to a double rounds into the element grid as the
    exact quotient does (the twin of csrc quotient_rounds_exactly: a power-of-two D, or
    M + k + 3 + bits(Dd) <= 53 for a deterministic mode, k = 0, or k-bit stochastic
    rounding with k <= 16)."""
    if Dd == ONE:
        return True
    k = grid[12] if grid[11] == 5 else 0
    if grid[11] == 5 and (k == 0 or k > 16):
        return False
    return grid[0] + k + 3 + bit_length(Dd) <= 53


@inline
def element_code(v, D, Sinv, Dd, ed, quotient, grid, is_int, asym, daz, seed, j):
    """The code of element v of a block, the general path (the twin of csrc element_code):
    zero, the double quotient rounded by round_to_code, or the exact quotient by integer
    division with a sticky bit; MXINT8's integer mapping."""
    neg = v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)
    a = abs(v)
    if daz and a < FP32_SMALLEST_NORMAL:
        a = 0.0
    if a == 0.0:
        code = zero_code(neg, grid)
    else:
        q = a * Sinv if Dd == ONE else a / D
        qb = U64(np.float64(q).view(np.uint64))
        qe = np.int64(qb >> U64(52))
        if quotient and qe != 0 and qe != 0x7FF:
            sig = (qb & U64(0xFFFFFFFFFFFFF)) | (ONE << U64(52))
            e2 = qe - 1075
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
        u = splitmix(seed, U64(j)) if grid[11] == 5 else ZERO
        code = round_to_code(neg, sig, e2 + bit_length(sig) - 1, e2, grid, u)
    if is_int:
        mag = code & ~grid[4]
        field = mag >> 6
        mant = mag & 63
        k = mant if field == 0 else (64 + mant) << (field - 1)
        limit = 128 if (neg and asym) else 127
        k = min(k, limit)
        code = -k if neg else k
    return code


@inline
def rne_elements(out, slow, x, mul, n, use_div, grid, daz):
    """The elements of a run of blocks under a saturating RNE float grid whose quotients
    round exactly, in one branch-free pass (the twin of csrc rne_elements): q = |x| / mul[i]
    (use_div) or |x| * mul[i] (power-of-two divisors) a normal double, ec = max(e(q),
    emin): rint(q * 2**(M - ec)) + ((ec - emin) << M) is the magnitude code, clamped;
    zeros keep their sign; quotients that are not normal doubles below 2**512 are marked
    ``slow``. Returns whether any is."""
    zneg = zero_code(True, grid)
    sbit = grid[4]
    M = grid[0]
    emin = grid[1]
    top = grid[3]
    subn = grid[6]
    lo = FP32_SMALLEST_NORMAL if daz else 0.0
    anyslow = 0
    for i in range(n):
        v = x[i]
        a0 = abs(v)
        a = 0.0 if a0 < lo else a0
        q = a / mul[i] if use_div else a * mul[i]
        qb = np.float64(q).view(np.uint64)
        vb = np.float64(v).view(np.uint64)
        qe = np.int64(qb >> U64(52))
        bad = np.int64(qb != ZERO) & (np.int64(qe == 0) | np.int64(qe >= 1023 + 512))
        ec = max(qe - 1023, emin)
        sc = np.uint64(U64(1023 + M - ec) << U64(52)).view(np.float64)
        r = np.int64(np.rint(q * sc))
        mag = r + ((ec - emin) << M)
        mag = top if mag > top else mag
        mag = 0 if (mag < (1 << M) and subn == 0) else mag
        mag = 0 if (bad != 0 or qb == ZERO) else mag
        neg = -np.int64(vb >> U64(63))
        out[i] = mag | (neg & (sbit if mag != 0 else zneg))
        slow[i] = bad != 0
        anyslow |= bad
    return anyslow != 0


@inline
def pow2_block_exp(amax, scale_f, rule, emax, precision, mpos, T):
    """The exponent e of a power-of-two block scale 2**e for a block of largest magnitude
    amax > 0 (daz applied), tensor scale T: the rule's choice (OCP's floor rule read off the
    exponent field), clamped to the scale format's range (the twin of csrc
    pow2_block_exp)."""
    if rule == RULE_FLOOR and T == 1.0 and amax >= 2.2250738585072014e-308:
        e = np.int64(np.float64(amax).view(np.uint64) >> U64(52)) - 1023 - emax
    else:
        _, ea = math.frexp(amax)
        sh = ea - 1
        e = pow2_scale_exp(math.ldexp(amax, -sh), sh, T, rule, emax, precision, mpos)
    smin = scale_f[1]
    return min(max(e, smin), smin + np.int64(scale_f[3]))


@inline
def block_scale(xb, amax, lo, grid, is_int, asym, scale_f, sv, pow2, rule, emax, precision,
                mpos, T):
    """The scale of the block xb (no NaN or inf; amax its largest magnitude, daz applied):
    (scale code, clip count, D, Sinv, Dd, ed, quotient) (the twin of csrc block_scale)."""
    smin = scale_f[1]
    se = 0  # the exponent of a power-of-two scale
    if amax == 0.0:
        code = np.int64(0 if scale_f[2] == 0 else 1)
        S = 1.0
    elif pow2:
        e = pow2_block_exp(amax, scale_f, rule, emax, precision, mpos, T)
        code = np.int64(e - smin)
        se = e
        S = math.ldexp(1.0, e)
    else:
        code = scale_code_rounded(amax, mpos * T, scale_f, sv, rule == RULE_RCEIL)
        S = sv[code]
    D = S * T
    if pow2 and T == 1.0 and se >= -1022 and se <= 1022:  # D = 2**se
        Dd = ONE
        ed = se
        Sinv = np.uint64(U64(1023 - se) << U64(52)).view(np.float64)
    else:
        Dd, ed = parts(D)
        tz = bit_length(Dd & (~Dd + ONE)) - 1  # trailing zeros (D > 0: Dd != 0)
        Dd >>= U64(tz)
        ed += tz
        Sinv = math.ldexp(1.0, -ed) if Dd == ONE else 0.0
    top_pos = mpos * D
    top_neg = (2.0 if asym else mpos) * D
    quotient = not is_int and quotient_rounds_exactly(grid, Dd)
    nclip = 0
    for i in range(xb.size):
        a0 = abs(xb[i])
        a = 0.0 if a0 < lo else a0
        nclip += a > (top_neg if xb[i] < 0.0 else top_pos)
    return code, nclip, D, Sinv, Dd, ed, quotient


F32 = np.float32


@inline
def mx_elements_f32(out, slow, xf, e, grid, mpos, daz):
    """The MX case on float32 lanes (the twin of csrc mx_run_f32): q = |x| * 2**-e
    exact in float32 while normal (else ``slow``), rne_elements' arithmetic in float32.
    Returns (clip count, whether any element is slow)."""
    zneg = zero_code(True, grid)
    sbit = grid[4]
    M = grid[0]
    emin = grid[1]
    top = grid[3]
    subn = grid[6]
    sinv = F32(math.ldexp(1.0, -e))
    lo = F32(FP32_SMALLEST_NORMAL) if daz else F32(0.0)
    mposf = F32(mpos)
    nclip = 0
    anyslow = 0
    for i in range(xf.size):
        v = xf[i]
        a0 = abs(v)
        a = F32(0.0) if a0 < lo else a0
        q = a * sinv
        qb = np.float32(q).view(np.uint32)
        vb = np.float32(v).view(np.uint32)
        qe = np.int64(qb >> np.uint32(23))
        bad = np.int64(qb != np.uint32(0)) & (np.int64(qe == 0) | np.int64(qe == 0xFF))
        ec = max(qe - 127, emin)
        sc = np.uint32(np.uint32(127 + M - ec) << np.uint32(23)).view(np.float32)
        r = np.int64(np.int32(np.rint(q * sc)))
        mag = r + ((ec - emin) << M)
        mag = top if mag > top else mag
        mag = 0 if (mag < (1 << M) and subn == 0) else mag
        mag = 0 if (bad != 0 or qb == np.uint32(0)) else mag
        neg = -np.int64(vb >> np.uint32(31))
        out[i] = mag | (neg & (sbit if mag != 0 else zneg))
        slow[i] = bad != 0
        anyslow |= bad
        nclip += q > mposf
    return nclip, anyslow != 0


@pjit
def mx_quantize_f32(x, index, nblocks, width, grid, asym, scale_f, rule, emax, precision,
                    mpos, daz, seed, codes, scales, clipped):
    """block_quantize for the MX case (float32 input, power-of-two scales, no tensor scale,
    a saturating RNE float element), block by block on float32 values (the twin of csrc
    mx_quantize_f32)."""
    bad = 0
    dense = index.size == 0
    smin = scale_f[1]
    per = 256  # blocks per chunk: each chunk allocates its buffers once
    for ch in prange((nblocks + per - 1) // per):
        cbuf = np.empty(width, np.int64)
        slow = np.zeros(width, np.bool_)
        for b in range(ch * per, min(ch * per + per, nblocks)):
            base = b * width
            xf = x[base:base + width]
            out = cbuf  # then copied into codes (int64 or bytes), in place or scattered
            top_bits = np.uint32(0)
            for i in range(width):
                ab = np.float32(xf[i]).view(np.uint32) & np.uint32(0x7FFFFFFF)
                top_bits = ab if ab > top_bits else top_bits
            if top_bits >= np.uint32(0x7F800000):  # a NaN or inf
                if scale_f[8] < 0:
                    bad += 1
                    scales[b] = 0
                else:
                    scales[b] = scale_f[8]
                clipped[b] = 0
                for i in range(width):
                    out[i] = 0
            else:
                amax = float(np.uint32(top_bits).view(np.float32))
                amax = 0.0 if (daz and amax < FP32_SMALLEST_NORMAL) else amax
                e = 0
                if amax == 0.0:
                    scales[b] = 0 if scale_f[2] == 0 else 1
                else:
                    e = pow2_block_exp(amax, scale_f, rule, emax, precision, mpos, 1.0)
                    scales[b] = e - smin
                nclip, anyslow = mx_elements_f32(out, slow, xf, e, grid, mpos, daz)
                clipped[b] = nclip
                if anyslow:
                    D = math.ldexp(1.0, e)
                    Sinv = math.ldexp(1.0, -e)
                    for i in range(width):
                        if slow[i]:
                            out[i] = element_code(float(xf[i]), D, Sinv, ONE, e, True, grid,
                                                  False, asym, daz, seed,
                                                  base + i if dense else index[base + i])
            if dense:
                for i in range(width):
                    codes[base + i] = out[i]
            else:
                for i in range(width):
                    j = index[base + i]
                    if j >= 0:
                        codes[j] = out[i]
    return bad


CHUNK_BLOCKS = 64  # blocks whose elements one pass codes
BLOCK_RNE, BLOCK_GENERAL, BLOCK_SPECIAL = 0, 1, 2


@pjit
def block_quantize(x, index, nblocks, width, grid, is_int, asym, scale_f, sv, pow2, rule,
                   emax, precision, mpos, T, daz, seed, codes, scales, clipped):
    """Block-cast x (nblocks x width float32 or float64 values, padded) into element codes
    (at ``index``, or in place when ``index`` is empty: the blocks are consecutive), scale
    codes and per-block clip counts; sv: the values of the scale's codes (non-power-of-two
    scales); 1 if a NaN block has no NaN scale (the twin of csrc lowbit_block_quantize:
    chunks of CHUNK_BLOCKS blocks, their RNE elements in one pass)."""
    bad = 0
    dense = index.size == 0
    rne = grid[11] == 0 and not is_int and grid[7] == 0
    use_div = not (pow2 and T == 1.0)  # else every divisor is a power of two
    lo = FP32_SMALLEST_NORMAL if daz else 0.0
    nchunks = (nblocks + CHUNK_BLOCKS - 1) // CHUNK_BLOCKS
    cap = CHUNK_BLOCKS * width
    for c in prange(nchunks):
        xs = np.empty(cap)
        mul = np.empty(cap)
        cbuf = np.empty(cap, np.int64)
        slow = np.zeros(cap, np.bool_)
        kind = np.empty(CHUNK_BLOCKS, np.int64)
        Ds = np.empty(CHUNK_BLOCKS)
        Sinvs = np.empty(CHUNK_BLOCKS)
        Dds = np.empty(CHUNK_BLOCKS, np.uint64)
        eds = np.empty(CHUNK_BLOCKS, np.int64)
        quots = np.empty(CHUNK_BLOCKS, np.bool_)
        b0 = c * CHUNK_BLOCKS
        nb = min(CHUNK_BLOCKS, nblocks - b0)
        n = nb * width
        i0 = b0 * width
        for i in range(n):
            xs[i] = x[i0 + i]
        out = codes[i0:i0 + n] if dense else cbuf
        any_rne = False
        for k in range(nb):
            xb = xs[k * width:(k + 1) * width]
            top_bits = ZERO
            for i in range(width):
                ab = np.float64(xb[i]).view(np.uint64) & U64(0x7FFFFFFFFFFFFFFF)
                top_bits = ab if ab > top_bits else top_bits
            if top_bits >= U64(0x7FF0000000000000):  # a NaN or inf
                if scale_f[8] < 0:
                    bad += 1
                    scales[b0 + k] = 0
                else:
                    scales[b0 + k] = scale_f[8]
                clipped[b0 + k] = 0
                kind[k] = BLOCK_SPECIAL
                for i in range(width):
                    mul[k * width + i] = 1.0
                continue
            amax = np.uint64(top_bits).view(np.float64)
            amax = 0.0 if amax < lo else amax  # daz: the largest is flushed only if all are
            code, nclip, D, Sinv, Dd, ed, quotient = block_scale(
                xb, amax, lo, grid, is_int, asym, scale_f, sv, pow2, rule, emax, precision,
                mpos, T)
            scales[b0 + k] = code
            clipped[b0 + k] = nclip
            Ds[k], Sinvs[k], Dds[k], eds[k], quots[k] = D, Sinv, Dd, ed, quotient
            kind[k] = BLOCK_RNE if (rne and quotient) else BLOCK_GENERAL
            any_rne |= kind[k] == BLOCK_RNE
            m = D if use_div else Sinv
            for i in range(width):
                mul[k * width + i] = m
        any_slow = any_rne and rne_elements(out, slow, xs, mul, n, use_div, grid, daz)
        for k in range(nb):
            if kind[k] == BLOCK_SPECIAL:
                for i in range(width):
                    out[k * width + i] = 0
            elif kind[k] == BLOCK_GENERAL or any_slow:
                for i in range(width):
                    if kind[k] == BLOCK_GENERAL or slow[k * width + i]:
                        j = (b0 + k) * width + i
                        out[k * width + i] = element_code(
                            xs[k * width + i], Ds[k], Sinvs[k], Dds[k], eds[k], quots[k],
                            grid, is_int, asym, daz, seed, j if dense else index[j])
        if not dense:
            for i in range(n):
                j = index[i0 + i]
                if j >= 0:
                    codes[j] = cbuf[i]
    return bad
