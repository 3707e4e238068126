/*
 * fixed.c -- fixed-point kernels: cast, convert, add, mul, matmul, sum.
 * Semantics: numerics/reference/fixed.py (the definition) and docs/formats.md.
 */
#include "lowbit.h"


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
                y = y == y ? y : 0.0;                                                 \
                y = y < lo ? lo : y;                                                  \
                y = y > hi ? hi : y;                                                  \
                out[i] = (int64_t)rint(y);                                            \
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
    LOWBIT_ROUND_LOOP(n, codes[i], src_frac - f.frac, &f, seed,
                      ((uint64_t)i << counter_shift) | counter_low);
    return LOWBIT_OK;
}

int lowbit_fixed_add(int64_t *out, const int64_t *a, int32_t fa, const int64_t *b, int32_t fb,
                     int64_t n, int32_t negate_b, const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    int32_t F = fa > fb ? fa : fb;
    int sa = F - fa, sb = F - fb;
    int64_t sign = negate_b ? -1 : 1;
    LOWBIT_ROUND_LOOP(n, lowbit_shl(a[i], sa) + sign * lowbit_shl(b[i], sb), F - f.frac, &f,
                      seed, (uint64_t)i);
    return LOWBIT_OK;
}

int lowbit_fixed_mul(int64_t *out, const int64_t *a, const int64_t *b, int64_t n,
                     int32_t pfrac, const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt);
    LOWBIT_ROUND_LOOP(n, a[i] * b[i], pfrac - f.frac, &f, seed, (uint64_t)i);
    return LOWBIT_OK;
}

/* ---- accumulation ------------------------------------------------------ */

#define LOWBIT_JBLOCK 256 /* output columns handled together by the pairwise tree */

static inline uint64_t step_counter(int64_t element, int64_t step)
{
    return ((uint64_t)element << LOWBIT_STEP_BITS) | (uint64_t)step;
}

static inline uint64_t final_counter(int64_t element)
{
    return ((uint64_t)element << LOWBIT_STEP_BITS) | LOWBIT_FINAL_STEP;
}

/* The alignment of a sequential narrow accumulation: terms carry tfrac
 * fractional bits, the accumulator acc->frac; both are aligned to F = max. */
typedef struct seq_plan {
    int ss, st, stochastic, compensated;
} seq_plan;

static inline seq_plan plan_sequential(const lowbit_fmt *acc, int32_t tfrac, int compensated)
{
    int32_t F = acc->frac > tfrac ? acc->frac : tfrac;
    seq_plan p = {F - acc->frac, F - tfrac, acc->rounding == LOWBIT_STOCHASTIC, compensated};
    return p;
}

/* One step s = q(s + t) of a sequential accumulation, Kahan-compensated by *c
 * (exact, the bits the rounding dropped) when the plan says so. */
static inline int64_t seq_step(int64_t s, int64_t *c, int64_t t, const seq_plan *p,
                               const lowbit_fmt *acc, uint64_t seed, uint64_t counter)
{
    int64_t z = lowbit_shl(s, p->ss) + lowbit_shl(t, p->st) - *c, n;
    if (p->ss == 0)
        return lowbit_overflow(z, acc);
    n = lowbit_round_shift(z, p->ss, acc->rounding, p->stochastic ? lowbit_u53(seed, counter) : 0);
    if (p->compensated)
        *c = lowbit_shl(n, p->ss) - z;
    return lowbit_overflow(n, acc);
}

/* Pairwise tree over the rows of buf (rows x width, row stride `stride`):
 * level by level, rows (0+1), (2+3), ..., an odd last row carried; the sum ends
 * in row 0. Operands are codes of acc, so each addition only overflows. */
static void tree_reduce(int64_t *buf, int64_t rows, int64_t width, int64_t stride,
                        const lowbit_fmt *acc)
{
    int64_t n = rows;
    while (n > 1) {
        int64_t m = 0, r, j;
        for (r = 0; r + 1 < n; r += 2, m++)
            for (j = 0; j < width; j++)
                buf[m * stride + j] =
                    lowbit_overflow(buf[r * stride + j] + buf[(r + 1) * stride + j], acc);
        if (n & 1) {
            for (j = 0; j < width; j++)
                buf[m * stride + j] = buf[(n - 1) * stride + j];
            m++;
        }
        n = m;
    }
    if (rows == 0)
        for (int64_t j = 0; j < width; j++)
            buf[j] = 0;
}

