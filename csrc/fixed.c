/*
 * fixed.c -- fixed-point kernels: cast, convert, add, mul, matmul, sum.
 * Semantics: numerics/reference/fixed.py (the definition) and docs/formats.md.
 */
#include "lowbit.h"

#define LOWBIT_PARALLEL_MIN 65536 /* elements below which OpenMP is not worth it */

/* ---- cast from float --------------------------------------------------- */

/* round(y) as a float, y finite with |y| < 2^62; exact for every mode. */
static inline double round_float(double y, int rounding, uint64_t seed, uint64_t counter)
{
    double t, c, d;
    uint64_t u;
    switch (rounding) {
    case LOWBIT_NEAREST_EVEN:
        return rint(y);
    case LOWBIT_NEAREST_AWAY:
        t = trunc(y);
        return fabs(y - t) >= 0.5 ? t + copysign(1.0, y) : t;
    case LOWBIT_TOWARD_ZERO:
        return trunc(y);
    case LOWBIT_FLOOR:
        return floor(y);
    case LOWBIT_CEIL:
        return ceil(y);
    default: /* stochastic: up iff u53 < (y - floor(y)) * 2^53, compared exactly */
        u = lowbit_u53(seed, counter);
        if (y >= 0) {
            t = floor(y);
            return t + ((double)u < (y - t) * 0x1p53);
        }
        c = ceil(y);
        d = c - y; /* exact: the fractional part of |y| */
        if (d == 0)
            return c;
        return (c - 1.0) + (d * 0x1p53 < (double)(LOWBIT_TWO53 - u));
    }
}

/* Code of the finite or infinite float x in f; flags NaN (bit 0) and inf under WRAP (bit 1). */
static inline int64_t cast_one(double x, double pow2frac, const lowbit_fmt *f,
                               uint64_t seed, uint64_t counter, int *status)
{
    double y;
    int e;
    if (isnan(x)) {
        *status |= 1;
        return 0;
    }
    y = x * pow2frac;
    if (!(fabs(y) < 0x1p62)) {
        if (!f->wrap)
            return x > 0 ? f->hi : f->lo;
        if (isinf(x)) {
            *status |= 2;
            return 0;
        }
        /* |y| >= 2^62 is an integer: y = M * 2^E with E >= 10; wrap it exactly */
        int64_t m = (int64_t)ldexp(frexp(x, &e), 53);
        int64_t k = (int64_t)e - 53 + f->frac;
        return k >= 64 ? 0 : lowbit_wrap_bits((uint64_t)m << k, f);
    }
    if (y == 0.0 && x != 0.0) /* underflow: only the sign matters now */
        y = copysign(0x1p-1074, x);
    return lowbit_overflow((int64_t)round_float(y, f->rounding, seed, counter), f);
}

#define LOWBIT_DEFINE_CAST(NAME, T)                                                   \
    int NAME(int64_t *out, const T *x, int64_t n, const lowbit_fixed *fmt, uint64_t seed) \
    {                                                                                 \
        lowbit_fmt f = lowbit_prepare(fmt);                                           \
        double p = ldexp(1.0, f.frac);                                                \
        int status = 0;                                                               \
        int64_t i;                                                                    \
        if (f.rounding == LOWBIT_NEAREST_EVEN && !f.wrap && f.bits <= 53) {           \
            /* fast path: clamp then rint is exact, lo/hi are exact doubles */        \
            double lo = (double)f.lo, hi = (double)f.hi;                              \
            int64_t nans = 0;                                                         \
            _Pragma("omp parallel for schedule(static) reduction(+:nans) if(n > LOWBIT_PARALLEL_MIN)") \
            for (i = 0; i < n; i++) {                                                 \
                double y = (double)x[i] * p;                                          \
                nans += y != y;                                                       \
                out[i] = (int64_t)rint(fmin(fmax(y, lo), hi));                        \
            }                                                                         \
            return nans ? LOWBIT_ERR_NAN : LOWBIT_OK;                                 \
        }                                                                             \
        _Pragma("omp parallel for schedule(static) reduction(|:status) if(n > LOWBIT_PARALLEL_MIN)") \
        for (i = 0; i < n; i++)                                                       \
            out[i] = cast_one((double)x[i], p, &f, seed, (uint64_t)i, &status);       \
        if (status & 1)                                                               \
            return LOWBIT_ERR_NAN;                                                    \
        return status ? LOWBIT_ERR_INF : LOWBIT_OK;                                   \
    }

LOWBIT_DEFINE_CAST(lowbit_fixed_cast_f64, double)
LOWBIT_DEFINE_CAST(lowbit_fixed_cast_f32, float)

/* ---- element-wise ------------------------------------------------------ */

int lowbit_fixed_convert(int64_t *out, const int64_t *codes, int64_t n, int32_t src_frac,
                         const lowbit_fixed *fmt, uint64_t seed,
                         int32_t counter_shift, uint64_t counter_low)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int64_t i;
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++)
        out[i] = lowbit_quantize(codes[i], src_frac, &f, seed,
                                 ((uint64_t)i << counter_shift) | counter_low);
    return LOWBIT_OK;
}

int lowbit_fixed_add(int64_t *out, const int64_t *a, int32_t fa, const int64_t *b, int32_t fb,
                     int64_t n, int32_t negate_b, const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int32_t F = fa > fb ? fa : fb;
    int sa = F - fa, sb = F - fb;
    int64_t i;
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++) {
        int64_t x = lowbit_shl(a[i], sa), y = lowbit_shl(b[i], sb);
        out[i] = lowbit_quantize(negate_b ? x - y : x + y, F, &f, seed, (uint64_t)i);
    }
    return LOWBIT_OK;
}

