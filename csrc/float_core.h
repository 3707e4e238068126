/*
 * float_core.h -- the rounding and decoding helpers shared by floating.c and block.c
 * (static inline: each file compiles its own copy). Semantics:
 * numerics/reference/floating.py; Numba twins in emulators/_numba/floating.py.
 */
#ifndef LOWBIT_FLOAT_CORE_H
#define LOWBIT_FLOAT_CORE_H

#include "lowbit.h"

#include <string.h>

#define LOWBIT_INF_MAX 0
#define LOWBIT_INF_NAN 2

/* The bits of a double or a float, and the value of bits. */
static inline uint64_t f64_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static inline double f64_of_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static inline uint32_t f32_bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static inline float f32_of_bits(uint32_t b)
{
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static inline int bit_length(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

/* Whether q + rem / 2^s (0 < rem < 2^s, s >= 1) rounds away from zero. */
static inline int round_up(uint64_t q, uint64_t rem, int64_t s, int negative,
                           const lowbit_float *f, uint64_t u)
{
    uint64_t t;
    int64_t k;
    switch (f->rounding) {
    case LOWBIT_NEAREST_EVEN:
        if (s > 63)
            return 0;
        return rem > (UINT64_C(1) << (s - 1)) || (rem == (UINT64_C(1) << (s - 1)) && (q & 1));
    case LOWBIT_NEAREST_AWAY:
        return s <= 63 && rem >= (UINT64_C(1) << (s - 1));
    case LOWBIT_TOWARD_ZERO:
        return 0;
    case LOWBIT_FLOOR:
        return negative;
    case LOWBIT_CEIL:
        return !negative;
    case LOWBIT_ODD:
        return (q & 1) == 0;
    default: /* stochastic */
        if (f->sr_bits == 0) { /* away iff u >> 11 < ceil(phi * 2^53) */
            if (s <= 53)
                t = rem << (53 - s);
            else if (s - 53 >= 64)
                t = 1;
            else
                t = (rem >> (s - 53)) + ((rem & ((UINT64_C(1) << (s - 53)) - 1)) != 0);
            return (u >> 11) < t;
        }
        k = f->sr_bits; /* floor(phi * 2^k) + the top k bits of u carries out */
        if (s >= k)
            t = s - k >= 64 ? 0 : rem >> (s - k);
        else
            t = rem << (k - s);
        return t + (u >> (64 - k)) >= (UINT64_C(1) << k);
    }
}

/* The code of a rounded magnitude (significand count plus binade offset, before the
 * format's limits): no-zero offset, overflow by the mode and policy, FTZ, the zero's
 * sign -- the end of round_to_code and round_to_code128. */
static inline int64_t finish_code(int64_t mag, int negative, const lowbit_float *f)
{
    const int64_t M = f->man_bits, sign = negative ? f->sign_bit : 0;
    if (!f->zero) { /* no zero: the field 0 is the smallest normal binade */
        if (mag < (INT64_C(1) << M))
            mag = INT64_C(1) << M;
        mag -= INT64_C(1) << M;
    }
    if (mag > f->max_field) {
        const int toward_zero = f->rounding == LOWBIT_TOWARD_ZERO || f->rounding == LOWBIT_ODD
                                || (f->rounding == LOWBIT_FLOOR && !negative)
                                || (f->rounding == LOWBIT_CEIL && negative);
        if (f->overflow == LOWBIT_SATURATE || toward_zero)
            return f->max_field | sign;
        if (f->inf_code >= 0)
            return f->inf_code | sign;
        return f->nan_code;
    }
    if (f->zero && !f->subnormals && mag < (INT64_C(1) << M))
        mag = 0;
    if (mag == 0 && f->zero)
        return f->negative_zero ? sign : 0;
    return mag | sign;
}

/* The code of (-1)^negative * sig * 2^e2 (0 < sig < 2^63, e = e2 + its leading bit). */
static inline int64_t round_to_code(int negative, uint64_t sig, int64_t e, int64_t e2,
                                    const lowbit_float *f, uint64_t u)
{
    const int64_t M = f->man_bits, emin = f->min_exponent;
    const int64_t ec = e > emin ? e : emin;
    const int64_t s = ec - M - e2;
    uint64_t n, q, rem;
    if (s <= 0) {
        n = sig << -s;
    } else {
        if (s >= 64) {
            q = 0;
            rem = sig;
        } else {
            q = sig >> s;
            rem = sig & ((UINT64_C(1) << s) - 1);
        }
        n = q + (rem != 0 && round_up(q, rem, s, negative, f, u));
    }
    return finish_code((int64_t)n + ((ec - emin) << M), negative, f);
}

typedef unsigned __int128 u128;

enum { CLS_ZERO = 0, CLS_FINITE = 1, CLS_INF = 2, CLS_NAN = 3 };

typedef struct operand {
    int cls;
    int neg;
    uint64_t sig;
    int64_t e2;  /* value = sig * 2^e2 */
} operand;

static inline operand decode_raw(int64_t code, const lowbit_float *f, int daz);

/* An operand read from memory: subnormals are zero under the format's daz. */
static inline operand decode_code(int64_t code, const lowbit_float *f)
{
    return decode_raw(code, f, (int)f->daz);
}

/* A running accumulator's value (a register inside the operation: daz does not apply). */
static inline operand decode_held(int64_t code, const lowbit_float *f)
{
    return decode_raw(code, f, 0);
}

static inline operand decode_raw(int64_t code, const lowbit_float *f, int daz)
{
    const int64_t M = f->man_bits;
    const int64_t ones = (INT64_C(1) << (f->exp_bits + M)) - 1;
    const int64_t mag = code & ~f->sign_bit;
    const int64_t field = mag >> M;
    const uint64_t mant = (uint64_t)(mag & ((INT64_C(1) << M) - 1));
    operand o = {CLS_FINITE, (code & f->sign_bit) != 0, 0, 0};
    if (f->specials == 0 && field == (INT64_C(1) << f->exp_bits) - 1) {
        o.cls = mant ? CLS_NAN : CLS_INF;
        return o;
    }
    if ((f->specials == 1 && mag == ones) || ((f->specials == 2 || f->specials == 3) && o.neg
                                              && mag == 0)) {
        o.cls = CLS_NAN;
        return o;
    }
    if (f->specials == 3 && mag == ones) {
        o.cls = CLS_INF;
        return o;
    }
    if (f->zero && field == 0) {
        if (mant == 0 || daz) {
            o.cls = CLS_ZERO;
            return o;
        }
        o.sig = mant;
        o.e2 = f->min_exponent - M;
        return o;
    }
    o.sig = mant | (UINT64_C(1) << M);
    o.e2 = field - f->bias - M;
    return o;
}

/* The code of a zero result of the given sign. */
static inline int64_t zero_code(int negative, const lowbit_float *f)
{
    if (!f->zero || (negative && !f->is_signed))
        return 0;
    return negative && f->negative_zero ? f->sign_bit : 0;
}

#endif