int lowbit_fixed_matmul(int64_t *out, const int64_t *a, const int64_t *b,
                        int64_t M, int64_t K, int64_t N, int32_t pfrac,
                        const lowbit_fixed *acc, int32_t order, int32_t compensated,
                        const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt), fa = f;
    int status = LOWBIT_OK;
    int pairwise = acc != NULL && order == LOWBIT_PAIRWISE;
    int64_t scratch = pairwise ? (K > 0 ? K : 1) * LOWBIT_JBLOCK : 2 * N;
    if (acc != NULL)
        fa = lowbit_prepare(acc);
    seq_plan plan = plan_sequential(&fa, pfrac, compensated);
#pragma omp parallel if (M * N * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *buf = malloc(sizeof(int64_t) * (size_t)(scratch > 0 ? scratch : 1));
        int64_t i, j, k;
        if (buf == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (i = 0; i < M; i++) {
            const int64_t *ar = a + i * K;
            int64_t *o = out + i * N;
            if (buf == NULL)
                continue;
            if (acc == NULL) { /* exact: int64 row accumulators, i-k-j order */
                for (j = 0; j < N; j++)
                    buf[j] = 0;
                for (k = 0; k < K; k++) {
                    const int64_t *br = b + k * N;
                    int64_t aik = ar[k];
                    for (j = 0; j < N; j++)
                        buf[j] += aik * br[j];
                }
                for (j = 0; j < N; j++)
                    o[j] = lowbit_quantize(buf[j], pfrac, &f, seed, final_counter(i * N + j));
            } else if (!pairwise) { /* sequential: state s, c per output column */
                int64_t *s = buf, *c = buf + N;
                for (j = 0; j < 2 * N; j++)
                    buf[j] = 0;
                for (k = 0; k < K; k++) {
                    const int64_t *br = b + k * N;
                    int64_t aik = ar[k];
                    for (j = 0; j < N; j++)
                        s[j] = seq_step(s[j], &c[j], aik * br[j], &plan, &fa, seed,
                                        step_counter(i * N + j, k));
                }
                for (j = 0; j < N; j++)
                    o[j] = lowbit_quantize(s[j], fa.frac, &f, seed, final_counter(i * N + j));
            } else { /* pairwise: leaves rounded into acc, then the tree, per column block */
                for (int64_t j0 = 0; j0 < N; j0 += LOWBIT_JBLOCK) {
                    int64_t w = N - j0 < LOWBIT_JBLOCK ? N - j0 : LOWBIT_JBLOCK;
                    for (k = 0; k < K; k++) {
                        const int64_t *br = b + k * N + j0;
                        int64_t aik = ar[k];
                        for (j = 0; j < w; j++)
                            buf[k * LOWBIT_JBLOCK + j] = lowbit_quantize(
                                aik * br[j], pfrac, &fa, seed, step_counter(i * N + j0 + j, k));
                    }
                    tree_reduce(buf, K, w, LOWBIT_JBLOCK, &fa);
                    for (j = 0; j < w; j++)
                        o[j0 + j] = lowbit_quantize(buf[j], fa.frac, &f, seed,
                                                    final_counter(i * N + j0 + j));
                }
            }
        }
        free(buf);
    }
    return status;
}

int lowbit_fixed_sum(int64_t *out, const int64_t *a, int64_t M, int64_t K, int32_t tfrac,
                     const lowbit_fixed *acc, int32_t order, int32_t compensated,
                     const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt), fa = f;
    int status = LOWBIT_OK;
    int pairwise = acc != NULL && order == LOWBIT_PAIRWISE;
    if (acc != NULL)
        fa = lowbit_prepare(acc);
    seq_plan plan = plan_sequential(&fa, tfrac, compensated);
#pragma omp parallel if (M * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *buf = pairwise ? malloc(sizeof(int64_t) * (size_t)(K > 0 ? K : 1)) : NULL;
        int64_t m, k;
        if (pairwise && buf == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (m = 0; m < M; m++) {
            const int64_t *row = a + m * K;
            int64_t s = 0, c = 0;
            if (acc == NULL) {
                for (k = 0; k < K; k++)
                    s += row[k];
                out[m] = lowbit_quantize(s, tfrac, &f, seed, final_counter(m));
                continue;
            }
            if (!pairwise) {
                for (k = 0; k < K; k++)
                    s = seq_step(s, &c, row[k], &plan, &fa, seed, step_counter(m, k));
            } else {
                if (buf == NULL)
                    continue;
                for (k = 0; k < K; k++)
                    buf[k] = lowbit_quantize(row[k], tfrac, &fa, seed, step_counter(m, k));
                tree_reduce(buf, K, 1, 1, &fa);
                s = buf[0];
            }
            out[m] = lowbit_quantize(s, fa.frac, &f, seed, final_counter(m));
        }
        free(buf);
    }
    return status;
}
