"""Floating-point kernels in Numba: the twins of ``csrc/floating.c`` (``lowbit_float_*``).

Semantics: :mod:`lowbit.numerics.reference.floating`. Small per-element helpers are
inlined; the large ones of the arithmetic (128-bit sums, division, the fused model) are
compiled once and called, which keeps the kernels' compile time in seconds. A Float format reaches the kernels
as the int64 tuple of :func:`lowbit.emulators._float_ops.kernel_fields`. Every rounding goes through :func:`round_to_code`:
an exact positive value sig * 2**e2 (sig an integer below 2**63, e its leading bit's
exponent) becomes a code with integer operations only — shift, sticky remainder, the
mode's decision, then overflow, FTZ and the sign. Kernels that can fail return a status
(0 ok, 1 a NaN the format cannot hold, 2 an inf it cannot hold).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import inline, jit, pjit
from lowbit.emulators._numba.rounding import (
    CEIL,
    FLOOR,
    NEAREST_AWAY,
    NEAREST_EVEN,
    TOWARD_ZERO,
    U64,
)

OK, ERR_NAN, ERR_INF = 0, 1, 2
ODD = 6
SATURATE = 0
INF_MAX, INF_INF, INF_NAN = 0, 1, 2  # fmt[10], as lowbit.emulators._float_ops.kernel_fields
ONE = U64(1)
ZERO = U64(0)


@inline
def splitmix(seed, counter):
    """The counter-th splitmix64 output from state seed (docs/rng.md), all 64 bits."""
    z = seed + (counter + ONE) * U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


@inline
def bit_length(v):
    """Number of bits of the uint64 v (0 for 0)."""
    n = 0
    while v != ZERO:
        v >>= ONE
        n += 1
    return n


@inline
def round_up(q, rem, s, negative, rounding, sr_bits, u):
    """Whether q + rem / 2**s (0 < rem < 2**s, s >= 1) rounds away from zero."""
    if rounding == NEAREST_EVEN:
        if s > 63:
            return False
        half = ONE << U64(s - 1)
        return rem > half or (rem == half and (q & ONE) != ZERO)
    if rounding == NEAREST_AWAY:
        return s <= 63 and rem >= (ONE << U64(s - 1))
    if rounding == TOWARD_ZERO:
        return False
    if rounding == FLOOR:
        return negative
    if rounding == CEIL:
        return not negative
    if rounding == ODD:
        return (q & ONE) == ZERO
    if sr_bits == 0:  # exact: away iff u >> 11 < ceil(phi * 2**53)
        if s <= 53:
            t = rem << U64(53 - s)
        else:
            d = s - 53
            if d >= 64:
                t = ONE
            else:
                t = (rem >> U64(d)) + U64((rem & ((ONE << U64(d)) - ONE)) != ZERO)
        return (u >> U64(11)) < t
    k = sr_bits  # k-bit: floor(phi * 2**k) + the top k bits of u carries out
    if s >= k:
        t = ZERO if s - k >= 64 else rem >> U64(s - k)
    else:
        t = rem << U64(k - s)
    return t + (u >> U64(64 - k)) >= (ONE << U64(k))


@inline
def round_to_code(negative, sig, e, e2, fmt, u):
    """The code of (-1)**negative * sig * 2**e2 (sig > 0 below 2**63, e = e2 + its leading
    bit), rounded once: the reference's quantize for a finite nonzero value."""
    M = fmt[0]
    emin = fmt[1]
    ec = e if e > emin else emin
    s = ec - M - e2
    if s <= 0:
        n = sig << U64(-s)
    else:
        if s >= 64:
            q = ZERO
            rem = sig
        else:
            q = sig >> U64(s)
            rem = sig & ((ONE << U64(s)) - ONE)
        n = q
        if rem != ZERO and round_up(q, rem, s, negative, fmt[11], fmt[12], u):
            n = q + ONE
    mag = np.int64(n) + ((ec - emin) << M)
    if fmt[2] == 0:  # no zero: the field 0 is the smallest normal binade
        if mag < (1 << M):
            mag = np.int64(1 << M)
        mag -= 1 << M
    sign = fmt[4] if negative else 0
    if mag > fmt[3]:
        r = fmt[11]
        toward_zero = (r == TOWARD_ZERO or r == ODD or (r == FLOOR and not negative)
                       or (r == CEIL and negative))
        if fmt[7] == SATURATE or toward_zero:
            return fmt[3] | sign
        if fmt[9] >= 0:
            return fmt[9] | sign
        return fmt[8]
    if fmt[2] != 0 and fmt[6] == 0 and mag < (1 << M):
        mag = 0
    if mag == 0 and fmt[2] != 0:
        return sign if fmt[5] != 0 else np.int64(0)
    return mag | sign


@inline
def special_code(kind, negative, fmt):
    """(code, status) of a NaN (kind 1) or an infinity (kind 2) input."""
    if kind == 1:
        return (fmt[8], OK) if fmt[8] >= 0 else (np.int64(0), ERR_NAN)
    policy = fmt[10]
    if policy == INF_MAX:
        if negative and fmt[13] == 0:
            return np.int64(0), OK
        return fmt[3] | (fmt[4] if negative else 0), OK
    if policy == INF_NAN or (negative and fmt[13] == 0) or fmt[9] < 0:
        return (fmt[8], OK) if fmt[8] >= 0 else (np.int64(0), ERR_INF)
    return fmt[9] | (fmt[4] if negative else 0), OK


