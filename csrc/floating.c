/*
 * floating.c -- floating-point kernels: cast from float64 and float32.
 * Semantics: numerics/reference/floating.py (the definition) and docs/floats.md;
 * the Numba twins are emulators/_numba/floating.py (same helper names).
 */
#include "lowbit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float_core.h"
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

/* The round-to-nearest-even code of a normal float32 (biased exponent 1..254) in a signed
 * format with a zero: round_to_code's arithmetic with the mode fixed, branch-light. */
static inline int64_t rne_code32(uint32_t b, const lowbit_float *f, int64_t ovf)
{
    const int64_t M = f->man_bits, emin = f->min_exponent;
    const int64_t e = (int64_t)((b >> 23) & 0xFF) - 127;
    const uint32_t sig = (b & 0x7FFFFF) | 0x800000;
    const int64_t ec = e > emin ? e : emin;
    const int64_t s = ec - e + 23 - M;  /* >= 0: M <= 23 */
    /* sig / 2^s to nearest even, branch-free: add half - 1 and the kept lsb, then shift
     * (s >= 26 leaves 0, as any s beyond 25 does for a 24-bit significand) */
    const int64_t t = s < 26 ? s : 26;
    const uint64_t up = t ? (UINT64_C(1) << (t - 1)) - 1 + ((sig >> t) & 1) : 0;
    const uint64_t n = ((uint64_t)sig + up) >> t;
    const int64_t sign = (b >> 31) ? f->sign_bit : 0;
    int64_t mag = (int64_t)n + ((ec - emin) << M);
    if (mag > f->max_field)
        return ovf < 0 ? f->nan_code : ovf | sign;
    if (!f->subnormals && mag < (INT64_C(1) << M))
        mag = 0;
    if (mag == 0)
        return f->negative_zero ? sign : 0;
    return mag | sign;
}

int lowbit_float_cast_f32(int64_t *out, const float *x, int64_t n, const lowbit_float *fmt,
                          uint64_t seed)
{
    if (fmt->rounding == LOWBIT_NEAREST_EVEN && fmt->is_signed && fmt->zero) {
        /* the common case: normals take the fixed-mode path, the rest the general one */
        const int64_t ovf = fmt->overflow == LOWBIT_SATURATE ? fmt->max_field
                            : (fmt->inf_code >= 0 ? fmt->inf_code : -1);
        int status = LOWBIT_OK;
        const lowbit_float f = *fmt;  /* a local copy: the stores to out cannot alias it */
        _Pragma("omp parallel for schedule(static) reduction(|:status) if(n > LOWBIT_PARALLEL_MIN)")
        for (int64_t c = 0; c < n; c += 4096) {  /* chunks: a vectorisable pass, then fix-ups */
            const int64_t end = c + 4096 < n ? c + 4096 : n;
            for (int64_t i = c; i < end; i++)
                out[i] = rne_code32((uint32_t)bits32(x, i), &f, ovf);
            for (int64_t i = c; i < end; i++) {
                const uint32_t b = (uint32_t)bits32(x, i);
                const uint32_t E = (b >> 23) & 0xFF;
                if (E == 0 || E == 0xFF) {
                    int st = LOWBIT_OK;
                    out[i] = code_of_parts((int)(b >> 31), (int64_t)E, b & 0x7FFFFF, 127, 23,
                                           0xFF, &f, 0, &st);
                    status |= st;
                }
            }
        }
        return (status & LOWBIT_ERR_NAN) ? LOWBIT_ERR_NAN : status;
    }
    FLOAT_CAST_BODY(bits32, 31, 23, 127, 0xFF)
}


/* ---- arithmetic ----------------------------------------------------------
 * Operands are decoded into (class, sign, significand, exponent of its last bit);
 * a product is exact in 64 bits (two significands of at most 24 bits); a sum is
 * aligned in a 128-bit window reaching 110 bits below the top of the larger operand,
 * the rest of the smaller one folded into a sticky bit: exact for every mode
 * (stochastic rounding with 53 random bits needs about 80 bits below the top). */


static inline int bit_length128(u128 v)
{
    uint64_t hi = (uint64_t)(v >> 64);
    return hi ? 64 + bit_length(hi) : bit_length((uint64_t)v);
}

/* Whether q + rem / 2^s (0 < rem < 2^s, s >= 1) rounds away from zero; 128-bit rem. */
static inline int round_up128(uint64_t q, u128 rem, int64_t s, int negative,
                              const lowbit_float *f, uint64_t u)
{
    u128 t, one = 1;
    int64_t k;
    switch (f->rounding) {
    case LOWBIT_NEAREST_EVEN:
        if (s > 127)
            return 0;
        return rem > (one << (s - 1)) || (rem == (one << (s - 1)) && (q & 1));
    case LOWBIT_NEAREST_AWAY:
        return s <= 127 && rem >= (one << (s - 1));
    case LOWBIT_TOWARD_ZERO:
        return 0;
    case LOWBIT_FLOOR:
        return negative;
    case LOWBIT_CEIL:
        return !negative;
    case LOWBIT_ODD:
        return (q & 1) == 0;
    default:
        if (f->sr_bits == 0) {
            if (s <= 53)
                t = rem << (53 - s);
            else if (s - 53 >= 128)
                t = 1;
            else
                t = (rem >> (s - 53)) + ((rem & ((one << (s - 53)) - 1)) != 0);
            return (u128)(u >> 11) < t;
        }
        k = f->sr_bits;
        if (s >= k)
            t = s - k >= 128 ? 0 : rem >> (s - k);
        else
            t = rem << (k - s);
        return t + (u >> (64 - k)) >= (one << k);
    }
}

