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

/* How one sequential accumulation step rounds (twin: rounding.accumulation_path). */
static inline int accumulation_path(int ss, const lowbit_fmt *acc)
{
    if (ss == 0)
        return LOWBIT_PATH_EXACT;
    if (acc->rounding == LOWBIT_STOCHASTIC)
        return ss <= 53 ? LOWBIT_PATH_SR : LOWBIT_PATH_GENERIC;
    return ss <= 62 ? LOWBIT_PATH_RIGHT : LOWBIT_PATH_GENERIC;
}

/* One step s = q(s + t) of a sequential accumulation in acc: terms are aligned
 * by st, the accumulator by ss; *c is the exact Kahan compensation (the bits the
 * rounding dropped) when compensated. */
static inline int64_t accumulate_step(int path, int64_t s, int64_t *c, int64_t t, int ss, int st,
                                      const lowbit_fmt *acc, int compensated, uint64_t seed,
                                      uint64_t counter)
{
    int64_t z = lowbit_shl(s, ss) + lowbit_shl(t, st) - *c, n;
    if (path == LOWBIT_PATH_EXACT)
        return lowbit_overflow(z, acc);
    if (path == LOWBIT_PATH_RIGHT)
        n = lowbit_right_round(z, ss, acc->rounding);
    else if (path == LOWBIT_PATH_SR)
        n = lowbit_sr_round(z, ss, seed, counter);
    else
        n = lowbit_round_shift(z, ss, acc->rounding,
                               acc->rounding == LOWBIT_STOCHASTIC ? lowbit_u53(seed, counter) : 0);
    if (compensated)
        *c = lowbit_shl(n, ss) - z;
    return lowbit_overflow(n, acc);
}

/* One step k of sequential accumulation for a row of outputs (twin:
 * rounding.accumulate_row): s[j] = q(s[j] + aik * br[j]). The path and flags are
 * tested once per row so the common bodies are branch-free loops. */
static void accumulate_row(int path, int64_t *s, int64_t *c, int64_t N, int64_t aik,
                           const int64_t *br, int ss, int st, const lowbit_fmt *acc,
                           int compensated, uint64_t seed, int64_t e0, int64_t k)
{
    int64_t j, lo = acc->lo, hi = acc->hi;
    int r = acc->rounding;
    if (!acc->wrap && path == LOWBIT_PATH_EXACT) {
        for (j = 0; j < N; j++)
            s[j] = lowbit_clamp(lowbit_shl(s[j], ss) + lowbit_shl(aik * br[j], st) - c[j], lo, hi);
    } else if (!acc->wrap && path == LOWBIT_PATH_RIGHT && !compensated) {
        for (j = 0; j < N; j++)
            s[j] = lowbit_clamp(
                lowbit_right_round(lowbit_shl(s[j], ss) + lowbit_shl(aik * br[j], st), ss, r), lo, hi);
    } else if (!acc->wrap && path == LOWBIT_PATH_SR && !compensated) {
        for (j = 0; j < N; j++)
            s[j] = lowbit_clamp(lowbit_sr_round(lowbit_shl(s[j], ss) + lowbit_shl(aik * br[j], st),
                                                ss, seed, step_counter(e0 + j, k)), lo, hi);
    } else if (!acc->wrap && path == LOWBIT_PATH_RIGHT) {
        for (j = 0; j < N; j++) {
            int64_t z = lowbit_shl(s[j], ss) + lowbit_shl(aik * br[j], st) - c[j];
            int64_t n = lowbit_right_round(z, ss, r);
            c[j] = lowbit_shl(n, ss) - z;
            s[j] = lowbit_clamp(n, lo, hi);
        }
    } else if (!acc->wrap && path == LOWBIT_PATH_SR) {
        for (j = 0; j < N; j++) {
            int64_t z = lowbit_shl(s[j], ss) + lowbit_shl(aik * br[j], st) - c[j];
            int64_t n = lowbit_sr_round(z, ss, seed, step_counter(e0 + j, k));
            c[j] = lowbit_shl(n, ss) - z;
            s[j] = lowbit_clamp(n, lo, hi);
        }
    } else {
        for (j = 0; j < N; j++)
            s[j] = accumulate_step(path, s[j], &c[j], aik * br[j], ss, st, acc, compensated, seed,
                                   step_counter(e0 + j, k));
    }
}