@inline
def code_of_parts(negative, biased, mant, bias, mbits, fmt, u):
    """(code, status) of a binary float given by its fields (IEEE layout, all-ones biased
    exponent = inf/NaN): the shared body of the float64 and float32 casts."""
    if biased == (1 << bits_of_exp(mbits)) - 1:
        return special_code(1 if mant != ZERO else 2, negative, fmt)
    if negative and fmt[13] == 0:  # into an unsigned format
        if biased == 0 and mant == ZERO:
            return np.int64(0), OK
        if fmt[7] == SATURATE:
            return np.int64(0), OK
        return (fmt[8], OK) if fmt[8] >= 0 else (np.int64(0), ERR_NAN)
    if biased == 0:
        if mant == ZERO:
            if fmt[2] == 0:
                return np.int64(0), OK
            return (fmt[4] if negative and fmt[5] != 0 else np.int64(0)), OK
        e2 = 1 - bias - mbits
        e = e2 + bit_length(mant) - 1
        return round_to_code(negative, mant, e, e2, fmt, u), OK
    sig = mant | (ONE << U64(mbits))
    e = biased - bias
    return round_to_code(negative, sig, e, e - mbits, fmt, u), OK


@inline
def bits_of_exp(mbits):
    return 11 if mbits == 52 else 8


@pjit
def float_cast_f64(bits, fmt, seed, out):
    """out[i] = code of the float64 whose bit pattern is bits[i] (uint64); a status."""
    n = bits.size
    nans = 0
    infs = 0
    stochastic = fmt[11] == 5
    for i in prange(n):
        b = bits[i]
        u = splitmix(seed, U64(i)) if stochastic else ZERO
        code, st = code_of_parts((b >> U64(63)) != ZERO, np.int64((b >> U64(52)) & U64(0x7FF)),
                                 b & U64(0xFFFFFFFFFFFFF), 1023, 52, fmt, u)
        out[i] = code
        nans += st == ERR_NAN
        infs += st == ERR_INF
    if nans:
        return ERR_NAN
    return ERR_INF if infs else OK


@inline
def rne_code32(b, fmt, ovf):
    """The round-to-nearest-even code of a normal float32 (biased exponent 1..254) in a
    signed format with a zero: round_to_code's arithmetic with the mode fixed (the twin of
    csrc rne_code32)."""
    M = fmt[0]
    emin = fmt[1]
    e = np.int64((b >> U64(23)) & U64(0xFF)) - 127
    sig = (b & U64(0x7FFFFF)) | U64(0x800000)
    ec = e if e > emin else emin
    s = ec - e + 23 - M
    if s == 0:
        n = sig
    elif s <= 25:
        q = sig >> U64(s)
        rem = sig & ((ONE << U64(s)) - ONE)
        half = ONE << U64(s - 1)
        n = q + (ONE if (rem > half or (rem == half and (q & ONE) != ZERO)) else ZERO)
    else:
        n = ZERO
    sign = fmt[4] if (b >> U64(31)) != ZERO else 0
    mag = np.int64(n) + ((ec - emin) << M)
    if mag > fmt[3]:
        return fmt[8] if ovf < 0 else ovf | sign
    if fmt[6] == 0 and mag < (1 << M):
        mag = 0
    if mag == 0:
        return sign if fmt[5] != 0 else np.int64(0)
    return mag | sign


@pjit
def float_cast_f32(bits, fmt, seed, out):
    """out[i] = code of the float32 whose bit pattern is bits[i] (uint32); a status."""
    n = bits.size
    nans = 0
    infs = 0
    stochastic = fmt[11] == 5
    if fmt[11] == NEAREST_EVEN and fmt[13] != 0 and fmt[2] != 0:
        # the common case: normals take the fixed-mode path, the rest the general one
        ovf = fmt[3] if fmt[7] == SATURATE else (fmt[9] if fmt[9] >= 0 else -1)
        for i in prange(n):
            b = U64(bits[i])
            E = (b >> U64(23)) & U64(0xFF)
            if E != ZERO and E != U64(0xFF):
                out[i] = rne_code32(b, fmt, ovf)
            else:
                code, st = code_of_parts((b >> U64(31)) != ZERO, np.int64(E), b & U64(0x7FFFFF),
                                         127, 23, fmt, ZERO)
                out[i] = code
                nans += st == ERR_NAN
                infs += st == ERR_INF
        if nans:
            return ERR_NAN
        return ERR_INF if infs else OK
    for i in prange(n):
        b = U64(bits[i])
        u = splitmix(seed, U64(i)) if stochastic else ZERO
        code, st = code_of_parts((b >> U64(31)) != ZERO, np.int64((b >> U64(23)) & U64(0xFF)),
                                 b & U64(0x7FFFFF), 127, 23, fmt, u)
        out[i] = code
        nans += st == ERR_NAN
        infs += st == ERR_INF
    if nans:
        return ERR_NAN
    return ERR_INF if infs else OK


# ---------------------------------------------------------------- arithmetic ---
# The twins of csrc/floating.c's arithmetic. 128-bit values are (hi, lo) uint64 pairs.

CLS_ZERO, CLS_FINITE, CLS_INF, CLS_NAN = 0, 1, 2, 3
OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FMA = 0, 1, 2, 3, 4


@inline
def shl128(hi, lo, k):
    """(hi, lo) << k for 0 <= k < 128."""
    if k == 0:
        return hi, lo
    if k >= 64:
        return lo << U64(k - 64), ZERO
    return (hi << U64(k)) | (lo >> U64(64 - k)), lo << U64(k)


@inline
def shr128(hi, lo, k):
    """(hi, lo) >> k for 0 <= k < 128."""
    if k == 0:
        return hi, lo
    if k >= 64:
        return ZERO, hi >> U64(k - 64)
    return hi >> U64(k), (lo >> U64(k)) | (hi << U64(64 - k))


@inline
def low128(hi, lo, k):
    """The bits of (hi, lo) below bit k (0 <= k)."""
    if k >= 128:
        return hi, lo
    if k >= 64:
        return hi & ((ONE << U64(k - 64)) - ONE), lo
    if k == 0:
        return ZERO, ZERO
    return ZERO, lo & ((ONE << U64(k)) - ONE)