/* The code of (-1)^negative * sig * 2^e2 (0 < sig < 2^126), rounded once: the 128-bit
 * twin of round_to_code (the same steps after the shift). */
static inline int64_t round_to_code128(int negative, u128 sig, int64_t e2,
                                       const lowbit_float *f, uint64_t u)
{
    const int64_t M = f->man_bits, emin = f->min_exponent;
    const int64_t e = e2 + bit_length128(sig) - 1;
    const int64_t ec = e > emin ? e : emin;
    const int64_t s = ec - M - e2;
    uint64_t n, q;
    u128 rem;
    if (s <= 0) {
        n = (uint64_t)(sig << -s);
    } else {
        if (s >= 128) {
            q = 0;
            rem = sig;
        } else {
            q = (uint64_t)(sig >> s);
            rem = sig & ((((u128)1) << s) - 1);
        }
        n = q + (rem != 0 && round_up128(q, rem, s, negative, f, u));
    }
    return finish_code((int64_t)n + ((ec - emin) << M), negative, f);
}


/* The code of a finite nonzero exact value (-1)^neg * sig * 2^e2, 128-bit sig. */
static inline int64_t finite_code(int negative, u128 sig, int64_t e2, const lowbit_float *f,
                                  uint64_t u, int *status)
{
    if (negative && !f->is_signed) {
        if (f->overflow == LOWBIT_SATURATE)
            return 0;
        if (f->nan_code < 0)
            *status = LOWBIT_ERR_NAN;
        return f->nan_code < 0 ? 0 : f->nan_code;
    }
    return round_to_code128(negative, sig, e2, f, u);
}

static inline int64_t nan_result(const lowbit_float *f, int *status)
{
    if (f->nan_code < 0)
        *status = LOWBIT_ERR_NAN;
    return f->nan_code < 0 ? 0 : f->nan_code;
}

/* a + b of two finite operands (zeros included): the aligned exact sum, rounded once. */
static inline int64_t add_finite(operand a, operand b, const lowbit_float *f, uint64_t u,
                                 int *status)
{
    int64_t top_a, top_b, T, L;
    u128 wa, wb, S;
    int sa = 0, sb = 0, neg, sticky;
    if (a.cls == CLS_ZERO && b.cls == CLS_ZERO) {
        if (a.neg == b.neg)
            return zero_code(a.neg, f);
        return zero_code(f->rounding == LOWBIT_FLOOR, f);
    }
    if (a.cls == CLS_ZERO)
        return finite_code(b.neg, b.sig, b.e2, f, u, status);
    if (b.cls == CLS_ZERO)
        return finite_code(a.neg, a.sig, a.e2, f, u, status);
    top_a = a.e2 + bit_length(a.sig);
    top_b = b.e2 + bit_length(b.sig);
    T = top_a > top_b ? top_a : top_b;
    L = T - 110;
    /* align: the operand reaching T has e2 > L; the other may fold into a sticky bit */
    if (a.e2 >= L) {
        wa = (u128)a.sig << (a.e2 - L);
    } else if (L - a.e2 >= 64) {
        wa = 0;
        sa = a.sig != 0;
    } else {
        wa = a.sig >> (L - a.e2);
        sa = (a.sig & ((UINT64_C(1) << (L - a.e2)) - 1)) != 0;
    }
    if (b.e2 >= L) {
        wb = (u128)b.sig << (b.e2 - L);
    } else if (L - b.e2 >= 64) {
        wb = 0;
        sb = b.sig != 0;
    } else {
        wb = b.sig >> (L - b.e2);
        sb = (b.sig & ((UINT64_C(1) << (L - b.e2)) - 1)) != 0;
    }
    if (a.neg == b.neg) {
        S = wa + wb;
        sticky = sa | sb;
        neg = a.neg;
    } else if (wa > wb || (wa == wb && sa && !sb)) {
        S = wa - wb - (u128)sb;  /* b's dropped bits: borrow one, keep the sticky */
        sticky = sb;
        neg = a.neg;
    } else if (wb > wa || (wa == wb && sb && !sa)) {
        S = wb - wa - (u128)sa;
        sticky = sa;
        neg = b.neg;
    } else {
        return zero_code(f->rounding == LOWBIT_FLOOR, f);  /* exact cancellation */
    }
    /* one more bit for the sticky: S + (sticky ? 1/2 : 0) in units of 2^(L - 1) */
    return finite_code(neg, (S << 1) | (u128)sticky, L - 1, f, u, status);
}

/* a + b of two finite nonzero operands whose significands have at most 49 bits, in a
 * 64-bit window reaching 61 bits below the larger top (the rest folded into a sticky
 * bit): exact for every mode but 53-bit stochastic rounding (see fast_add_ok) -- the
 * accumulation loops' fast path, the same result as add_finite. */