/* dst[j] = aik * br[j] rounded into f (shift sh), counter step_counter(e0 + j, k);
 * one branch-free loop per path (twin: rounding.round_products_row). */
static void round_products_row(int path, int64_t *dst, int64_t N, int64_t aik, const int64_t *br,
                               int64_t sh, const lowbit_fmt *f, uint64_t seed, int64_t e0, int64_t k)
{
    int64_t j;
    switch (path) {
    case LOWBIT_PATH_RIGHT:
        for (j = 0; j < N; j++)
            dst[j] = lowbit_right_sat(aik * br[j], (int)sh, f->rounding, f->lo, f->hi);
        break;
    case LOWBIT_PATH_SR:
        for (j = 0; j < N; j++)
            dst[j] = lowbit_sr_sat(aik * br[j], (int)sh, f->lo, f->hi, seed, step_counter(e0 + j, k));
        break;
    case LOWBIT_PATH_LEFT:
        for (j = 0; j < N; j++)
            dst[j] = lowbit_left_sat(aik * br[j], (int)-sh, f->lo, f->hi);
        break;
    default:
        for (j = 0; j < N; j++)
            dst[j] = lowbit_quantize(aik * br[j], sh + f->frac, f, seed, step_counter(e0 + j, k));
    }
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

#define LOWBIT_ROWS 4 /* rows of a per block of the exact matmul */

/* Exact matmul for codes of type T: blocks of LOWBIT_ROWS rows in i-k-j order,
 * so each row of b is loaded once per block; int64 accumulators. */
#define LOWBIT_DEFINE_MATMUL_EXACT(NAME, T)                                                    \
    int NAME(int64_t *out, const T *a, const T *b, int64_t M, int64_t K, int64_t N,            \
             int32_t pfrac, const lowbit_fixed *fmt, uint64_t seed)                            \
    {                                                                                          \
        lowbit_fmt f = lowbit_prepare(fmt);                                                    \
        int64_t s = pfrac - f.frac, blk, nblk = (M + LOWBIT_ROWS - 1) / LOWBIT_ROWS;           \
        int path = lowbit_rounding_path(s, &f), status = LOWBIT_OK;                            \
        _Pragma("omp parallel if(M * N * K > LOWBIT_PARALLEL_MIN)")                            \
        {                                                                                      \
            int64_t *acc = malloc(sizeof(int64_t) * (size_t)(LOWBIT_ROWS * N + 1));            \
            if (acc == NULL) {                                                                 \
                _Pragma("omp atomic write")                                                    \
                status = LOWBIT_ERR_NOMEM;                                                     \
            }                                                                                  \
            _Pragma("omp for schedule(static)")                                                \
            for (blk = 0; blk < nblk; blk++) {                                                 \
                int64_t i0 = blk * LOWBIT_ROWS, rows = M - i0 < LOWBIT_ROWS ? M - i0 : LOWBIT_ROWS; \
                int64_t *restrict r0 = acc, *restrict r1 = acc + N;                            \
                int64_t *restrict r2 = acc + 2 * N, *restrict r3 = acc + 3 * N;                \
                if (acc == NULL)                                                               \
                    continue;                                                                  \
                for (int64_t j = 0; j < LOWBIT_ROWS * N; j++)                                  \
                    acc[j] = 0;                                                                \
                if (rows == LOWBIT_ROWS) {                                                     \
                    for (int64_t k = 0; k < K; k++) {                                          \
                        const T *br = b + k * N;                                               \
                        int64_t a0 = a[i0 * K + k], a1 = a[(i0 + 1) * K + k];                  \
                        int64_t a2 = a[(i0 + 2) * K + k], a3 = a[(i0 + 3) * K + k];            \
                        for (int64_t j = 0; j < N; j++) {                                      \
                            int64_t bk = br[j];                                                \
                            r0[j] += a0 * bk;                                                  \
                            r1[j] += a1 * bk;                                                  \
                            r2[j] += a2 * bk;                                                  \
                            r3[j] += a3 * bk;                                                  \
                        }                                                                      \
                    }                                                                          \
                } else {                                                                       \
                    for (int64_t r = 0; r < rows; r++)                                         \
                        for (int64_t k = 0; k < K; k++) {                                      \
                            int64_t ak = a[(i0 + r) * K + k];                                  \
                            for (int64_t j = 0; j < N; j++)                                    \
                                acc[r * N + j] += ak * (int64_t)b[k * N + j];                  \
                        }                                                                      \
                }                                                                              \
                for (int64_t r = 0; r < rows; r++)                                             \
                    for (int64_t j = 0; j < N; j++)                                            \
                        out[(i0 + r) * N + j] = lowbit_round_on_path(                          \
                            path, acc[r * N + j], s, &f, seed, final_counter((i0 + r) * N + j)); \
            }                                                                                  \
            free(acc);                                                                         \
        }                                                                                      \
        return status;                                                                         \
    }

LOWBIT_DEFINE_MATMUL_EXACT(lowbit_fixed_matmul_exact_i64, int64_t)
LOWBIT_DEFINE_MATMUL_EXACT(lowbit_fixed_matmul_exact_i32, int32_t)

int lowbit_fixed_matmul_acc(int64_t *out, const int64_t *a, const int64_t *b,
                            int64_t M, int64_t K, int64_t N, int32_t pfrac,
                            const lowbit_fixed *acc, int32_t order, int32_t compensated,
                            const lowbit_fixed *fmt, uint64_t seed)
{
    lowbit_fmt f = lowbit_prepare(fmt), fa = lowbit_prepare(acc);
    int status = LOWBIT_OK;
    int pairwise = order == LOWBIT_PAIRWISE;
    int32_t F = fa.frac > pfrac ? fa.frac : pfrac;
    int ss = F - fa.frac, st = F - pfrac;
    int step_path = accumulation_path(ss, &fa);
    int64_t leaf_s = pfrac - fa.frac, out_s = fa.frac - f.frac;
    int leaf_path = lowbit_rounding_path(leaf_s, &fa), out_path = lowbit_rounding_path(out_s, &f);
    int64_t scratch = pairwise ? (K > 0 ? K : 1) * LOWBIT_JBLOCK : 2 * N + 1;
#pragma omp parallel if (M * N * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *buf = malloc(sizeof(int64_t) * (size_t)scratch);
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
            if (!pairwise) { /* sequential: state s, c per output column */
                int64_t *s = buf, *c = buf + N;
                for (j = 0; j < 2 * N; j++)
                    buf[j] = 0;
                for (k = 0; k < K; k++)
                    accumulate_row(step_path, s, c, N, ar[k], b + k * N, ss, st, &fa,
                                   compensated, seed, i * N, k);
                for (j = 0; j < N; j++)
                    o[j] = lowbit_round_on_path(out_path, s[j], out_s, &f, seed,
                                                final_counter(i * N + j));
            } else { /* pairwise: leaves rounded into acc, then the tree, per column block */
                for (int64_t j0 = 0; j0 < N; j0 += LOWBIT_JBLOCK) {
                    int64_t w = N - j0 < LOWBIT_JBLOCK ? N - j0 : LOWBIT_JBLOCK;
                    for (k = 0; k < K; k++)
                        round_products_row(leaf_path, buf + k * LOWBIT_JBLOCK, w, ar[k],
                                           b + k * N + j0, leaf_s, &fa, seed, i * N + j0, k);
                    tree_reduce(buf, K, w, LOWBIT_JBLOCK, &fa);
                    for (j = 0; j < w; j++)
                        o[j0 + j] = lowbit_round_on_path(out_path, buf[j], out_s, &f, seed,
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
    int32_t F = fa.frac > tfrac ? fa.frac : tfrac;
    int ss = F - fa.frac, st = F - tfrac;
    int step_path = accumulation_path(ss, &fa);
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
                    s = accumulate_step(step_path, s, &c, row[k], ss, st, &fa, compensated, seed,
                                        step_counter(m, k));
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