@inline
def gt128(ah, al, bh, bl):
    return ah > bh or (ah == bh and al > bl)


@inline
def bit_length128(hi, lo):
    return 64 + bit_length(hi) if hi != ZERO else bit_length(lo)


@jit
def round_up128(q, rh, rl, s, negative, rounding, sr_bits, u):
    """Whether q + rem / 2**s (0 < rem < 2**s, s >= 1) rounds away from zero; rem 128-bit."""
    if rounding == NEAREST_EVEN or rounding == NEAREST_AWAY:
        if s > 127:
            return False
        hh, hl = shl128(ZERO, ONE, s - 1)
        if rounding == NEAREST_AWAY:
            return not gt128(hh, hl, rh, rl)
        return gt128(rh, rl, hh, hl) or (rh == hh and rl == hl and (q & ONE) != ZERO)
    if rounding == TOWARD_ZERO:
        return False
    if rounding == FLOOR:
        return negative
    if rounding == CEIL:
        return not negative
    if rounding == ODD:
        return (q & ONE) == ZERO
    if sr_bits == 0:
        if s <= 53:
            t = rl << U64(53 - s)
        elif s - 53 >= 128:
            t = ONE
        else:
            th, tl = shr128(rh, rl, s - 53)
            mh, ml = low128(rh, rl, s - 53)
            t = tl + U64(mh != ZERO or ml != ZERO)
        return (u >> U64(11)) < t
    k = sr_bits
    if s >= k:
        if s - k >= 128:
            t = ZERO
        else:
            th, t = shr128(rh, rl, s - k)
    else:
        t = rl << U64(k - s)
    return t + (u >> U64(64 - k)) >= (ONE << U64(k))


@jit
def round_to_code128(negative, sh, sl, e2, fmt, u):
    """The code of (-1)**negative * (sh, sl) * 2**e2 (nonzero, below 2**126), rounded
    once: the 128-bit twin of round_to_code."""
    M = fmt[0]
    emin = fmt[1]
    e = e2 + bit_length128(sh, sl) - 1
    ec = e if e > emin else emin
    s = ec - M - e2
    if s <= 0:
        nh, n = shl128(sh, sl, -s)
    else:
        if s >= 128:
            q = ZERO
            rh, rl = sh, sl
        else:
            qh, q = shr128(sh, sl, s)
            rh, rl = low128(sh, sl, s)
        n = q
        if (rh != ZERO or rl != ZERO) and round_up128(q, rh, rl, s, negative, fmt[11], fmt[12], u):
            n = q + ONE
    mag = np.int64(n) + ((ec - emin) << M)
    if fmt[2] == 0:
        if mag < (1 << M):
            mag = np.int64(1 << M)
        mag -= 1 << M
    sign = fmt[4] if negative else 0
    if mag > fmt[3]:
        r = fmt[11]
        toward_zero = (r == TOWARD_ZERO or r == ODD or (r == FLOOR and not negative)
                       or (r == CEIL and negative))
        if fmt[7] == SATURATE or toward_zero:
            return fmt[3] | sign
        if fmt[9] >= 0:
            return fmt[9] | sign
        return fmt[8]
    if fmt[2] != 0 and fmt[6] == 0 and mag < (1 << M):
        mag = 0
    if mag == 0 and fmt[2] != 0:
        return sign if fmt[5] != 0 else np.int64(0)
    return mag | sign


@inline
def decode_code(code, f):
    """(class, negative, significand, exponent of its last bit) of an operand read from
    memory: subnormals are zero under f's daz."""
    return decode_raw(code, f, f[17] != 0)


@inline
def decode_held(code, f):
    """The same for a running accumulator's value (a register: daz does not apply)."""
    return decode_raw(code, f, False)


@inline
def decode_raw(code, f, daz):
    """(class, negative, significand, exponent of its last bit) of a code of f."""
    M = f[0]
    ones = (np.int64(1) << (f[14] + M)) - 1
    mag = code & ~f[4]
    field = mag >> M
    mant = U64(mag & ((np.int64(1) << M) - 1))
    neg = (code & f[4]) != 0
    sp = f[16]
    if sp == 0 and field == (np.int64(1) << f[14]) - 1:
        return (CLS_NAN if mant != ZERO else CLS_INF), neg, ZERO, np.int64(0)
    if (sp == 1 and mag == ones) or ((sp == 2 or sp == 3) and neg and mag == 0):
        return CLS_NAN, neg, ZERO, np.int64(0)
    if sp == 3 and mag == ones:
        return CLS_INF, neg, ZERO, np.int64(0)
    if f[2] != 0 and field == 0:
        if mant == ZERO or daz:
            return CLS_ZERO, neg, ZERO, np.int64(0)
        return CLS_FINITE, neg, mant, f[1] - M
    return CLS_FINITE, neg, mant | (ONE << U64(M)), field - f[15] - M


@inline
def zero_code(negative, f):
    """The code of a zero result of the given sign."""
    if f[2] == 0 or (negative and f[13] == 0):
        return np.int64(0)
    return f[4] if negative and f[5] != 0 else np.int64(0)


@inline
def nan_result(f):
    return (f[8], OK) if f[8] >= 0 else (np.int64(0), ERR_NAN)


@jit
def finite_code(negative, sh, sl, e2, f, u):
    """(code, status) of a finite nonzero exact value (-1)**negative * (sh, sl) * 2**e2."""
    if negative and f[13] == 0:
        if f[7] == SATURATE:
            return np.int64(0), OK
        return nan_result(f)
    return round_to_code128(negative, sh, sl, e2, f, u), OK


