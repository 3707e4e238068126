/*
 * lns.c -- logarithmic number system kernels: cast, convert, mul/div, add/sub
 * with table-driven Gaussian-log adders, matmul and sum with sequential,
 * pairwise or Kahan accumulation. Twins: emulators/_numba/lns.py.
 * Semantics: numerics/reference/lns.py and docs/lns.md.
 */
#include "lowbit.h"

#define LNS_JBLOCK 256

static inline int64_t lns_encode(int sign, int64_t e, const lowbit_lns *f)
{
    int64_t mag;
    if (e > f->e_max) {
        e = f->e_max;
    } else if (e < f->e_min) {
        if (!f->underflow_min)
            return 0;
        e = f->e_min;
    }
    mag = e - f->e_min + 1;
    return sign ? -mag : mag;
}

static inline int64_t lns_exponent(int64_t code, int64_t emin)
{
    return (code < 0 ? -code : code) - 1 + emin;
}

/* The adder spec's value of sb (which = 0) or db (1) at -zabs, in units of 2^-(F+P). */
static inline int64_t lns_gauss(int which, int64_t zabs, const lowbit_adder *ad)
{
    int64_t q, lo, r;
    if (zabs < (INT64_C(1) << ad->k))
        return ad->sub[which * ad->sub_len + zabs];
    q = zabs >> ad->k;
    if (q > ad->last)
        return lowbit_shl(ad->beyond[which], ad->guard);
    lo = ad->tab[which * ad->tab_len + q];
    if (!ad->interp)
        return lo;
    r = zabs & ((INT64_C(1) << ad->k) - 1);
    return lo + lowbit_floor_shift((ad->tab[which * ad->tab_len + q + 1] - lo) * r, ad->k);
}

/* v * 2^-guard rounded to an integer in the given mode. */
static inline int64_t lns_round_guard(int64_t v, int guard, int rounding, uint64_t seed,
                                      uint64_t counter)
{
    int64_t q, r, half;
    if (guard == 0)
        return v;
    q = lowbit_floor_shift(v, guard);
    r = (int64_t)((uint64_t)v & ((UINT64_C(1) << guard) - 1));
    switch (rounding) {
    case LOWBIT_FLOOR:
        return q;
    case LOWBIT_CEIL:
        return q + (r != 0);
    case LOWBIT_STOCHASTIC:
        return q + (lowbit_u53(seed, counter) < ((uint64_t)r << (53 - guard)));
    default:
        half = INT64_C(1) << (guard - 1);
        return q + ((r > half) | ((r == half) & (int)(q & 1)));
    }
}

/* x + y (codes with their formats' e_min, shared frac_bits) rounded into out. */
static inline int64_t lns_add_codes(int64_t x, int64_t emin_x, int64_t y, int64_t emin_y,
                                    const lowbit_lns *out, const lowbit_adder *ad,
                                    uint64_t seed, uint64_t counter)
{
    int64_t ex, ey, zabs, t;
    int sx, which;
    if (x == 0)
        return y == 0 ? 0 : lns_encode(y < 0, lns_exponent(y, emin_y), out);
    if (y == 0)
        return lns_encode(x < 0, lns_exponent(x, emin_x), out);
    ex = lns_exponent(x, emin_x);
    ey = lns_exponent(y, emin_y);
    sx = x < 0;
    if (ex < ey) {
        t = ex;
        ex = ey;
        ey = t;
        sx = y < 0;
    }
    zabs = ex - ey;
    which = (x < 0) != (y < 0);
    if (which && zabs == 0)
        return 0; /* exact cancellation */
    return lns_encode(sx, ex + lns_round_guard(lns_gauss(which, zabs, ad), ad->guard,
                                               out->rounding, seed, counter), out);
}

static inline int64_t lns_mul_codes(int64_t x, int64_t emin_x, int64_t y, int64_t emin_y,
                                    int shift, int divide, const lowbit_lns *out)
{
    int64_t ex, ey;
    if (x == 0 || y == 0)
        return 0;
    ex = lowbit_shl(lns_exponent(x, emin_x), shift);
    ey = lowbit_shl(lns_exponent(y, emin_y), shift);
    return lns_encode((x < 0) != (y < 0), divide ? ex - ey : ex + ey, out);
}

