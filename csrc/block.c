/*
 * block.c -- block-scaled formats (MX, NVFP4): the block cast.
 * Semantics: numerics/reference/block.py (the definition) and numerics/blocks.py;
 * the Numba twins are emulators/_numba/block.py (same helper names).
 */
#include "float_core.h"

#include <math.h>
#include <string.h>

enum { RULE_FLOOR = 0, RULE_CEIL = 1, RULE_EVEN = 2, RULE_RCEIL = 3, RULE_NEAREST = 4 };
#define FP32_SMALLEST_NORMAL 0x1p-126

/* (X, ex) with v = X * 2^ex, X an integer below 2^53 (v > 0 finite). */
static inline uint64_t parts(double v, int64_t *ex)
{
    int e;
    const double m = frexp(v, &e);
    *ex = (int64_t)e - 53;
    return (uint64_t)ldexp(m, 53);
}

/* The largest k with t * 2^k <= amax, where am = amax * 2^-sh is in [1, 2). */
static inline int64_t floor_log2_over(double am, int64_t sh, double t)
{
    int et;
    frexp(t, &et);
    int64_t k = sh - (et - 1);
    if (ldexp(t, (int)(k - sh)) > am)
        k -= 1;
    return k;
}

/* The scale exponent of a block (before clamping) by a power-of-two rule. */
static int64_t pow2_scale_exp(double am, int64_t sh, double T, int rule, int64_t emax,
                              int64_t precision, double mpos)
{
    if (rule == RULE_RCEIL || rule == RULE_NEAREST) {
        const double t = mpos * T;
        const int64_t k = floor_log2_over(am, sh, t);
        const double edge = ldexp(t, (int)(k - sh));
        if (rule == RULE_RCEIL)
            return edge == am ? k : k + 1;
        /* nearest: up iff amax^2 >= 2 (t 2^k)^2, compared as 128-bit integers */
        const u128 A = (u128)(uint64_t)ldexp(am, 52), B = (u128)(uint64_t)ldexp(edge, 52);
        return (B * B << 1) > A * A ? k : k + 1;
    }
    const int64_t k = floor_log2_over(am, sh, T);
    if (rule == RULE_FLOOR)
        return k - emax;
    if (rule == RULE_CEIL)
        return (ldexp(T, (int)(k - sh)) == am ? k : k + 1) - emax;
    /* even: amax rounded to `precision` bits, ties away, reaches 2^(k+1) */
    const double edge = ldexp((double)((INT64_C(1) << (precision + 1)) - 1) * T,
                              (int)(k - precision - sh));
    return (am >= edge ? k + 1 : k) - emax;
}

/* The round-to-nearest-even code of a normal double (biased exponent 1..2046) in a signed
 * saturating element grid with a zero: round_to_code's arithmetic with the mode fixed. */
static inline int64_t rne_code64(uint64_t b, const lowbit_float *f)
{
    const int64_t M = f->man_bits, emin = f->min_exponent;
    const int64_t e = (int64_t)((b >> 52) & 0x7FF) - 1023;
    const uint64_t sig = (b & UINT64_C(0xFFFFFFFFFFFFF)) | (UINT64_C(1) << 52);
    const int64_t ec = e > emin ? e : emin;
    const int64_t s = ec - e + 52 - M;
    const int64_t t = s < 55 ? s : 55;
    const uint64_t up = t ? (UINT64_C(1) << (t - 1)) - 1 + ((sig >> t) & 1) : 0;
    const uint64_t n = (sig + up) >> t;
    const int64_t sign = (b >> 63) ? f->sign_bit : 0;
    int64_t mag = (int64_t)n + ((ec - emin) << M);
    if (mag > f->max_field)
        mag = f->max_field;  /* the grid saturates */
    if (!f->subnormals && mag < (INT64_C(1) << M))
        mag = 0;
    if (mag == 0)
        return f->negative_zero ? sign : 0;
    return mag | sign;
}

/* The float64 value of a positive code of the scale format f. */
static inline double value_of(int64_t code, const lowbit_float *f)
{
    const operand o = decode_raw(code, f, 0);
    return ldexp((double)o.sig, (int)o.e2);
}

/* The code of amax / mT rounded into the scale format f (upward, or to nearest even),
 * clamped to its smallest positive and largest finite codes. */
static int64_t scale_code_rounded(double amax, double mT, const lowbit_float *f, int round_up)
{
    const int64_t top = f->max_field;
    if (value_of(top, f) * mT < amax)
        return top;
    int64_t lo = 1, hi = top;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (value_of(mid, f) * mT >= amax)
            hi = mid;
        else
            lo = mid + 1;
    }
    const int64_t c = lo;
    if (round_up || c == 1)
        return c;
    const double edge = (value_of(c - 1, f) + value_of(c, f)) * 0.5 * mT;
    if (amax < edge || (amax == edge && (c & 1)))
        return c - 1;
    return c;
}