@inline
def align(sig, e2, L):
    """(hi, lo, sticky): sig * 2**e2 in units of 2**L, the bits below folded into sticky."""
    if e2 >= L:
        hi, lo = shl128(ZERO, sig, e2 - L)
        return hi, lo, False
    k = L - e2
    if k >= 64:
        return ZERO, ZERO, sig != ZERO
    return ZERO, sig >> U64(k), (sig & ((ONE << U64(k)) - ONE)) != ZERO


@jit
def add_finite(ca, na, sa, ea, cb, nb, sb, eb, f, u):
    """(code, status) of a + b, both finite (zeros included): the aligned exact sum in a
    128-bit window 110 bits below the larger operand's top, rounded once."""
    if ca == CLS_ZERO and cb == CLS_ZERO:
        if na == nb:
            return zero_code(na, f), OK
        return zero_code(f[11] == FLOOR, f), OK
    if ca == CLS_ZERO:
        return finite_code(nb, ZERO, sb, eb, f, u)
    if cb == CLS_ZERO:
        return finite_code(na, ZERO, sa, ea, f, u)
    top_a = ea + bit_length(sa)
    top_b = eb + bit_length(sb)
    T = top_a if top_a > top_b else top_b
    L = T - 110
    ah, al, sta = align(sa, ea, L)
    bh, bl, stb = align(sb, eb, L)
    if na == nb:
        lo = al + bl
        hi = ah + bh + U64(lo < al)
        sticky = sta or stb
        neg = na
    elif gt128(ah, al, bh, bl) or (ah == bh and al == bl and sta and not stb):
        lo = al - bl
        hi = ah - bh - U64(al < bl)
        if stb:
            hi = hi - U64(lo == ZERO)
            lo = lo - ONE
        sticky = stb
        neg = na
    elif gt128(bh, bl, ah, al) or (ah == bh and al == bl and stb and not sta):
        lo = bl - al
        hi = bh - ah - U64(bl < al)
        if sta:
            hi = hi - U64(lo == ZERO)
            lo = lo - ONE
        sticky = sta
        neg = nb
    else:
        return zero_code(f[11] == FLOOR, f), OK
    hi, lo = shl128(hi, lo, 1)
    if sticky:
        lo = lo | ONE
    return finite_code(neg, hi, lo, L - 1, f, u)


@jit
def divide(sa, sb):
    """((hi, lo) quotient, sticky) of (sa << sh) / sb with sh = 104 - bit_length(sa), by
    32-bit digits (sb < 2**24, so every partial remainder fits 64 bits)."""
    sh = 104 - bit_length(sa)
    nh, nl = shl128(ZERO, sa, sh)
    r = ZERO
    qh = ZERO
    ql = ZERO
    for part in range(4):
        if part == 0:
            digit = nh >> U64(32)
        elif part == 1:
            digit = nh & U64(0xFFFFFFFF)
        elif part == 2:
            digit = nl >> U64(32)
        else:
            digit = nl & U64(0xFFFFFFFF)
        cur = (r << U64(32)) | digit
        d = cur // sb
        r = cur - d * sb
        qh = (qh << U64(32)) | (ql >> U64(32))
        ql = (ql << U64(32)) | d
    return qh, ql, r != ZERO, sh


@jit
def float_op(ca, na, sa, ea, cb, nb, sb, eb, cc, nc, sc, ec, op, f, u):
    """(code, status) of one element of an arithmetic kernel (as csrc float_op)."""
    if op == OP_SUB:
        nb = not nb
        op = OP_ADD
    if ca == CLS_NAN or cb == CLS_NAN or (op == OP_FMA and cc == CLS_NAN):
        return nan_result(f)
    if op == OP_ADD:
        if ca == CLS_INF or cb == CLS_INF:
            if ca == CLS_INF and cb == CLS_INF and na != nb:
                return nan_result(f)
            return special_code(2, na if ca == CLS_INF else nb, f)
        return add_finite(ca, na, sa, ea, cb, nb, sb, eb, f, u)
    neg = na != nb
    if op == OP_DIV:
        if (ca == CLS_INF and cb == CLS_INF) or (ca == CLS_ZERO and cb == CLS_ZERO):
            return nan_result(f)
        if ca == CLS_INF or cb == CLS_ZERO:
            return special_code(2, neg, f)
        if ca == CLS_ZERO or cb == CLS_INF:
            return zero_code(neg, f), OK
        qh, ql, sticky, sh = divide(sa, sb)
        qh, ql = shl128(qh, ql, 1)
        if sticky:
            ql = ql | ONE
        return finite_code(neg, qh, ql, ea - eb - sh - 1, f, u)
    if (ca == CLS_INF and cb == CLS_ZERO) or (ca == CLS_ZERO and cb == CLS_INF):
        return nan_result(f)
    if ca == CLS_INF or cb == CLS_INF:
        if op == OP_FMA and cc == CLS_INF and nc != neg:
            return nan_result(f)
        return special_code(2, neg, f)
    if op == OP_MUL:
        if ca == CLS_ZERO or cb == CLS_ZERO:
            return zero_code(neg, f), OK
        return finite_code(neg, ZERO, sa * sb, ea + eb, f, u)
    if cc == CLS_INF:
        return special_code(2, nc, f)
    if ca == CLS_ZERO or cb == CLS_ZERO:
        return add_finite(CLS_ZERO, neg, ZERO, np.int64(0), cc, nc, sc, ec, f, u)
    return add_finite(CLS_FINITE, neg, sa * sb, ea + eb, cc, nc, sc, ec, f, u)


@pjit
def float_elementwise(a, fa, b, fb, c, fc, op, f, seed, out):
    """out[i] = a[i] op b[i] (or a[i] * b[i] + c[i]), rounded once into f; a status."""
    n = a.size
    nans = 0
    stochastic = f[11] == 5
    for i in prange(n):
        u = splitmix(seed, U64(i)) if stochastic else ZERO
        ca, na, sa, ea = decode_code(a[i], fa)
        cb, nb, sb, eb = decode_code(b[i], fb)
        if op == OP_FMA:
            cc, nc, sc, ec = decode_code(c[i], fc)
        else:
            cc, nc, sc, ec = CLS_ZERO, False, ZERO, np.int64(0)
        code, st = float_op(ca, na, sa, ea, cb, nb, sb, eb, cc, nc, sc, ec, op, f, u)
        out[i] = code
        nans += st != OK
    return ERR_NAN if nans else OK