static inline int64_t add_finite64(operand a, operand b, const lowbit_float *f, uint64_t u,
                                   int *status)
{
    const int64_t top_a = a.e2 + bit_length(a.sig), top_b = b.e2 + bit_length(b.sig);
    const int64_t L = (top_a > top_b ? top_a : top_b) - 61;
    uint64_t wa, wb, S;
    int sa = 0, sb = 0, neg, sticky;
    if (a.e2 >= L) {
        wa = a.sig << (a.e2 - L);
    } else if (L - a.e2 >= 64) {
        wa = 0;
        sa = 1;
    } else {
        wa = a.sig >> (L - a.e2);
        sa = (a.sig & ((UINT64_C(1) << (L - a.e2)) - 1)) != 0;
    }
    if (b.e2 >= L) {
        wb = b.sig << (b.e2 - L);
    } else if (L - b.e2 >= 64) {
        wb = 0;
        sb = 1;
    } else {
        wb = b.sig >> (L - b.e2);
        sb = (b.sig & ((UINT64_C(1) << (L - b.e2)) - 1)) != 0;
    }
    if (a.neg == b.neg) {
        S = wa + wb;
        sticky = sa | sb;
        neg = a.neg;
    } else if (wa > wb || (wa == wb && sa && !sb)) {
        S = wa - wb - (uint64_t)sb;
        sticky = sb;
        neg = a.neg;
    } else if (wb > wa || (wa == wb && sb && !sa)) {
        S = wb - wa - (uint64_t)sa;
        sticky = sa;
        neg = b.neg;
    } else {
        return zero_code(f->rounding == LOWBIT_FLOOR, f);
    }
    S = (S << 1) | (uint64_t)sticky;
    if (neg && !f->is_signed) {
        if (f->overflow == LOWBIT_SATURATE)
            return 0;
        return nan_result(f, status);
    }
    return round_to_code(neg, S, L - 1 + bit_length(S) - 1, L - 1, f, u);
}

/* Whether add_finite64 is exact for f's rounding: all but 53-bit stochastic rounding
 * (the window keeps at least 36 bits below the result's last place). */
static inline int fast_add_ok(const lowbit_float *f)
{
    return f->rounding != LOWBIT_STOCHASTIC || (f->sr_bits != 0 && f->sr_bits <= 34);
}

static inline int64_t float_op(operand a, operand b, operand c, int op, const lowbit_float *f,
                               uint64_t u, int *status)
{
    int neg;
    uint64_t q;
    if (op == LOWBIT_OP_SUB) {
        b.neg = !b.neg;
        op = LOWBIT_OP_ADD;
    }
    if (a.cls == CLS_NAN || b.cls == CLS_NAN || (op == LOWBIT_OP_FMA && c.cls == CLS_NAN))
        return nan_result(f, status);
    if (op == LOWBIT_OP_ADD) {
        if (a.cls == CLS_INF || b.cls == CLS_INF) {
            if (a.cls == CLS_INF && b.cls == CLS_INF && a.neg != b.neg)
                return nan_result(f, status);
            neg = a.cls == CLS_INF ? a.neg : b.neg;
            return special_code(2, neg, f, status);
        }
        return add_finite(a, b, f, u, status);
    }
    neg = a.neg != b.neg;
    if (op == LOWBIT_OP_DIV) {
        if ((a.cls == CLS_INF && b.cls == CLS_INF) || (a.cls == CLS_ZERO && b.cls == CLS_ZERO))
            return nan_result(f, status);
        if (a.cls == CLS_INF || b.cls == CLS_ZERO)
            return special_code(2, neg, f, status);
        if (a.cls == CLS_ZERO || b.cls == CLS_INF)
            return zero_code(neg, f);
        /* the quotient to at least 80 bits (a's significand moved up to bit 103), the
         * remainder as a sticky bit */
        {
            const int64_t sh = 104 - bit_length(a.sig);
            const u128 num = (u128)a.sig << sh;
            const u128 quo = num / b.sig;
            const int sticky = (num % b.sig) != 0;
            return finite_code(neg, (quo << 1) | (u128)sticky, a.e2 - b.e2 - sh - 1, f, u,
                               status);
        }
    }
    /* mul, and the product of fma */
    if ((a.cls == CLS_INF && b.cls == CLS_ZERO) || (a.cls == CLS_ZERO && b.cls == CLS_INF))
        return nan_result(f, status);
    if (a.cls == CLS_INF || b.cls == CLS_INF) {
        if (op == LOWBIT_OP_FMA && c.cls == CLS_INF && c.neg != neg)
            return nan_result(f, status);
        return special_code(2, neg, f, status);
    }
    if (op == LOWBIT_OP_MUL) {
        if (a.cls == CLS_ZERO || b.cls == CLS_ZERO)
            return zero_code(neg, f);
        return finite_code(neg, (u128)(a.sig * b.sig), a.e2 + b.e2, f, u, status);
    }
    if (c.cls == CLS_INF)
        return special_code(2, c.neg, f, status);
    {
        operand p = {CLS_ZERO, neg, 0, 0};
        if (a.cls != CLS_ZERO && b.cls != CLS_ZERO) {
            q = a.sig * b.sig;
            p.cls = CLS_FINITE;
            p.sig = q;
            p.e2 = a.e2 + b.e2;
        }
        return add_finite(p, c, f, u, status);
    }
}

int lowbit_float_elementwise(int64_t *out, const int64_t *a, const lowbit_float *fa,
                             const int64_t *b, const lowbit_float *fb, const int64_t *c,
                             const lowbit_float *fc, int64_t n, int32_t op,
                             const lowbit_float *fmt, uint64_t seed)
{
    int status = LOWBIT_OK;
    const int stochastic = fmt->rounding == LOWBIT_STOCHASTIC;
    _Pragma("omp parallel for schedule(static) reduction(|:status) if(n > LOWBIT_PARALLEL_MIN)")
    for (int64_t i = 0; i < n; i++) {
        int st = LOWBIT_OK;
        operand oc = {CLS_ZERO, 0, 0, 0};
        uint64_t u = stochastic ? lowbit_u64(seed, (uint64_t)i) : 0;
        if (op == LOWBIT_OP_FMA)
            oc = decode_code(c[i], fc);
        out[i] = float_op(decode_code(a[i], fa), decode_code(b[i], fb), oc, op, fmt, u, &st);
        status |= st;
    }
    return status;
}