static inline int64_t lns_convert_code(int64_t c, int64_t emin_src, int shift,
                                       const lowbit_lns *dst, uint64_t seed, uint64_t counter)
{
    int64_t e;
    if (c == 0)
        return 0;
    e = lns_exponent(c, emin_src);
    if (shift > 0)
        e = lowbit_round_shift(e, shift, dst->rounding,
                               dst->rounding == LOWBIT_STOCHASTIC ? lowbit_u53(seed, counter) : 0);
    else if (shift < 0)
        e = lowbit_shl(e, -shift);
    return lns_encode(c < 0, e, dst);
}

/* ---- cast ----------------------------------------------------------------- */

static inline int64_t lns_cast_one(double v, const double *th, int64_t nth, const lowbit_lns *f,
                                   int64_t *nans)
{
    int E;
    double m;
    int64_t lo = 0, hi = nth;
    if (v != v) {
        (*nans)++;
        return 0;
    }
    if (v == 0.0)
        return 0;
    if (isinf(v))
        return lns_encode(v < 0, f->e_max, f);
    m = 2.0 * frexp(fabs(v), &E);
    while (lo < hi) { /* the number of thresholds below m */
        int64_t mid = (lo + hi) / 2;
        if (th[mid] < m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lns_encode(v < 0, lowbit_shl((int64_t)E - 1, f->frac_bits) + lo, f);
}

#define LOWBIT_DEFINE_LNS_CAST(NAME, T)                                                       \
    int NAME(int64_t *out, const T *x, int64_t n, const double *thresholds,                   \
             int64_t n_thresholds, const lowbit_lns *fmt)                                     \
    {                                                                                         \
        int64_t i, nans = 0;                                                                  \
        _Pragma("omp parallel for schedule(static) reduction(+:nans) if(n > LOWBIT_PARALLEL_MIN)") \
        for (i = 0; i < n; i++)                                                               \
            out[i] = lns_cast_one((double)x[i], thresholds, n_thresholds, fmt, &nans);        \
        return nans ? LOWBIT_ERR_NAN : LOWBIT_OK;                                             \
    }

LOWBIT_DEFINE_LNS_CAST(lowbit_lns_cast_f64, double)
LOWBIT_DEFINE_LNS_CAST(lowbit_lns_cast_f32, float)

static inline uint64_t lns_final(int64_t element)
{
    return ((uint64_t)element << LOWBIT_STEP_BITS) | LOWBIT_FINAL_STEP;
}

/* ---- the decoded fast path ------------------------------------------------------
 * Inside the accumulation kernels of the Exact adder with nearest/floor/ceil
 * rounding (guard 0, k = 0), values are decoded once into D = (e << 1) | sign, or
 * LNS_ZD for zero, and added without a branch on the data (random signs and
 * exponents made branches mispredict): the row loops vectorize with gathers.
 * Twin: emulators/_numba/lns.py (add_d, mul_d). */

#define LNS_ZD (-(INT64_C(1) << 62))

static inline int64_t lns_decode(int64_t c, int64_t emin)
{
    return c == 0 ? LNS_ZD : lowbit_shl(lns_exponent(c, emin), 1) | (c < 0);
}

static inline int64_t lns_encode_d(int64_t d, int64_t emin)
{
    int64_t mag;
    if (d == LNS_ZD)
        return 0;
    mag = (d >> 1) - emin + 1;
    return (d & 1) ? -mag : mag;
}

/* mask ? a : b for mask 0 or -1, with bit operations (no control flow for the
 * vectorizer to give up on). */
static inline int64_t lns_sel(int64_t mask, int64_t a, int64_t b)
{
    return (a & mask) | (b & ~mask);
}

static inline int64_t lns_mask(int cond)
{
    return -(int64_t)cond;
}

/* D after the range policy; zero is 0 or -1. ``zero_below`` is e_min when
 * underflow gives zero, INT64_MIN when it gives e_min (underflow="min"). */
static inline int64_t lns_ranged(int64_t e, int64_t sign, int64_t zero, int64_t emin,
                                 int64_t emax, int64_t zero_below)
{
    zero |= lns_mask(e < zero_below);
    e = lns_sel(lns_mask(e < emin), emin, e);
    e = lns_sel(lns_mask(e > emax), emax, e);
    return lns_sel(zero, LNS_ZD, (int64_t)(((uint64_t)e << 1) | (uint64_t)sign));
}

/* x + y for decoded values with the Exact adder's table (guard 0): f is
 * tab[which * L + min(|z|, last + 1)]; TAB_T is int64_t or int32_t. */
#define LNS_DEFINE_ADD_FAST(NAME, TAB_T)                                                     \
static inline int64_t NAME(int64_t x, int64_t y, const TAB_T *tab, int64_t L, int64_t last,  \
                           int64_t emin, int64_t emax, int64_t zero_below)                   \
{                                                                                            \
    int64_t ex = x >> 1, ey = y >> 1, sx = x & 1, sy = y & 1;                                \
    int64_t xbig = lns_mask(ex >= ey);                                                       \
    int64_t big = lns_sel(xbig, ex, ey), small = lns_sel(xbig, ey, ex);                      \
    int64_t zabs = big - small, which = sx ^ sy;                                             \
    int64_t idx = lns_sel(lns_mask(zabs < last + 1), zabs, last + 1);                        \
    int64_t e = big + (int64_t)tab[which * L + idx];                                         \
    int64_t sign = lns_sel(xbig, sx, sy);                                                    \
    int64_t zero = lns_mask(zabs == 0) & -which;                                             \
    int64_t xz = lns_mask(x == LNS_ZD), yz = lns_mask(y == LNS_ZD);                          \
    e = lns_sel(xz, ey, lns_sel(yz, ex, e));                                                 \
    sign = lns_sel(xz, sy, lns_sel(yz, sx, sign));                                           \
    zero = lns_sel(xz | yz, xz & yz, zero);                                                  \
    return lns_ranged(e, sign, zero, emin, emax, zero_below);                                \
}

LNS_DEFINE_ADD_FAST(lns_add_fast32, int32_t)

static inline int64_t lns_add_fast(int64_t x, int64_t y, const int64_t *tab, int64_t L,
                                   int64_t last, int64_t emin, int64_t emax, int64_t zero_below)
{
    int64_t ex = x >> 1, ey = y >> 1, sx = x & 1, sy = y & 1;
    int64_t xbig = lns_mask(ex >= ey);
    int64_t big = lns_sel(xbig, ex, ey), small = lns_sel(xbig, ey, ex);
    int64_t zabs = big - small, which = sx ^ sy;
    int64_t idx = lns_sel(lns_mask(zabs < last + 1), zabs, last + 1);
    int64_t e = big + tab[which * L + idx];
    int64_t sign = lns_sel(xbig, sx, sy);
    int64_t zero = lns_mask(zabs == 0) & -which;
    int64_t xz = lns_mask(x == LNS_ZD), yz = lns_mask(y == LNS_ZD);
    e = lns_sel(xz, ey, lns_sel(yz, ex, e));
    sign = lns_sel(xz, sy, lns_sel(yz, sx, sign));
    zero = lns_sel(xz | yz, xz & yz, zero);
    return lns_ranged(e, sign, zero, emin, emax, zero_below);
}

static inline int64_t lns_mul_fast(int64_t x, int64_t y, int widen, int64_t emin, int64_t emax,
                                   int64_t zero_below)
{
    int64_t z = lns_mask(x == LNS_ZD) | lns_mask(y == LNS_ZD);
    int64_t e = (x >> 1) + (y >> 1);
    e = lns_sel(lns_mask(e < -(INT64_C(1) << 40)), -(INT64_C(1) << 40), e); /* zeros */
    return lns_ranged(lowbit_shl(e, widen), (x ^ y) & 1, z, emin, emax, zero_below);
}

static inline int64_t lns_neg(int64_t d)
{
    return d ^ (~lns_mask(d == LNS_ZD) & 1);
}

/* One k-step of a row of sequential accumulators: s[j] += da * b[j] (Kahan when c). */
static void lns_row_step_fast(int64_t *restrict s, int64_t *restrict c, const int64_t *restrict b,
                              int64_t n, int64_t da, int widen, const lowbit_lns *acc,
                              const lowbit_adder *ad)
{
    const int64_t *tab = ad->tab;
    int64_t L = ad->tab_len, last = ad->last;
    int64_t emin = acc->e_min, emax = acc->e_max;
    int64_t umin = acc->underflow_min ? INT64_MIN : emin; /* the zero_below of lns_ranged */
    int64_t j;
    if (c == NULL && ad->tab32 != NULL) {
        const int32_t *restrict t32 = ad->tab32;
        for (j = 0; j < n; j++)
            s[j] = lns_add_fast32(s[j], lns_mul_fast(da, b[j], widen, emin, emax, umin), t32, L,
                                  last, emin, emax, umin);
        return;
    }
    if (c == NULL) {
        for (j = 0; j < n; j++)
            s[j] = lns_add_fast(s[j], lns_mul_fast(da, b[j], widen, emin, emax, umin), tab, L,
                                last, emin, emax, umin);
        return;
    }
    for (j = 0; j < n; j++) {
        int64_t p = lns_mul_fast(da, b[j], widen, emin, emax, umin);
        int64_t y = lns_add_fast(p, lns_neg(c[j]), tab, L, last, emin, emax, umin);
        int64_t t = lns_add_fast(s[j], y, tab, L, last, emin, emax, umin);
        int64_t d = lns_add_fast(t, lns_neg(s[j]), tab, L, last, emin, emax, umin);
        c[j] = lns_add_fast(d, lns_neg(y), tab, L, last, emin, emax, umin);
        s[j] = t;
    }
}

/* The fast path applies: Exact adder (k = 0) and no guard bits (not stochastic). */
static inline int lns_fast(const lowbit_adder *ad)
{
    return ad->k == 0 && ad->guard == 0 && !ad->interp;
}

#define LNS_CHUNK 2048

/* out[i] = a[i] + sign * b[i] on the fast path, n <= LNS_CHUNK: decode into
 * buffers, add in a loop GCC vectorizes (the one the row steps use), encode. */
static void lns_add_fast_loop(int64_t *restrict out, const int64_t *restrict a,
                              const int64_t *restrict b, int64_t n, int64_t sign,
                              const lowbit_lns *fmt, const lowbit_adder *ad)
{
    int64_t x[LNS_CHUNK], y[LNS_CHUNK], i;
    const int64_t *restrict tab = ad->tab;
    int64_t L = ad->tab_len, last = ad->last, emin = fmt->e_min, emax = fmt->e_max;
    int64_t zero_below = fmt->underflow_min ? INT64_MIN : emin;
    for (i = 0; i < n; i++) {
        x[i] = lns_decode(a[i], emin);
        y[i] = lns_decode(sign * b[i], emin);
    }
    for (i = 0; i < n; i++)
        x[i] = lns_add_fast(x[i], y[i], tab, L, last, emin, emax, zero_below);
    for (i = 0; i < n; i++)
        out[i] = lns_encode_d(x[i], emin);
}

/* ---- element-wise ------------------------------------------------------------ */

int lowbit_lns_convert(int64_t *out, const int64_t *codes, int64_t n, int64_t emin_src,
                       int32_t shift, const lowbit_lns *dst, uint64_t seed)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++)
        out[i] = lns_convert_code(codes[i], emin_src, shift, dst, seed, (uint64_t)i);
    return LOWBIT_OK;
}