# -------------------------------------------------------------- accumulation ---
# The twins of csrc/floating.c's lowbit_float_matmul (the same modes and counters).

FACC_EXACT, FACC_SEQUENTIAL, FACC_PAIRWISE, FACC_KAHAN, FACC_FUSED = 0, 1, 2, 3, 4
STEP_BITS = U64(32)
FINAL_STEP = U64(0xFFFFFFFF)


@inline
def draw(f, seed, counter):
    return splitmix(seed, counter) if f[11] == 5 else ZERO


@inline
def product(ca, na, sa, ea, cb, nb, sb, eb):
    """(class, negative, sig, e2) of the exact product of two decoded operands."""
    neg = na != nb
    if ca == CLS_NAN or cb == CLS_NAN or (ca == CLS_INF and cb == CLS_ZERO) or \
            (ca == CLS_ZERO and cb == CLS_INF):
        return CLS_NAN, neg, ZERO, np.int64(0)
    if ca == CLS_INF or cb == CLS_INF:
        return CLS_INF, neg, ZERO, np.int64(0)
    if ca == CLS_ZERO or cb == CLS_ZERO:
        return CLS_ZERO, neg, ZERO, np.int64(0)
    return CLS_FINITE, neg, sa * sb, ea + eb


@inline
def align64(sig, e2, L):
    """(word, sticky): sig * 2**e2 in units of 2**L (below 2**61), the rest in sticky."""
    if e2 >= L:
        return sig << U64(e2 - L), False
    k = L - e2
    if k >= 64:
        return ZERO, True
    return sig >> U64(k), (sig & ((ONE << U64(k)) - ONE)) != ZERO


@jit
def add_finite64(na, sa, ea, nb, sb, eb, f, u):
    """(code, status) of a + b, both finite nonzero with significands of at most 49 bits,
    in a 64-bit window 61 bits below the larger top (the twin of csrc add_finite64)."""
    top_a = ea + bit_length(sa)
    top_b = eb + bit_length(sb)
    L = (top_a if top_a > top_b else top_b) - 61
    wa, sta = align64(sa, ea, L)
    wb, stb = align64(sb, eb, L)
    if na == nb:
        S = wa + wb
        sticky = sta or stb
        neg = na
    elif wa > wb or (wa == wb and sta and not stb):
        S = wa - wb - U64(stb)
        sticky = stb
        neg = na
    elif wb > wa or (wa == wb and stb and not sta):
        S = wb - wa - U64(sta)
        sticky = sta
        neg = nb
    else:
        return zero_code(f[11] == FLOOR, f), OK
    S = (S << ONE) | U64(sticky)
    if neg and f[13] == 0:
        if f[7] == SATURATE:
            return np.int64(0), OK
        return nan_result(f)
    return round_to_code(neg, S, L - 1 + bit_length(S) - 1, L - 1, f, ZERO if f[11] != 5 else u), OK


@inline
def fast_add_ok(f):
    """Whether add_finite64 is exact for f's rounding (all but 53-bit stochastic rounding)."""
    return f[11] != 5 or (f[12] != 0 and f[12] <= 34)


@jit
def add_values(ca, na, sa, ea, cb, nb, sb, eb, f, u):
    """(code, status) of a + b in f (IEEE specials), one rounding."""
    if ca == CLS_FINITE and cb == CLS_FINITE and fast_add_ok(f):
        return add_finite64(na, sa, ea, nb, sb, eb, f, u)
    return float_op(ca, na, sa, ea, cb, nb, sb, eb, CLS_ZERO, False, ZERO, np.int64(0),
                    OP_ADD, f, u)


@jit
def to_format(c, n, s, e, f, u):
    """(code, status) of a decoded value in f."""
    if c == CLS_NAN:
        return nan_result(f)
    if c == CLS_INF:
        return special_code(2, n, f)
    if c == CLS_ZERO:
        return zero_code(n, f), OK
    return finite_code(n, ZERO, s, e, f, u)