/* ---- accumulation ----------------------------------------------------------
 * Semantics: numerics/reference/floating.py reduce_terms / accumulate /
 * fused_accumulate. An accumulator is held as a code of its format. */

#define LOWBIT_FINAL_COUNTER(e) (((uint64_t)(e) << LOWBIT_STEP_BITS) | LOWBIT_FINAL_STEP)
#define LOWBIT_STEP_COUNTER(e, k) (((uint64_t)(e) << LOWBIT_STEP_BITS) | (uint64_t)(k))

static inline uint64_t draw(const lowbit_float *f, uint64_t seed, uint64_t counter)
{
    return f->rounding == LOWBIT_STOCHASTIC ? lowbit_u64(seed, counter) : 0;
}

/* The exact product of two decoded operands (as an operand: class, sign, sig, e2). */
static inline operand product(operand x, operand y)
{
    operand p = {CLS_FINITE, x.neg != y.neg, 0, 0};
    if (x.cls == CLS_NAN || y.cls == CLS_NAN
        || (x.cls == CLS_INF && y.cls == CLS_ZERO) || (x.cls == CLS_ZERO && y.cls == CLS_INF)) {
        p.cls = CLS_NAN;
    } else if (x.cls == CLS_INF || y.cls == CLS_INF) {
        p.cls = CLS_INF;
    } else if (x.cls == CLS_ZERO || y.cls == CLS_ZERO) {
        p.cls = CLS_ZERO;
    } else {
        p.sig = x.sig * y.sig;
        p.e2 = x.e2 + y.e2;
    }
    return p;
}

/* code of s + t in f (s, t decoded; IEEE specials), one rounding. */
static inline int64_t add_codes(operand s, operand t, const lowbit_float *f, uint64_t u,
                                int *status)
{
    operand none = {CLS_ZERO, 0, 0, 0};
    if (s.cls == CLS_FINITE && t.cls == CLS_FINITE && fast_add_ok(f))
        return add_finite64(s, t, f, u, status);
    return float_op(s, t, none, LOWBIT_OP_ADD, f, u, status);
}

static inline operand negated(operand x)
{
    x.neg = !x.neg;
    return x;
}

/* The code in fmt of a decoded value (round once; specials by fmt's policies). */
static inline int64_t to_format(operand v, const lowbit_float *fmt, uint64_t u, int *status)
{
    if (v.cls == CLS_NAN)
        return nan_result(fmt, status);
    if (v.cls == CLS_INF)
        return special_code(2, v.neg, fmt, status);
    if (v.cls == CLS_ZERO)
        return zero_code(v.neg, fmt);
    return finite_code(v.neg, (u128)v.sig, v.e2, fmt, u, status);
}

/* The fused model's sum of K products (terms[k]) with register f_reg, outer f_out. */
static inline int64_t fused_sum(const operand *terms, int64_t K, const lowbit_fused *m,
                                const lowbit_float *f_reg, const lowbit_float *f_out,
                                int *status, int *result_in_outer)
{
    int has_nan = 0, pos_inf = 0, neg_inf = 0;
    int64_t c = zero_code(0, f_reg), outer = m->promote_every ? zero_code(0, f_out) : 0;
    const int64_t n = m->frac_bits;
    for (int64_t k = 0; k < K; k++) {
        has_nan |= terms[k].cls == CLS_NAN;
        pos_inf |= terms[k].cls == CLS_INF && !terms[k].neg;
        neg_inf |= terms[k].cls == CLS_INF && terms[k].neg;
    }
    *result_in_outer = m->promote_every != 0;
    if (has_nan || (pos_inf && neg_inf)) {
        *result_in_outer = 0;
        return nan_result(f_reg, status);
    }
    if (pos_inf || neg_inf) {
        *result_in_outer = 0;
        return special_code(2, neg_inf, f_reg, status);
    }
    for (int64_t g = 0; g < K; g += m->group) {
        const int64_t end = g + m->group < K ? g + m->group : K;
        operand cv = decode_held(c, f_reg);
        if (cv.cls == CLS_FINITE || cv.cls == CLS_ZERO) {
            int64_t emax = INT64_MIN, S = 0;
            for (int64_t k = g; k <= end; k++) {
                const operand t = k < end ? terms[k] : cv;
                if (t.cls == CLS_FINITE) {
                    const int64_t e = t.e2 + bit_length(t.sig) - 1;
                    emax = e > emax ? e : emax;
                }
            }
            if (emax == INT64_MIN) {
                c = zero_code(0, f_reg);
            } else {
                const int64_t qe = emax - n;
                for (int64_t k = g; k <= end; k++) {
                    const operand t = k < end ? terms[k] : cv;
                    int64_t v;
                    if (t.cls != CLS_FINITE)
                        continue;
                    if (t.e2 >= qe) {
                        v = (int64_t)(t.sig << (t.e2 - qe));
                        S += t.neg ? -v : v;
                    } else {
                        const int64_t d = qe - t.e2;
                        const uint64_t kept = d >= 64 ? 0 : t.sig >> d;
                        const int lost = d >= 64 ? t.sig != 0 : (t.sig & ((UINT64_C(1) << d) - 1)) != 0;
                        v = (int64_t)kept;
                        if (t.neg)
                            S -= v + (m->floor_align && lost);
                        else
                            S += v;
                    }
                }
                if (S == 0) {
                    c = zero_code(0, f_reg);
                } else {
                    const uint64_t mag = S < 0 ? (uint64_t)(-S) : (uint64_t)S;
                    c = round_to_code(S < 0, mag, qe + bit_length(mag) - 1, qe, f_reg, 0);
                }
            }
        }
        if (m->promote_every && end % m->promote_every == 0) {
            outer = add_codes(decode_held(outer, f_out), decode_held(c, f_reg), f_out, 0, status);
            c = zero_code(0, f_reg);
        }
    }
    if (!m->promote_every)
        return c;
    if (K % m->promote_every)
        outer = add_codes(decode_held(outer, f_out), decode_held(c, f_reg), f_out, 0, status);
    return outer;
}

