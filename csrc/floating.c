/*
 * floating.c -- floating-point kernels: cast from float64 and float32.
 * Semantics: numerics/reference/floating.py (the definition) and docs/floats.md;
 * the Numba twins are emulators/_numba/floating.py (same helper names).
 */
#include "lowbit.h"

#include <string.h>

#define LOWBIT_INF_MAX 0
#define LOWBIT_INF_NAN 2

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

/* The code of (-1)^negative * sig * 2^e2 (0 < sig < 2^63, e = e2 + its leading bit). */
static inline int64_t round_to_code(int negative, uint64_t sig, int64_t e, int64_t e2,
                                    const lowbit_float *f, uint64_t u)
{
    const int64_t M = f->man_bits, emin = f->min_exponent;
    const int64_t ec = e > emin ? e : emin;
    const int64_t s = ec - M - e2;
    const int64_t sign = negative ? f->sign_bit : 0;
    uint64_t n, q, rem;
    int64_t mag;
    int toward_zero;
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
    mag = (int64_t)n + ((ec - emin) << M);
    if (!f->zero) { /* no zero: the field 0 is the smallest normal binade */
        if (mag < (INT64_C(1) << M))
            mag = INT64_C(1) << M;
        mag -= INT64_C(1) << M;
    }
    if (mag > f->max_field) {
        toward_zero = f->rounding == LOWBIT_TOWARD_ZERO || f->rounding == LOWBIT_ODD
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

/* The code of a NaN (kind 1) or an infinity (kind 2); *status on failure. */
static inline int64_t special_code(int kind, int negative, const lowbit_float *f, int *status)
{
    if (kind == 1) {
        if (f->nan_code < 0)
            *status = LOWBIT_ERR_NAN;
        return f->nan_code < 0 ? 0 : f->nan_code;
    }
    if (f->inf_policy == LOWBIT_INF_MAX) {
        if (negative && !f->is_signed)
            return 0;
        return f->max_field | (negative ? f->sign_bit : 0);
    }
    if (f->inf_policy == LOWBIT_INF_NAN || (negative && !f->is_signed) || f->inf_code < 0) {
        if (f->nan_code < 0)
            *status = LOWBIT_ERR_INF;
        return f->nan_code < 0 ? 0 : f->nan_code;
    }
    return f->inf_code | (negative ? f->sign_bit : 0);
}

/* The code of a binary float given by its fields (all-ones exponent: inf/NaN). */
static inline int64_t code_of_parts(int negative, int64_t biased, uint64_t mant, int64_t bias,
                                    int64_t mbits, int64_t exp_ones, const lowbit_float *f,
                                    uint64_t u, int *status)
{
    int64_t e, e2;
    if (biased == exp_ones)
        return special_code(mant != 0 ? 1 : 2, negative, f, status);
    if (negative && !f->is_signed) { /* into an unsigned format */
        if ((biased == 0 && mant == 0) || f->overflow == LOWBIT_SATURATE)
            return 0;
        if (f->nan_code < 0)
            *status = LOWBIT_ERR_NAN;
        return f->nan_code < 0 ? 0 : f->nan_code;
    }
    if (biased == 0) {
        if (mant == 0) {
            if (!f->zero)
                return 0;
            return negative && f->negative_zero ? f->sign_bit : 0;
        }
        e2 = 1 - bias - mbits;
        e = e2 + bit_length(mant) - 1;
        return round_to_code(negative, mant, e, e2, f, u);
    }
    e = biased - bias;
    return round_to_code(negative, mant | (UINT64_C(1) << mbits), e, e - mbits, f, u);
}

#define FLOAT_CAST_BODY(BITS_EXPR, SIGN_SHIFT, MBITS, BIAS, EXP_ONES)                         \
    int status = LOWBIT_OK;                                                                  \
    const int stochastic = fmt->rounding == LOWBIT_STOCHASTIC;                               \
    _Pragma("omp parallel for schedule(static) reduction(|:status) if(n > LOWBIT_PARALLEL_MIN)") \
    for (int64_t i = 0; i < n; i++) {                                                        \
        uint64_t b = BITS_EXPR(x, i);                                                        \
        int st = LOWBIT_OK;                                                                  \
        uint64_t u = stochastic ? lowbit_u64(seed, (uint64_t)i) : 0;                         \
        out[i] = code_of_parts((int)(b >> SIGN_SHIFT), (int64_t)((b >> MBITS) & EXP_ONES),  \
                               b & ((UINT64_C(1) << MBITS) - 1), BIAS, MBITS, EXP_ONES,      \
                               fmt, u, &st);                                                 \
        status |= st;                                                                        \
    }                                                                                        \
    return (status & LOWBIT_ERR_NAN) ? LOWBIT_ERR_NAN : status;

/* The bit patterns, read without type punning (memcpy compiles to a plain load). */
static inline uint64_t bits64(const double *x, int64_t i)
{
    uint64_t b;
    memcpy(&b, &x[i], sizeof b);
    return b;
}

static inline uint64_t bits32(const float *x, int64_t i)
{
    uint32_t b;
    memcpy(&b, &x[i], sizeof b);
    return b;
}

int lowbit_float_cast_f64(int64_t *out, const double *x, int64_t n, const lowbit_float *fmt,
                          uint64_t seed)
{
    FLOAT_CAST_BODY(bits64, 63, 52, 1023, 0x7FF)
}

int lowbit_float_cast_f32(int64_t *out, const float *x, int64_t n, const lowbit_float *fmt,
                          uint64_t seed)
{
    FLOAT_CAST_BODY(bits32, 31, 23, 127, 0xFF)
}