@jit
def fused_sum(tc, tn, ts, te, K, group, frac_bits, floor_align, promote, reg, outf):
    """(code, status, in_outer) of the fused model's sum of the K decoded terms."""
    st = OK
    has_nan = False
    pos_inf = False
    neg_inf = False
    for k in range(K):
        has_nan = has_nan or tc[k] == CLS_NAN
        pos_inf = pos_inf or (tc[k] == CLS_INF and not tn[k])
        neg_inf = neg_inf or (tc[k] == CLS_INF and tn[k])
    if has_nan or (pos_inf and neg_inf):
        code, st = nan_result(reg)
        return code, st, False
    if pos_inf or neg_inf:
        code, st = special_code(2, neg_inf, reg)
        return code, st, False
    c = zero_code(False, reg)
    outer = zero_code(False, outf) if promote else np.int64(0)
    for g in range(0, K, group):
        end = min(g + group, K)
        cc, cn, cs, ce = decode_held(c, reg)
        if cc == CLS_FINITE or cc == CLS_ZERO:
            emax = np.int64(-(1 << 62))
            found = False
            for k in range(g, end + 1):
                if k < end:
                    kc, ks, ke = tc[k], ts[k], te[k]
                else:
                    kc, ks, ke = cc, cs, ce
                if kc == CLS_FINITE:
                    e = ke + bit_length(ks) - 1
                    if not found or e > emax:
                        emax = e
                    found = True
            if not found:
                c = zero_code(False, reg)
            else:
                qe = emax - frac_bits
                S = np.int64(0)
                for k in range(g, end + 1):
                    if k < end:
                        kc, kn, ks, ke = tc[k], tn[k], ts[k], te[k]
                    else:
                        kc, kn, ks, ke = cc, cn, cs, ce
                    if kc != CLS_FINITE:
                        continue
                    if ke >= qe:
                        v = np.int64(ks << U64(ke - qe))
                        S += -v if kn else v
                    else:
                        d = qe - ke
                        if d >= 64:
                            kept = ZERO
                            lost = ks != ZERO
                        else:
                            kept = ks >> U64(d)
                            lost = (ks & ((ONE << U64(d)) - ONE)) != ZERO
                        v = np.int64(kept)
                        if kn:
                            S -= v + np.int64(floor_align != 0 and lost)
                        else:
                            S += v
                if S == 0:
                    c = zero_code(False, reg)
                else:
                    mag = U64(-S) if S < 0 else U64(S)
                    c = round_to_code(S < 0, mag, qe + bit_length(mag) - 1, qe, reg, ZERO)
        if promote and end % promote == 0:
            oc, on, os, oe = decode_held(outer, outf)
            cc, cn, cs, ce = decode_held(c, reg)
            outer, s2 = add_values(oc, on, os, oe, cc, cn, cs, ce, outf, ZERO)
            st = st if s2 == OK else s2
            c = zero_code(False, reg)
    if not promote:
        return c, st, False
    if K % promote:
        oc, on, os, oe = decode_held(outer, outf)
        cc, cn, cs, ce = decode_held(c, reg)
        outer, s2 = add_values(oc, on, os, oe, cc, cn, cs, ce, outf, ZERO)
        st = st if s2 == OK else s2
    return outer, st, True


@pjit
def float_matmul(a, fa, b, fb, M, K, N, mode, lsb_exp, acc, group, frac_bits, floor_align,
                 promote, outf, f, seed, out):
    """out (M x N) = a @ b of Float codes (see csrc lowbit_float_matmul); a status."""
    bad = 0
    # every operand decoded once (b transposed: each output reads a row of each)
    ac = np.empty((M, K), np.int64)
    an = np.empty((M, K), np.bool_)
    asg = np.empty((M, K), np.uint64)
    ae = np.empty((M, K), np.int64)
    for i in range(M):
        for k in range(K):
            ac[i, k], an[i, k], asg[i, k], ae[i, k] = decode_code(a[i, k], fa)
    bc = np.empty((N, K), np.int64)
    bn = np.empty((N, K), np.bool_)
    bsg = np.empty((N, K), np.uint64)
    be = np.empty((N, K), np.int64)
    for k in range(K):
        for j in range(N):
            bc[j, k], bn[j, k], bsg[j, k], be[j, k] = decode_code(b[k, j], fb)
    for e in prange(M * N):
        i = e // N
        j = e % N
        tc = np.empty(K, np.int64)
        tn = np.empty(K, np.bool_)
        ts = np.empty(K, np.uint64)
        te = np.empty(K, np.int64)
        st = OK
        for k in range(K):
            tc[k], tn[k], ts[k], te[k] = product(ac[i, k], an[i, k], asg[i, k], ae[i, k],
                                                 bc[j, k], bn[j, k], bsg[j, k], be[j, k])
        final = (U64(e) << STEP_BITS) | FINAL_STEP
        if mode == FACC_EXACT:
            has_nan = False
            pos_inf = False
            neg_inf = False
            S = np.int64(0)
            for k in range(K):
                has_nan = has_nan or tc[k] == CLS_NAN
                pos_inf = pos_inf or (tc[k] == CLS_INF and not tn[k])
                neg_inf = neg_inf or (tc[k] == CLS_INF and tn[k])
                if tc[k] == CLS_FINITE:
                    v = np.int64(ts[k] << U64(te[k] - lsb_exp))
                    S += -v if tn[k] else v
            if has_nan or (pos_inf and neg_inf):
                code, st = nan_result(f)
            elif pos_inf or neg_inf:
                code, st = special_code(2, neg_inf, f)
            elif S == 0:
                code = zero_code(False, f)
            else:
                mag = U64(-S) if S < 0 else U64(S)
                code, st = finite_code(S < 0, ZERO, mag, lsb_exp, f, draw(f, seed, final))
        else:
            held_outer = False
            if mode == FACC_FUSED:
                s, st, held_outer = fused_sum(tc, tn, ts, te, K, group, frac_bits, floor_align,
                                              promote, acc, outf)
            elif mode == FACC_PAIRWISE:
                level = np.empty(max(K, 1), np.int64)
                for k in range(K):
                    level[k], s2 = to_format(tc[k], tn[k], ts[k], te[k], acc,
                                             draw(acc, seed, (U64(e) << STEP_BITS) | U64(k)))
                    st = st if s2 == OK else s2
                length = K
                step = K
                while length > 1:
                    w = 0
                    p = 0
                    while p + 1 < length:
                        xc, xn, xs, xe = decode_held(level[p], acc)
                        yc, yn, ys, ye = decode_held(level[p + 1], acc)
                        level[w], s2 = add_values(xc, xn, xs, xe, yc, yn, ys, ye, acc,
                                                  draw(acc, seed, (U64(e) << STEP_BITS) | U64(step)))
                        st = st if s2 == OK else s2
                        step += 1
                        w += 1
                        p += 2
                    if length % 2:
                        level[w] = level[length - 1]
                        w += 1
                    length = w
                s = level[0] if K else zero_code(False, acc)
            elif mode == FACC_KAHAN:
                c = zero_code(False, acc)
                s = zero_code(False, acc)
                for k in range(K):
                    base = (U64(e) << STEP_BITS) | U64(4 * k)
                    sc, sn, ss, se = decode_held(s, acc)
                    cc, cn, cs, ce = decode_held(c, acc)
                    y, s2 = add_values(tc[k], tn[k], ts[k], te[k], cc, not cn, cs, ce, acc,
                                       draw(acc, seed, base))
                    st = st if s2 == OK else s2
                    yc, yn, ys, ye = decode_held(y, acc)
                    nn, s2 = add_values(sc, sn, ss, se, yc, yn, ys, ye, acc,
                                        draw(acc, seed, base + ONE))
                    st = st if s2 == OK else s2
                    nc, nnn, ns, ne = decode_held(nn, acc)
                    d, s2 = add_values(nc, nnn, ns, ne, sc, not sn, ss, se, acc,
                                       draw(acc, seed, base + U64(2)))
                    st = st if s2 == OK else s2
                    dc, dn, ds, de = decode_held(d, acc)
                    c, s2 = add_values(dc, dn, ds, de, yc, not yn, ys, ye, acc,
                                       draw(acc, seed, base + U64(3)))
                    st = st if s2 == OK else s2
                    s = nn
            else:
                s = zero_code(False, acc)
                for k in range(K):
                    sc, sn, ss, se = decode_held(s, acc)
                    s, s2 = add_values(sc, sn, ss, se, tc[k], tn[k], ts[k], te[k], acc,
                                       draw(acc, seed, (U64(e) << STEP_BITS) | U64(k)))
                    st = st if s2 == OK else s2
            if held_outer:
                vc, vn, vs, ve = decode_held(s, outf)
            else:
                vc, vn, vs, ve = decode_held(s, acc)
            code, s2 = to_format(vc, vn, vs, ve, f, draw(f, seed, final))
            st = st if s2 == OK else s2
        out[i, j] = code
        bad += st != OK
    return ERR_NAN if bad else OK


