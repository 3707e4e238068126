"""Floating-point kernels in Numba: the twins of ``csrc/floating.c`` (``lowbit_float_*``).

Semantics: :mod:`lowbit.numerics.reference.floating`. A Float format reaches the kernels
as the int64 tuple of :func:`lowbit.emulators._float_ops.kernel_fields`. Every rounding goes through :func:`round_to_code`:
an exact positive value sig * 2**e2 (sig an integer below 2**63, e its leading bit's
exponent) becomes a code with integer operations only — shift, sticky remainder, the
mode's decision, then overflow, FTZ and the sign. Kernels that can fail return a status
(0 ok, 1 a NaN the format cannot hold, 2 an inf it cannot hold).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from lowbit.emulators._numba.jit import inline, pjit
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


@pjit
def float_cast_f32(bits, fmt, seed, out):
    """out[i] = code of the float32 whose bit pattern is bits[i] (uint32); a status."""
    n = bits.size
    nans = 0
    infs = 0
    stochastic = fmt[11] == 5
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