int lowbit_float_matmul(int64_t *out, const int64_t *a, const lowbit_float *fa,
                        const int64_t *b, const lowbit_float *fb, int64_t M, int64_t K,
                        int64_t N, int32_t mode, int64_t lsb_exp, const lowbit_float *acc,
                        const lowbit_fused *fused, const lowbit_float *outer,
                        const lowbit_float *fmt, uint64_t seed)
{
    int status = LOWBIT_OK, nomem = 0;
    /* every operand decoded once (b transposed: each output reads a row of each) */
    operand *ad = malloc(sizeof(operand) * (size_t)(M * K > 0 ? M * K : 1));
    operand *bd = malloc(sizeof(operand) * (size_t)(K * N > 0 ? K * N : 1));
    if (!ad || !bd) {
        free(ad);
        free(bd);
        return LOWBIT_ERR_NOMEM;
    }
    for (int64_t i = 0; i < M * K; i++)
        ad[i] = decode_code(a[i], fa);
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            bd[j * K + k] = decode_code(b[k * N + j], fb);
    _Pragma("omp parallel reduction(|:status) reduction(|:nomem) if(M * N * K > LOWBIT_PARALLEL_MIN)")
    {
        operand *terms = malloc(sizeof(operand) * (size_t)(K > 0 ? K : 1));
        int64_t *level = mode == LOWBIT_FACC_PAIRWISE
                         ? malloc(sizeof(int64_t) * (size_t)(K > 0 ? K : 1)) : NULL;
        if (!terms || (mode == LOWBIT_FACC_PAIRWISE && !level)) {
            nomem = 1;
        } else {
            _Pragma("omp for schedule(static)")
            for (int64_t e = 0; e < M * N; e++) {
                const int64_t i = e / N, j = e % N;
                int st = LOWBIT_OK;
                int64_t code;
                const operand *ar = ad + i * K, *bc = bd + j * K;
                for (int64_t k = 0; k < K; k++)
                    terms[k] = product(ar[k], bc[k]);
                if (mode == LOWBIT_FACC_EXACT) {
                    int has_nan = 0, pos_inf = 0, neg_inf = 0;
                    int64_t S = 0;
                    for (int64_t k = 0; k < K; k++) {
                        const operand t = terms[k];
                        has_nan |= t.cls == CLS_NAN;
                        pos_inf |= t.cls == CLS_INF && !t.neg;
                        neg_inf |= t.cls == CLS_INF && t.neg;
                        if (t.cls == CLS_FINITE) {
                            const int64_t v = (int64_t)(t.sig << (t.e2 - lsb_exp));
                            S += t.neg ? -v : v;
                        }
                    }
                    if (has_nan || (pos_inf && neg_inf)) {
                        code = nan_result(fmt, &st);
                    } else if (pos_inf || neg_inf) {
                        code = special_code(2, neg_inf, fmt, &st);
                    } else if (S == 0) {
                        code = zero_code(0, fmt);  /* the sum starts at +0 */
                    } else {
                        const uint64_t mag = S < 0 ? (uint64_t)(-S) : (uint64_t)S;
                        code = finite_code(S < 0, (u128)mag, lsb_exp, fmt,
                                           draw(fmt, seed, LOWBIT_FINAL_COUNTER(e)), &st);
                    }
                } else {
                    const lowbit_float *held = acc;  /* the format the running code is in */
                    int64_t s;
                    if (mode == LOWBIT_FACC_FUSED) {
                        int in_outer = 0;
                        s = fused_sum(terms, K, fused, acc, outer, &st, &in_outer);
                        held = in_outer ? outer : acc;
                    } else if (mode == LOWBIT_FACC_PAIRWISE) {
                        int64_t len = K, step = K;
                        for (int64_t k = 0; k < K; k++)
                            level[k] = to_format(terms[k], acc,
                                                 draw(acc, seed, LOWBIT_STEP_COUNTER(e, k)), &st);
                        while (len > 1) {
                            int64_t w = 0;
                            for (int64_t p = 0; p + 1 < len; p += 2) {
                                level[w++] = add_codes(decode_held(level[p], acc),
                                                       decode_held(level[p + 1], acc), acc,
                                                       draw(acc, seed, LOWBIT_STEP_COUNTER(e, step)),
                                                       &st);
                                step++;
                            }
                            if (len % 2)
                                level[w++] = level[len - 1];
                            len = w;
                        }
                        s = K ? level[0] : zero_code(0, acc);
                    } else if (mode == LOWBIT_FACC_KAHAN) {
                        int64_t c = zero_code(0, acc);
                        s = zero_code(0, acc);
                        for (int64_t k = 0; k < K; k++) {
                            const operand sv = decode_held(s, acc);
                            /* y = round(t - c); n = round(s + y); c = round(round(n - s) - y) */
                            const int64_t y = add_codes(terms[k], negated(decode_held(c, acc)), acc,
                                                        draw(acc, seed, LOWBIT_STEP_COUNTER(e, 4 * k)), &st);
                            const operand yv = decode_held(y, acc);
                            const int64_t nn = add_codes(sv, yv, acc,
                                                         draw(acc, seed, LOWBIT_STEP_COUNTER(e, 4 * k + 1)), &st);
                            const int64_t d = add_codes(decode_held(nn, acc), negated(sv), acc,
                                                        draw(acc, seed, LOWBIT_STEP_COUNTER(e, 4 * k + 2)), &st);
                            c = add_codes(decode_held(d, acc), negated(yv), acc,
                                          draw(acc, seed, LOWBIT_STEP_COUNTER(e, 4 * k + 3)), &st);
                            s = nn;
                        }
                    } else {
                        s = zero_code(0, acc);
                        for (int64_t k = 0; k < K; k++)
                            s = add_codes(decode_held(s, acc), terms[k], acc,
                                          draw(acc, seed, LOWBIT_STEP_COUNTER(e, k)), &st);
                    }
                    code = to_format(decode_held(s, held), fmt,
                                     draw(fmt, seed, LOWBIT_FINAL_COUNTER(e)), &st);
                }
                out[e] = code;
                status |= st;
            }
        }
        free(terms);
        free(level);
    }
    free(ad);
    free(bd);
    if (nomem)
        return LOWBIT_ERR_NOMEM;
    return (status & LOWBIT_ERR_NAN) ? LOWBIT_ERR_NAN : status;
}