@pjit
def float_matmul_binary32(a, b, out):
    """out (M x N float32) = a @ b of float32 arrays, each output summed in binary32 from
    +0 in k order, every addition rounded to nearest even (the twin of csrc
    lowbit_float_matmul_binary32). It is the ``sequential`` fp32 accumulator exactly when
    every product a[i, k] * b[k, j] is exact in binary32, which the caller checks."""
    M, K = a.shape
    N = b.shape[1]
    for i in prange(M):
        for j in range(N):
            out[i, j] = np.float32(0.0)
        for k in range(K):
            x = a[i, k]
            for j in range(N):
                out[i, j] += x * b[k, j]


@inline
def register_value(S, q, reg):
    """The float64 value of the integer S (a float64, exact) times 2**q rounded once into
    the register format ``reg`` (its own rounding; no stochastic draw)."""
    if S == 0.0:
        return 0.0
    neg = S < 0.0
    mag = U64(-S if neg else S)
    code = round_to_code(neg, mag, q + bit_length(mag) - 1, q, reg, ZERO)
    cls, cn, sig, e2 = decode_raw(code, reg, False)
    if cls == CLS_FINITE:
        v = math.ldexp(float(sig), e2)
    elif cls == CLS_ZERO:
        v = 0.0
    elif cls == CLS_INF:
        v = math.inf
    else:
        v = math.nan
    return -v if cn else v


@inline
def group_scales(m, sc, isc, qe, frac_bits):
    """One group's exponent step (the twin of csrc group_scales): for each column the
    unbiased exponent e of m[j] > 0 (a normal double, or inf), sc = 2**(frac_bits - e),
    isc = 2**(e - frac_bits), qe = e - frac_bits; zeros for m[j] == 0."""
    mb = m.view(np.uint64)
    scb = sc.view(np.uint64)
    iscb = isc.view(np.uint64)
    for j in range(m.size):
        e = np.int64(mb[j] >> U64(52)) - 1023
        nz = m[j] > 0.0
        qe[j] = e - frac_bits if nz else 0
        scb[j] = U64(1023 + frac_bits - e) << U64(52) if nz else ZERO
        iscb[j] = U64(1023 - frac_bits + e) << U64(52) if nz else ZERO


@inline
def register_step(c, S, isc, qe, slow, rz, reg, mask, rlo, rhi):
    """c[j] = S[j] * 2**qe[j] rounded once into the register (the twin of csrc
    register_step): a round-toward-zero register keeps the top bits of the exact S * isc
    when it is a normal register value, the other columns go through register_value;
    S == 0 gives +0; a non-finite S is kept (the caller falls back on it)."""
    N = c.size
    cb = c.view(np.uint64)
    anyslow = not rz
    if rz:
        for j in range(N):
            vb = np.float64(S[j] * isc[j]).view(np.uint64)
            ev = np.int64((vb >> U64(52)) & U64(0x7FF)) - 1023
            bad = S[j] != 0.0 and (ev < rlo or ev >= rhi)
            cb[j] = ZERO if S[j] == 0.0 else vb & mask
            slow[j] = bad
            anyslow |= bad
    if anyslow:
        for j in range(N):
            if not rz or slow[j]:
                c[j] = register_value(S[j], qe[j], reg) if np.isfinite(S[j]) else S[j]