int lowbit_lns_mul(int64_t *out, const int64_t *a, int64_t emin_a, const int64_t *b,
                   int64_t emin_b, int64_t n, int32_t divide, const lowbit_lns *fmt)
{
    int64_t i, zeros = 0;
#pragma omp parallel for schedule(static) reduction(+:zeros) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++) {
        zeros += divide && b[i] == 0;
        out[i] = lns_mul_codes(a[i], emin_a, b[i], emin_b, 0, divide, fmt);
    }
    return zeros ? LOWBIT_ERR_ZERO_DIVISION : LOWBIT_OK;
}

int lowbit_lns_add(int64_t *out, const int64_t *a, int64_t emin_a, const int64_t *b,
                   int64_t emin_b, int64_t n, int32_t negate_b, const lowbit_lns *fmt,
                   const lowbit_adder *adder, uint64_t seed)
{
    int64_t i, sign = negate_b ? -1 : 1;
    if (lns_fast(adder) && emin_a == fmt->e_min && emin_b == fmt->e_min) {
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
        for (i = 0; i < n; i += LNS_CHUNK)
            lns_add_fast_loop(out + i, a + i, b + i, n - i < LNS_CHUNK ? n - i : LNS_CHUNK, sign,
                              fmt, adder);
        return LOWBIT_OK;
    }
#pragma omp parallel for schedule(static) if (n > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < n; i++)
        out[i] = lns_add_codes(a[i], emin_a, sign * b[i], emin_b, fmt, adder, seed, (uint64_t)i);
    return LOWBIT_OK;
}