void lowbit_float_matmul_binary32(float *out, const float *a, const float *b, int64_t M,
                                  int64_t K, int64_t N)
{
    _Pragma("omp parallel for schedule(static) if(M * N * K > LOWBIT_PARALLEL_MIN)")
    for (int64_t i = 0; i < M; i++) {
        float *row = out + i * N;
        for (int64_t j = 0; j < N; j++)
            row[j] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const float x = a[i * K + k];
            const float *brow = b + k * N;
            for (int64_t j = 0; j < N; j++)
                row[j] += x * brow[j];
        }
    }
}

/* The value of the integer S (exact in a double) times 2^q rounded once into the
 * register format (its own rounding; no stochastic draw). */
static inline double register_value(double S, int64_t q, const lowbit_float *reg)
{
    if (S == 0.0)
        return 0.0;
    const int neg = S < 0.0;
    const uint64_t mag = (uint64_t)(neg ? -S : S);
    const int64_t code = round_to_code(neg, mag, q + bit_length(mag) - 1, q, reg, 0);
    const operand o = decode_raw(code, reg, 0);
    double v;
    if (o.cls == CLS_FINITE)
        v = ldexp((double)o.sig, (int)o.e2);
    else if (o.cls == CLS_ZERO)
        v = 0.0;
    else if (o.cls == CLS_INF)
        v = HUGE_VAL;
    else
        v = NAN;
    return o.neg ? -v : v;
}

/* One group's exponent step: for each column the unbiased exponent e of m[j] > 0 (a
 * normal double, or inf), sc = 2^(frac_bits - e), isc = 2^(e - frac_bits) (both normal:
 * |e| <= 1024, frac_bits <= 48); zeros for m[j] == 0. Branch-free, vectorised. */
static inline void group_scales(const double *restrict m, double *restrict sc,
                                double *restrict isc, int64_t *restrict qe, int64_t N,
                                int64_t frac_bits)
{
    for (int64_t j = 0; j < N; j++) {
        const int64_t e = (int64_t)(f64_bits(m[j]) >> 52) - 1023;
        const int nz = m[j] > 0.0;
        qe[j] = nz ? e - frac_bits : 0;
        sc[j] = nz ? f64_of_bits((uint64_t)(1023 + frac_bits - e) << 52) : 0.0;
        isc[j] = nz ? f64_of_bits((uint64_t)(1023 - frac_bits + e) << 52) : 0.0;
    }
}

/* The register step of one group: c[j] = S[j] * 2^qe[j] rounded once into the register.
 * A round-toward-zero register keeps the top man_bits + 1 bits of the (exact) product
 * S * isc when it is a normal register value (exponent rlo..rhi - 1), vectorised; the
 * other columns (and every column of a register with another rounding) go through
 * register_value. S == 0 gives +0. A non-finite S (products beyond the register's range)
 * is kept: the caller falls back to the general kernel on a non-finite result. */
static inline void register_step(double *restrict c, const double *restrict S,
                                 const double *restrict isc, const int64_t *restrict qe,
                                 unsigned char *restrict slow, int64_t N, int rz,
                                 const lowbit_float *reg, uint64_t mask, int64_t rlo,
                                 int64_t rhi)
{
    int any = !rz;
    if (rz) {
        for (int64_t j = 0; j < N; j++) {
            const uint64_t vb = f64_bits(S[j] * isc[j]);
            const int64_t ev = (int64_t)((vb >> 52) & 0x7FF) - 1023;
            const int ok = S[j] == 0.0 || (ev >= rlo && ev < rhi);
            c[j] = S[j] == 0.0 ? 0.0 : f64_of_bits(vb & mask);
            slow[j] = !ok;
            any |= !ok;
        }
    }
    if (!any)
        return;
    for (int64_t j = 0; j < N; j++)
        if (!rz || slow[j])
            c[j] = isfinite(S[j]) ? register_value(S[j], qe[j], reg) : S[j];
}