int lowbit_block_quantize(int64_t *codes, int64_t *scales, int64_t *clipped, const double *x,
                          const int64_t *index, int64_t nblocks, int64_t width,
                          const lowbit_float *grid, int32_t is_int, int32_t asym,
                          const lowbit_float *scale_f, int32_t pow2, int32_t rule, int64_t emax,
                          int64_t precision, double mpos, double T, int32_t daz, uint64_t seed)
{
    int bad = 0;
    const int stochastic = grid->rounding == LOWBIT_STOCHASTIC;
    const int64_t smin = scale_f->min_exponent;
    _Pragma("omp parallel for schedule(static) reduction(+:bad) if(nblocks * width > LOWBIT_PARALLEL_MIN)")
    for (int64_t b = 0; b < nblocks; b++) {
        const double *xb = x + b * width;
        const int64_t *ib = index + b * width;
        double amax = 0.0;
        int special = 0;
        for (int64_t i = 0; i < width; i++) {
            if (!isfinite(xb[i])) {
                special = 1;
            } else {
                double a = fabs(xb[i]);
                if (daz && a < FP32_SMALLEST_NORMAL)
                    a = 0.0;
                if (a > amax)
                    amax = a;
            }
        }
        if (special) {
            if (scale_f->nan_code < 0) {
                bad += 1;
                scales[b] = 0;
            } else {
                scales[b] = scale_f->nan_code;
            }
            for (int64_t i = 0; i < width; i++)
                if (ib[i] >= 0)
                    codes[ib[i]] = 0;
            clipped[b] = 0;
            continue;
        }
        double S;
        if (amax == 0.0) {
            scales[b] = scale_f->zero ? 1 : 0;
            S = 1.0;
        } else if (pow2) {
            int ea;
            frexp(amax, &ea);
            const int64_t sh = ea - 1;
            const double am = ldexp(amax, (int)-sh);
            int64_t e = pow2_scale_exp(am, sh, T, rule, emax, precision, mpos);
            const int64_t emin_s = smin, emax_s = smin + scale_f->max_field;
            e = e < emin_s ? emin_s : (e > emax_s ? emax_s : e);
            scales[b] = e - smin;
            S = ldexp(1.0, (int)e);
        } else {
            const int64_t c = scale_code_rounded(amax, mpos * T, scale_f, rule == RULE_RCEIL);
            scales[b] = c;
            S = value_of(c, scale_f);
        }
        const double D = S * T;
        int64_t ed;
        uint64_t Dd = parts(D, &ed);
        while (!(Dd & 1)) {
            Dd >>= 1;
            ed += 1;
        }
        const double top_pos = mpos * D, top_neg = (asym ? 2.0 : mpos) * D;
        /* a power-of-two divisor and RNE elements: the quotient is a double, rounded by
         * the fixed-mode path (the general one takes zeros and subnormal quotients) */
        const int fast = Dd == 1 && grid->rounding == LOWBIT_NEAREST_EVEN && !is_int &&
                         grid->overflow == LOWBIT_SATURATE;
        const double Sinv = Dd == 1 ? ldexp(1.0, (int)-ed) : 0.0;
        int64_t nclip = 0;
        for (int64_t i = 0; i < width; i++) {
            const int64_t j = ib[i];
            if (j < 0)
                continue;
            const double v = xb[i];
            const int neg = signbit(v) != 0;
            double a = fabs(v);
            if (daz && a < FP32_SMALLEST_NORMAL)
                a = 0.0;
            nclip += a > (neg ? top_neg : top_pos);
            int64_t code;
            const double q = (neg ? -a : a) * Sinv;  /* exact: a power of two, in range */
            uint64_t qb;
            memcpy(&qb, &q, sizeof qb);
            const uint64_t qe = (qb >> 52) & 0x7FF;
            if (fast && a != 0.0 && qe != 0 && qe != 0x7FF) {
                code = rne_code64(qb, grid);
            } else if (a == 0.0) {
                code = zero_code(neg, grid);
            } else {
                int64_t ex, e2;
                const uint64_t X = parts(a, &ex);
                uint64_t sig;
                if (Dd == 1) {
                    sig = X;
                    e2 = ex - ed;
                } else {
                    const int L = 63 - bit_length(X);
                    const uint64_t N = X << L, Q = N / Dd, R = N - Q * Dd;
                    sig = (Q << 1) | (R != 0);
                    e2 = ex - L - ed - 1;
                }
                const uint64_t u = stochastic ? lowbit_u64(seed, (uint64_t)j) : 0;
                code = round_to_code(neg, sig, e2 + bit_length(sig) - 1, e2, grid, u);
            }
            if (is_int) {
                const int64_t mag = code & ~grid->sign_bit, field = mag >> 6, mant = mag & 63;
                int64_t k = field == 0 ? mant : (64 + mant) << (field - 1);
                const int64_t limit = (neg && asym) ? 128 : 127;
                k = k < limit ? k : limit;
                code = neg ? -k : k;
            }
            codes[j] = code;
        }
        clipped[b] = nclip;
    }
    return bad ? LOWBIT_ERR_NAN : LOWBIT_OK;
}