/* ---- accumulation ------------------------------------------------------------- */

static inline uint64_t lns_step(int64_t element, int64_t step)
{
    return ((uint64_t)element << LOWBIT_STEP_BITS) | (uint64_t)step;
}

/* One sequential step in acc: s + t, or a Kahan step of four LNS operations. */
static inline int64_t lns_accumulate_step(int64_t s, int64_t *c, int64_t t, const lowbit_lns *acc,
                                          const lowbit_adder *ad, int compensated, uint64_t seed,
                                          int64_t element, int64_t k)
{
    int64_t emin = acc->e_min, y, t2, d;
    if (!compensated)
        return lns_add_codes(s, emin, t, emin, acc, ad, seed, lns_step(element, k));
    y = lns_add_codes(t, emin, -*c, emin, acc, ad, seed, lns_step(element, 4 * k));
    t2 = lns_add_codes(s, emin, y, emin, acc, ad, seed, lns_step(element, 4 * k + 1));
    d = lns_add_codes(t2, emin, -s, emin, acc, ad, seed, lns_step(element, 4 * k + 2));
    *c = lns_add_codes(d, emin, -y, emin, acc, ad, seed, lns_step(element, 4 * k + 3));
    return t2;
}

/* Pairwise tree over buf (rows x width, row stride `stride`); column j is output
 * element e0 + j; additions are numbered rows, rows + 1, ... level by level. */