int lowbit_fused_matmul_f64(double *out, const double *a, const double *restrict b, int64_t M,
                            int64_t K, int64_t N, int64_t group, int64_t frac_bits,
                            int32_t floor_align, int64_t promote, const lowbit_float *regp)
{
    const lowbit_float reg = *regp;
    int nomem = 0;
    /* a round-toward-zero register: a normal result keeps its top man_bits + 1 bits */
    const int rz = reg.rounding == LOWBIT_TOWARD_ZERO;
    const uint64_t mask = ~((UINT64_C(1) << (52 - reg.man_bits)) - 1);
    const int64_t rlo = reg.min_exponent, rhi = reg.min_exponent + (reg.max_field >> reg.man_bits) - 1;
    _Pragma("omp parallel reduction(|:nomem) if(M * N * K > LOWBIT_PARALLEL_MIN)")
    {
        double *const buf = malloc(sizeof(double) * (size_t)N * 5);
        float *restrict outer = malloc(sizeof(float) * (size_t)N);
        int64_t *restrict qe = malloc(sizeof(int64_t) * (size_t)N);
        unsigned char *restrict slow = malloc((size_t)N);
        double *restrict c = buf, *restrict m = buf + N, *restrict sc = buf + 2 * N,
               *restrict S = buf + 3 * N, *restrict isc = buf + 4 * N;
        if (!buf || !outer || !qe || !slow)
            nomem = 1;
        _Pragma("omp for schedule(static)")
        for (int64_t i = 0; i < M; i++) {
            if (nomem)
                continue;
            for (int64_t j = 0; j < N; j++) {
                c[j] = 0.0;
                outer[j] = 0.0f;
            }
            for (int64_t g0 = 0; g0 < K; g0 += group) {
                const int64_t g1 = g0 + group < K ? g0 + group : K;
                for (int64_t j = 0; j < N; j++)
                    m[j] = fabs(c[j]);
                for (int64_t k = g0; k < g1; k++) {
                    const double x = a[i * K + k];
                    const double *restrict br = b + k * N;
                    for (int64_t j = 0; j < N; j++) {
                        const double p = fabs(x * br[j]);
                        m[j] = p > m[j] ? p : m[j];
                    }
                }
                group_scales(m, sc, isc, qe, N, frac_bits);
                if (floor_align) {
                    for (int64_t j = 0; j < N; j++)
                        S[j] = floor(c[j] * sc[j]);
                    for (int64_t k = g0; k < g1; k++) {
                        const double x = a[i * K + k];
                        const double *restrict br = b + k * N;
                        for (int64_t j = 0; j < N; j++)
                            S[j] += floor(x * br[j] * sc[j]);
                    }
                } else {
                    for (int64_t j = 0; j < N; j++)
                        S[j] = trunc(c[j] * sc[j]);
                    for (int64_t k = g0; k < g1; k++) {
                        const double x = a[i * K + k];
                        const double *restrict br = b + k * N;
                        for (int64_t j = 0; j < N; j++)
                            S[j] += trunc(x * br[j] * sc[j]);
                    }
                }
                register_step(c, S, isc, qe, slow, N, rz, &reg, mask, rlo, rhi);
                if (promote && g1 % promote == 0)
                    for (int64_t j = 0; j < N; j++) {
                        outer[j] = outer[j] + (float)c[j];
                        c[j] = 0.0;
                    }
            }
            if (promote) {
                if (K % promote)
                    for (int64_t j = 0; j < N; j++)
                        outer[j] = outer[j] + (float)c[j];
                for (int64_t j = 0; j < N; j++)
                    out[i * N + j] = outer[j];
            } else {
                for (int64_t j = 0; j < N; j++)
                    out[i * N + j] = c[j];
            }
        }
        free(buf);
        free(outer);
        free(qe);
        free(slow);
    }
    return nomem ? LOWBIT_ERR_NOMEM : LOWBIT_OK;
}