int lowbit_fixed_mul(int64_t *out, const int64_t *a, const int64_t *b, int64_t n,
                     int32_t pfrac, const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int64_t i;
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++)
        out[i] = lowbit_quantize(a[i] * b[i], pfrac, &f, seed, (uint64_t)i);
    return LOWBIT_OK;
}

/* ---- accumulation ------------------------------------------------------ */

/* Sum K exact terms (tfrac fractional bits) in the narrow format acc; returns
 * the accumulator's code. buf holds K scratch codes for the pairwise tree. */
static int64_t accumulate(const int64_t *t, int64_t K, int32_t tfrac, const lowbit_fmt *acc,
                          int order, int compensated, uint64_t seed, uint64_t element,
                          int64_t *buf)
{
    uint64_t base = element << LOWBIT_STEP_BITS;
    int64_t k;
    if (order == LOWBIT_SEQUENTIAL) {
        int32_t F = acc->frac > tfrac ? acc->frac : tfrac;
        int ss = F - acc->frac, st = F - tfrac;
        int stochastic = acc->rounding == LOWBIT_STOCHASTIC;
        int64_t s = 0, c = 0, z, n;
        for (k = 0; k < K; k++) {
            z = lowbit_shl(s, ss) + lowbit_shl(t[k], st) - c;
            if (ss == 0) {
                n = z;
            } else {
                uint64_t u = stochastic ? lowbit_u53(seed, base | (uint64_t)k) : 0;
                n = lowbit_round_shift(z, ss, acc->rounding, u);
                if (compensated)
                    c = lowbit_shl(n, ss) - z;
            }
            s = lowbit_overflow(n, acc);
        }
        return s;
    }
    for (k = 0; k < K; k++)
        buf[k] = lowbit_quantize(t[k], tfrac, acc, seed, base | (uint64_t)k);
    int64_t n = K;
    while (n > 1) {
        int64_t m = 0, i;
        for (i = 0; i + 1 < n; i += 2)
            buf[m++] = lowbit_overflow(buf[i] + buf[i + 1], acc);
        if (n & 1)
            buf[m++] = buf[n - 1];
        n = m;
    }
    return K ? buf[0] : 0;
}

static inline uint64_t final_counter(int64_t element)
{
    return ((uint64_t)element << LOWBIT_STEP_BITS) | LOWBIT_FINAL_STEP;
}

int lowbit_fixed_matmul(int64_t *out, const int64_t *a, const int64_t *bt,
                        int64_t M, int64_t K, int64_t N, int32_t pfrac,
                        const lowbit_fixed *acc, int32_t order, int32_t compensated,
                        const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int64_t i;
    int status = LOWBIT_OK;
    if (acc == NULL) {
#pragma omp parallel for schedule(static) if (M * N * K > LOWBIT_PARALLEL_MIN)
        for (i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                const int64_t *ar = a + i * K, *br = bt + j * K;
                int64_t s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += ar[k] * br[k];
                out[i * N + j] = lowbit_quantize(s, pfrac, &f, seed, final_counter(i * N + j));
            }
        }
        return LOWBIT_OK;
    }
    lowbit_fmt fa = lowbit_prepare(acc);
#pragma omp parallel if (M * N * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *prod = malloc(sizeof(int64_t) * (size_t)(2 * K + 1));
        if (prod == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (i = 0; i < M; i++) {
            if (prod == NULL)
                continue;
            for (int64_t j = 0; j < N; j++) {
                const int64_t *ar = a + i * K, *br = bt + j * K;
                for (int64_t k = 0; k < K; k++)
                    prod[k] = ar[k] * br[k];
                int64_t s = accumulate(prod, K, pfrac, &fa, order, compensated, seed,
                                       (uint64_t)(i * N + j), prod + K);
                out[i * N + j] = lowbit_quantize(s, fa.frac, &f, seed, final_counter(i * N + j));
            }
        }
        free(prod);
    }
    return status;
}

int lowbit_fixed_sum(int64_t *out, const int64_t *a, int64_t M, int64_t K, int32_t tfrac,
                     const lowbit_fixed *acc, int32_t order, int32_t compensated,
                     const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int64_t m;
    int status = LOWBIT_OK;
    if (acc == NULL) {
#pragma omp parallel for schedule(static) if (M * K > LOWBIT_PARALLEL_MIN)
        for (m = 0; m < M; m++) {
            int64_t s = 0;
            for (int64_t k = 0; k < K; k++)
                s += a[m * K + k];
            out[m] = lowbit_quantize(s, tfrac, &f, seed, final_counter(m));
        }
        return LOWBIT_OK;
    }
    lowbit_fmt fa = lowbit_prepare(acc);
#pragma omp parallel if (M * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *buf = malloc(sizeof(int64_t) * (size_t)(K + 1));
        if (buf == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (m = 0; m < M; m++) {
            if (buf == NULL)
                continue;
            int64_t s = accumulate(a + m * K, K, tfrac, &fa, order, compensated, seed,
                                   (uint64_t)m, buf);
            out[m] = lowbit_quantize(s, fa.frac, &f, seed, final_counter(m));
        }
        free(buf);
    }
    return status;
}