static void lns_tree_reduce(int64_t *buf, int64_t rows, int64_t width, int64_t stride,
                            const lowbit_lns *acc, const lowbit_adder *ad, uint64_t seed,
                            int64_t e0)
{
    int64_t n = rows, step = rows, emin = acc->e_min;
    while (n > 1) {
        int64_t m = 0, r, j;
        for (r = 0; r + 1 < n; r += 2, m++, step++)
            for (j = 0; j < width; j++)
                buf[m * stride + j] = lns_add_codes(buf[r * stride + j], emin,
                                                    buf[(r + 1) * stride + j], emin, acc, ad,
                                                    seed, lns_step(e0 + j, step));
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

static int lns_matmul_fast(int64_t *out, const int64_t *a, const int64_t *b, int64_t M,
                           int64_t K, int64_t N, int64_t emin_a, int64_t emin_b, int32_t widen,
                           const lowbit_lns *acc, const lowbit_adder *adder, int32_t compensated,
                           const lowbit_lns *fmt, uint64_t seed)
{
    int status = LOWBIT_OK;
    int shift = acc->frac_bits - fmt->frac_bits;
    int64_t *db = malloc(sizeof(int64_t) * (size_t)(K * N > 0 ? K * N : 1)), i;
    if (db == NULL)
        return LOWBIT_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (K * N > LOWBIT_PARALLEL_MIN)
    for (i = 0; i < K * N; i++)
        db[i] = lns_decode(b[i], emin_b);
#pragma omp parallel if (M * N * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *s = malloc(sizeof(int64_t) * (size_t)(2 * N + 1)), *c = s + N, r, j, k;
        if (s == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (r = 0; r < M; r++) {
            if (s == NULL)
                continue;
            for (j = 0; j < 2 * N; j++)
                s[j] = LNS_ZD;
            for (k = 0; k < K; k++)
                lns_row_step_fast(s, compensated ? c : NULL, db + k * N, N,
                                  lns_decode(a[r * K + k], emin_a), widen, acc, adder);
            for (j = 0; j < N; j++)
                out[r * N + j] = lns_convert_code(lns_encode_d(s[j], acc->e_min), acc->e_min, shift,
                                                  fmt, seed, lns_final(r * N + j));
        }
        free(s);
    }
    free(db);
    return status;
}

int lowbit_lns_matmul(int64_t *out, const int64_t *a, const int64_t *b, int64_t M, int64_t K,
                      int64_t N, int64_t emin_a, int64_t emin_b, int32_t widen,
                      const lowbit_lns *acc, const lowbit_adder *adder, int32_t order,
                      int32_t compensated, const lowbit_lns *fmt, uint64_t seed)
{
    int status = LOWBIT_OK;
    if (order == LOWBIT_SEQUENTIAL && lns_fast(adder))
        return lns_matmul_fast(out, a, b, M, K, N, emin_a, emin_b, widen, acc, adder, compensated,
                               fmt, seed);
    int pairwise = order == LOWBIT_PAIRWISE;
    int shift = acc->frac_bits - fmt->frac_bits;
    int64_t scratch = pairwise ? (K > 0 ? K : 1) * LNS_JBLOCK : 2 * N + 1;
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
            if (!pairwise) {
                int64_t *s = buf, *c = buf + N;
                for (j = 0; j < 2 * N; j++)
                    buf[j] = 0;
                for (k = 0; k < K; k++) {
                    const int64_t *br = b + k * N;
                    for (j = 0; j < N; j++) {
                        int64_t p = lns_mul_codes(ar[k], emin_a, br[j], emin_b, widen, 0, acc);
                        s[j] = lns_accumulate_step(s[j], &c[j], p, acc, adder, compensated, seed,
                                                   i * N + j, k);
                    }
                }
                for (j = 0; j < N; j++)
                    o[j] = lns_convert_code(s[j], acc->e_min, shift, fmt, seed, lns_final(i * N + j));
            } else {
                for (int64_t j0 = 0; j0 < N; j0 += LNS_JBLOCK) {
                    int64_t w = N - j0 < LNS_JBLOCK ? N - j0 : LNS_JBLOCK;
                    for (k = 0; k < K; k++)
                        for (j = 0; j < w; j++)
                            buf[k * LNS_JBLOCK + j] = lns_mul_codes(ar[k], emin_a, b[k * N + j0 + j],
                                                                    emin_b, widen, 0, acc);
                    lns_tree_reduce(buf, K, w, LNS_JBLOCK, acc, adder, seed, i * N + j0);
                    for (j = 0; j < w; j++)
                        o[j0 + j] = lns_convert_code(buf[j], acc->e_min, shift, fmt, seed,
                                                     lns_final(i * N + j0 + j));
                }
            }
        }
        free(buf);
    }
    return status;
}