int lowbit_fused_matmul_f32(float *out, const float *a, const float *restrict b, int64_t M,
                            int64_t K, int64_t N, int64_t group, int64_t frac_bits,
                            int64_t promote, const lowbit_float *regp)
{
    const lowbit_float reg = *regp;
    int nomem = 0, range = 0;
    const uint32_t mask = ~((UINT32_C(1) << (23 - reg.man_bits)) - 1);
    const int64_t rlo = reg.min_exponent, rhi = reg.min_exponent + (reg.max_field >> reg.man_bits) - 1;
    const int64_t elo = frac_bits - 126, ehi = frac_bits + 126;
    _Pragma("omp parallel reduction(|:nomem, range) if(M * N * K > LOWBIT_PARALLEL_MIN)")
    {
        float *const buf = malloc(sizeof(float) * (size_t)N * 6);
        float *restrict c = buf, *restrict m = buf + N, *restrict sc = buf + 2 * N,
              *restrict S = buf + 3 * N, *restrict isc = buf + 4 * N,
              *restrict outer = buf + 5 * N;
        if (!buf)
            nomem = 1;
        _Pragma("omp for schedule(static)")
        for (int64_t i = 0; i < M; i++) {
            if (nomem || range)
                continue;
            for (int64_t j = 0; j < N; j++) {
                c[j] = 0.0f;
                outer[j] = 0.0f;
            }
            int64_t bad = 0;
            for (int64_t g0 = 0; g0 < K; g0 += group) {
                const int64_t g1 = g0 + group < K ? g0 + group : K;
                for (int64_t j = 0; j < N; j++)
                    m[j] = fabsf(c[j]);
                for (int64_t k = g0; k < g1; k++) {
                    const float x = a[i * K + k];
                    const float *restrict br = b + k * N;
                    for (int64_t j = 0; j < N; j++) {
                        const float p = fabsf(x * br[j]);
                        m[j] = p > m[j] ? p : m[j];
                    }
                }
                /* the exponent step: 2^(n - e) and 2^(e - n) normal floats, or leave */
                for (int64_t j = 0; j < N; j++) {
                    const int64_t e = (int64_t)(f32_bits(m[j]) >> 23) - 127;
                    const int64_t nz = m[j] > 0.0f;
                    bad |= nz & ((e < elo) | (e > ehi));
                    sc[j] = nz ? f32_of_bits((uint32_t)(127 + frac_bits - e) << 23) : 0.0f;
                    isc[j] = nz ? f32_of_bits((uint32_t)(127 - frac_bits + e) << 23) : 0.0f;
                }
                for (int64_t j = 0; j < N; j++)
                    S[j] = truncf(c[j] * sc[j]);
                for (int64_t k = g0; k < g1; k++) {
                    const float x = a[i * K + k];
                    const float *restrict br = b + k * N;
                    for (int64_t j = 0; j < N; j++)
                        S[j] += truncf(x * br[j] * sc[j]);
                }
                /* the register step (toward zero): the top bits of the exact S * isc */
                for (int64_t j = 0; j < N; j++) {
                    const uint32_t vb = f32_bits(S[j] * isc[j]);
                    const int64_t ev = (int64_t)((vb >> 23) & 0xFF) - 127;
                    bad |= (S[j] != 0.0f) & ((ev < rlo) | (ev >= rhi));
                    c[j] = S[j] == 0.0f ? 0.0f : f32_of_bits(vb & mask);
                }
                if (promote && g1 % promote == 0)
                    for (int64_t j = 0; j < N; j++) {
                        outer[j] = outer[j] + c[j];
                        c[j] = 0.0f;
                    }
            }
            if (bad) {
                range = 1;
                continue;
            }
            if (promote && K % promote)
                for (int64_t j = 0; j < N; j++)
                    outer[j] = outer[j] + c[j];
            for (int64_t j = 0; j < N; j++)
                out[i * N + j] = promote ? outer[j] : c[j];
        }
        free(buf);
    }
    if (nomem)
        return LOWBIT_ERR_NOMEM;
    return range ? LOWBIT_ERR_RANGE : LOWBIT_OK;
}

#define TABLE_CHUNK 16384

/* lowbit_float_cast_f32_table into codes of type OUT_T (NAME_run: the cast of a run of
 * float32 values, each table entry indexed by the value's top 32 - shift bits and whether
 * any lower one is set, with 64-bit index arithmetic and restrict pointers outside the
 * OpenMP region so that GCC vectorises the gather; it counts the entries -1, a NaN without
 * a code, and -2, an inf without one). */
#define TABLE_CAST(NAME, OUT_T)                                                            \
    static void NAME##_run(OUT_T *restrict out, const float *restrict x, int64_t n,        \
                           const int64_t *restrict table, int32_t shift, int64_t *nans,    \
                           int64_t *infs)                                                  \
    {                                                                                      \
        const uint64_t low = (UINT64_C(1) << shift) - 1;                                   \
        int64_t na = 0, in = 0;                                                            \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const uint64_t b = bits32(x, i);                                               \
            const int64_t c = table[(int64_t)(((b >> shift) << 1) |                        \
                                              (uint64_t)((b & low) != 0))];                \
            out[i] = (OUT_T)(c >= 0 ? c : 0);                                              \
            na += c == -1;                                                                 \
            in += c == -2;                                                                 \
        }                                                                                  \
        *nans += na;                                                                       \
        *infs += in;                                                                       \
    }                                                                                      \
    int NAME(OUT_T *out, const float *x, int64_t n, const int64_t *table, int32_t shift)   \
    {                                                                                      \
        int64_t nans = 0, infs = 0;                                                        \
        const int64_t chunks = (n + TABLE_CHUNK - 1) / TABLE_CHUNK;                        \
        _Pragma("omp parallel for schedule(static) reduction(+:nans,infs) if(n > LOWBIT_PARALLEL_MIN)") \
        for (int64_t c = 0; c < chunks; c++) {                                             \
            const int64_t lo = c * TABLE_CHUNK;                                            \
            const int64_t m = n - lo < TABLE_CHUNK ? n - lo : TABLE_CHUNK;                 \
            NAME##_run(out + lo, x + lo, m, table, shift, &nans, &infs);                   \
        }                                                                                  \
        return nans ? LOWBIT_ERR_NAN : (infs ? LOWBIT_ERR_INF : LOWBIT_OK);                \
    }
TABLE_CAST(lowbit_float_cast_f32_table, int64_t)
TABLE_CAST(lowbit_float_cast_f32_table_u8, uint8_t)