@pjit
def fused_matmul_f64(a, b, group, frac_bits, floor_align, promote, reg, out):
    """out (M x N float64) = a @ b of float64 values under an accumulator model whose every
    product, cut and partial sum is exact in float64 (the caller checks the ranges): per
    group the largest magnitude over the products and the register c, each term cut to
    2**(emax - frac_bits) (toward zero, or floor), summed, rounded into the register;
    promoted into a binary32 outer accumulator (RNE) every ``promote`` products. The twin
    of csrc lowbit_fused_matmul_f64; vectorised over the output columns."""
    M, K = a.shape
    N = b.shape[1]
    rz = reg[11] == TOWARD_ZERO
    mask = ~((ONE << U64(52 - reg[0])) - ONE)
    rlo = reg[1]
    rhi = reg[1] + (reg[3] >> reg[0]) - 1
    for i in prange(M):
        c = np.zeros(N)
        outer = np.zeros(N, np.float32)
        m = np.empty(N)
        sc = np.empty(N)
        isc = np.empty(N)
        S = np.empty(N)
        qe = np.empty(N, np.int64)
        slow = np.zeros(N, np.bool_)
        for g0 in range(0, K, group):
            g1 = min(g0 + group, K)
            for j in range(N):
                m[j] = abs(c[j])
            for k in range(g0, g1):
                x = a[i, k]
                for j in range(N):
                    p = abs(x * b[k, j])
                    m[j] = p if p > m[j] else m[j]
            group_scales(m, sc, isc, qe, frac_bits)
            if floor_align:
                for j in range(N):
                    S[j] = np.floor(c[j] * sc[j])
                for k in range(g0, g1):
                    x = a[i, k]
                    for j in range(N):
                        S[j] += np.floor(x * b[k, j] * sc[j])
            else:
                for j in range(N):
                    S[j] = np.trunc(c[j] * sc[j])
                for k in range(g0, g1):
                    x = a[i, k]
                    for j in range(N):
                        S[j] += np.trunc(x * b[k, j] * sc[j])
            register_step(c, S, isc, qe, slow, rz, reg, mask, rlo, rhi)
            if promote and g1 % promote == 0:
                for j in range(N):
                    outer[j] = outer[j] + np.float32(c[j])
                    c[j] = 0.0
        if promote:
            if K % promote:
                for j in range(N):
                    outer[j] = outer[j] + np.float32(c[j])
            for j in range(N):
                out[i, j] = outer[j]
        else:
            for j in range(N):
                out[i, j] = c[j]


@pjit
def fused_matmul_f32(a, b, group, frac_bits, promote, reg, out):
    """out (M x N float32) = a @ b of float32 values under a model that cuts toward zero
    into a round-toward-zero register of binary32's range, in float32 (the twin of csrc
    lowbit_fused_matmul_f32): every product, power-of-two scaling and group sum (below
    2**24) is exact in a float. Returns 1 when a group's largest magnitude or a register
    value leaves the range where that holds (the caller runs fused_matmul_f64)."""
    M, K = a.shape
    N = b.shape[1]
    mask = ~((np.uint32(1) << np.uint32(23 - reg[0])) - np.uint32(1))
    rlo = reg[1]
    rhi = reg[1] + (reg[3] >> reg[0]) - 1
    elo = frac_bits - 126
    ehi = frac_bits + 126
    range_bad = 0
    for i in prange(M):
        c = np.zeros(N, np.float32)
        outer = np.zeros(N, np.float32)
        m = np.empty(N, np.float32)
        sc = np.empty(N, np.float32)
        isc = np.empty(N, np.float32)
        S = np.empty(N, np.float32)
        mb = m.view(np.uint32)
        scb = sc.view(np.uint32)
        iscb = isc.view(np.uint32)
        cb = c.view(np.uint32)
        bad = 0
        for g0 in range(0, K, group):
            g1 = min(g0 + group, K)
            for j in range(N):
                m[j] = abs(c[j])
            for k in range(g0, g1):
                x = a[i, k]
                for j in range(N):
                    p = abs(x * b[k, j])
                    m[j] = p if p > m[j] else m[j]
            # the exponent step: 2**(n - e) and 2**(e - n) normal floats, or leave
            for j in range(N):
                e = np.int64(mb[j] >> np.uint32(23)) - 127
                nz = m[j] > np.float32(0.0)
                bad |= np.int64(nz) & (np.int64(e < elo) | np.int64(e > ehi))
                scb[j] = np.uint32(127 + frac_bits - e) << np.uint32(23) if nz else np.uint32(0)
                iscb[j] = np.uint32(127 - frac_bits + e) << np.uint32(23) if nz else np.uint32(0)
            for j in range(N):
                S[j] = np.trunc(c[j] * sc[j])
            for k in range(g0, g1):
                x = a[i, k]
                for j in range(N):
                    S[j] += np.trunc(x * b[k, j] * sc[j])
            # the register step (toward zero): the top bits of the exact S * isc
            for j in range(N):
                vb = np.float32(S[j] * isc[j]).view(np.uint32)
                ev = np.int64((vb >> np.uint32(23)) & np.uint32(0xFF)) - 127
                bad |= np.int64(S[j] != np.float32(0.0)) & (np.int64(ev < rlo) | np.int64(ev >= rhi))
                cb[j] = np.uint32(0) if S[j] == np.float32(0.0) else vb & mask
            if promote and g1 % promote == 0:
                for j in range(N):
                    outer[j] = outer[j] + c[j]
                    c[j] = np.float32(0.0)
        if bad:
            range_bad += 1
            continue
        if promote and K % promote:
            for j in range(N):
                outer[j] = outer[j] + c[j]
        for j in range(N):
            out[i, j] = outer[j] if promote else c[j]
    return 1 if range_bad else 0


@pjit
def float_cast_f32_table(bits, table, shift, out):
    """out[i] = table[2 * (bits[i] >> shift) + (low shift bits != 0)] (the twin of csrc
    lowbit_float_cast_f32_table); -1 / -2 entries (a NaN / inf without a code) give the
    status."""
    n = bits.size
    nans = 0
    infs = 0
    low = (np.uint32(1) << np.uint32(shift)) - np.uint32(1)
    for i in prange(n):
        b = np.uint32(bits[i])
        c = table[2 * np.int64(b >> np.uint32(shift)) + (1 if (b & low) != 0 else 0)]
        out[i] = c if c >= 0 else 0
        nans += c == -1
        infs += c == -2
    if nans:
        return ERR_NAN
    return ERR_INF if infs else OK