int lowbit_lns_sum(int64_t *out, const int64_t *a, int64_t M, int64_t K, int64_t emin_a,
                   int32_t widen, const lowbit_lns *acc, const lowbit_adder *adder,
                   int32_t order, int32_t compensated, const lowbit_lns *fmt, uint64_t seed)
{
    int status = LOWBIT_OK;
    int shift = acc->frac_bits - fmt->frac_bits;
#pragma omp parallel if (M * K > LOWBIT_PARALLEL_MIN)
    {
        int64_t *buf = malloc(sizeof(int64_t) * (size_t)(K > 0 ? K : 1));
        int64_t m, k;
        if (buf == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
#pragma omp for schedule(static)
        for (m = 0; m < M; m++) {
            int64_t s = 0, c = 0;
            if (buf == NULL)
                continue;
            for (k = 0; k < K; k++) {
                int64_t c0 = a[m * K + k];
                buf[k] = c0 == 0 ? 0 : lns_encode(c0 < 0, lowbit_shl(lns_exponent(c0, emin_a), widen), acc);
            }
            if (order == LOWBIT_PAIRWISE) {
                lns_tree_reduce(buf, K, 1, 1, acc, adder, seed, m);
                s = buf[0];
            } else {
                for (k = 0; k < K; k++)
                    s = lns_accumulate_step(s, &c, buf[k], acc, adder, compensated, seed, m, k);
            }
            out[m] = lns_convert_code(s, acc->e_min, shift, fmt, seed, lns_final(m));
        }
        free(buf);
    }
    return status;
}
