/*
 * block.c -- block-scaled formats (MX, NVFP4): the block cast.
 * Semantics: numerics/reference/block.py (the definition) and numerics/blocks.py;
 * the Numba twins are emulators/_numba/block.py (same helper names).
 */
#include "float_core.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
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

/* The float64 value of a positive code of the scale format f. */
static inline double value_of(int64_t code, const lowbit_float *f)
{
    const operand o = decode_raw(code, f, 0);
    return ldexp((double)o.sig, (int)o.e2);
}

/* The code of amax / mT rounded into the scale format f (upward, or to nearest even),
 * clamped to its smallest positive and largest finite codes; sv: the values of f's codes
 * 0..max_field (positive codes are in value order: a binary search). */
static int64_t scale_code_rounded(double amax, double mT, const lowbit_float *f,
                                  const double *sv, int round_up)
{
    const int64_t top = f->max_field;
    if (sv[top] * mT < amax)
        return top;
    int64_t lo = 1, hi = top;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (sv[mid] * mT >= amax)
            hi = mid;
        else
            lo = mid + 1;
    }
    const int64_t c = lo;
    if (round_up || c == 1)
        return c;
    const double edge = (sv[c - 1] + sv[c]) * 0.5 * mT;
    if (amax < edge || (amax == edge && (c & 1)))
        return c - 1;
    return c;
}

/* Whether the quotient a / D, correctly rounded to a double, rounds into the element grid
 * exactly as the exact quotient does (a deterministic mode, or stochastic with k <= 16
 * random bits): true when M + k + 3 + bits(Dd) <= 53 (docs/floats.md, "Block formats":
 * every grid point, midpoint or k-bit stochastic threshold t near the quotient is
 * G * 2^c with G < 2^(M + 2 + k), so a quotient that is not t is at least
 * 2^-(M + 3 + k + bits(Dd)) away from it, relatively, and the double's error is below
 * 2^-53). A power-of-two D (Dd == 1) gives an exact quotient. */
static inline int quotient_rounds_exactly(const lowbit_float *grid, uint64_t Dd)
{
    if (Dd == 1)
        return 1;
    const int64_t k = grid->rounding == LOWBIT_STOCHASTIC ? grid->sr_bits : 0;
    if (grid->rounding == LOWBIT_STOCHASTIC && (k == 0 || k > 16))
        return 0;
    return grid->man_bits + k + 3 + bit_length(Dd) <= 53;
}

/* The block's constants for its elements: the divisor D = S * T = Dd * 2^ed (Dd odd) and
 * what the element loop may use. */
typedef struct {
    double D, Sinv;
    uint64_t Dd;
    int64_t ed;
    int quotient; /* the double quotient rounds exactly (quotient_rounds_exactly) */
} block_divisor;

/* The code of element x of a block (the general path): zero, a double quotient rounded by
 * round_to_code, or the exact quotient by integer division with a sticky bit; MXINT8's
 * integer mapping. j is the element's flat index (the stochastic counter). */
static int64_t element_code(double v, const block_divisor *dv, const lowbit_float *grid,
                            int is_int, int asym, int daz, uint64_t seed, int64_t j)
{
    const int neg = signbit(v) != 0;
    double a = fabs(v);
    if (daz && a < FP32_SMALLEST_NORMAL)
        a = 0.0;
    int64_t code;
    if (a == 0.0) {
        code = zero_code(neg, grid);
    } else {
        const double q = dv->Dd == 1 ? a * dv->Sinv : a / dv->D;
        uint64_t qb;
        memcpy(&qb, &q, sizeof qb);
        const int64_t qe = (int64_t)(qb >> 52);
        uint64_t sig;
        int64_t e2;
        if (dv->quotient && qe != 0 && qe != 0x7FF) {
            sig = (qb & UINT64_C(0xFFFFFFFFFFFFF)) | (UINT64_C(1) << 52);
            e2 = qe - 1075;
        } else {
            int64_t ex;
            const uint64_t X = parts(a, &ex);
            if (dv->Dd == 1) {
                sig = X;
                e2 = ex - dv->ed;
            } else {
                const int L = 63 - bit_length(X);
                const uint64_t N = X << L, Q = N / dv->Dd, R = N - Q * dv->Dd;
                sig = (Q << 1) | (R != 0);
                e2 = ex - L - dv->ed - 1;
            }
        }
        const uint64_t u = grid->rounding == LOWBIT_STOCHASTIC ? lowbit_u64(seed, (uint64_t)j) : 0;
        code = round_to_code(neg, sig, e2 + bit_length(sig) - 1, e2, grid, u);
    }
    if (is_int) {
        const int64_t mag = code & ~grid->sign_bit, field = mag >> 6, mant = mag & 63;
        int64_t k = field == 0 ? mant : (64 + mant) << (field - 1);
        const int64_t limit = (neg && asym) ? 128 : 127;
        k = k < limit ? k : limit;
        code = neg ? -k : k;
    }
    return code;
}

/* The elements of a run of blocks under a saturating RNE float grid (M mantissa bits,
 * smallest normal exponent emin), each block's quotient rounding exactly: one branch-free
 * pass that GCC vectorises. The quotient q = |x| * Sinv (power-of-two divisors, exact) or
 * |x| / div[i] (correctly rounded) is a normal double; with ec = max(e(q), emin),
 * n = rint(q * 2^(M - ec)) is q rounded to nearest even at the grid's spacing there
 * (q * 2^(M - ec) is exact; rint rounds to nearest even in the default rounding mode), and
 * the magnitude code is n + ((ec - emin) << M) (a carry moves into the exponent field),
 * clamped to the largest (saturation) and to 0 below the smallest normal without
 * subnormals: round_to_code's arithmetic for this mode. Zeros (and daz-flushed values)
 * give the zero of their sign. Elements whose quotient is not a normal double below 2^512
 * are marked slow (element_code takes them). Returns whether any is slow. */
static int rne_elements(int64_t *restrict out, unsigned char *restrict slow,
                        const double *restrict x, const double *restrict mul,
                        const double *restrict div, int64_t n, int use_div,
                        const lowbit_float *grid, int daz)
{
    /* a positive zero's code is 0 in every grid; a negative one is zneg */
    const int64_t zneg = zero_code(1, grid), sbit = grid->sign_bit, M = grid->man_bits,
                  emin = grid->min_exponent, top = grid->max_field, subn = grid->subnormals;
    const double lo = daz ? FP32_SMALLEST_NORMAL : 0.0;
    int64_t any = 0;
    for (int64_t i = 0; i < n; i++) {
        const double v = x[i], a0 = fabs(v), a = a0 < lo ? 0.0 : a0;
        const double q = use_div ? a / div[i] : a * mul[i];
        uint64_t qb, vb;
        memcpy(&qb, &q, sizeof qb);
        memcpy(&vb, &v, sizeof vb);
        const int64_t qe = (int64_t)(qb >> 52);
        const int64_t bad = (qb != 0) & ((qe == 0) | (qe >= 1023 + 512));
        const int64_t e = qe - 1023, ec = e > emin ? e : emin;
        const uint64_t sb = (uint64_t)(1023 + M - ec) << 52;
        double sc;
        memcpy(&sc, &sb, sizeof sc);
        const int64_t r = (int64_t)rint(q * sc);
        int64_t mag = r + ((ec - emin) << M);
        mag = mag > top ? top : mag; /* the grid saturates */
        mag = (mag < (INT64_C(1) << M)) & (subn == 0) ? 0 : mag;
        mag = bad | (qb == 0) ? 0 : mag;
        const int64_t neg = -(int64_t)(vb >> 63); /* all ones for a negative value */
        out[i] = mag | (neg & (mag != 0 ? sbit : zneg));
        slow[i] = (unsigned char)bad;
        any |= bad;
    }
    return any != 0;
}

/* How a block's elements are coded: the vectorised RNE pass, the general path, or all
 * zero (a NaN/inf block). */
enum { BLOCK_RNE = 0, BLOCK_GENERAL = 1, BLOCK_SPECIAL = 2 };

/* The exponent e of a power-of-two block scale 2^e for a block of largest magnitude
 * amax > 0 (daz applied), tensor scale T: the rule's choice (OCP's floor rule read off the
 * exponent field), clamped to the scale format's range. */
static int64_t pow2_block_exp(double amax, const lowbit_float *scale_f, int rule, int64_t emax,
                              int64_t precision, double mpos, double T)
{
    int64_t e;
    if (rule == RULE_FLOOR && T == 1.0 && amax >= DBL_MIN) {
        e = (int64_t)(f64_bits(amax) >> 52) - 1023 - emax; /* floor(log2 amax) - emax */
    } else {
        int ea;
        frexp(amax, &ea);
        const int64_t sh = ea - 1;
        e = pow2_scale_exp(ldexp(amax, (int)-sh), sh, T, rule, emax, precision, mpos);
    }
    const int64_t smin = scale_f->min_exponent, smax = smin + scale_f->max_field;
    return e < smin ? smin : (e > smax ? smax : e);
}

/* The divisor D = 2^se (|se| <= 1022): its quotients are exact products by 2^-se. */
static block_divisor pow2_divisor(int64_t se)
{
    block_divisor dv;
    dv.D = ldexp(1.0, (int)se);
    dv.Dd = 1;
    dv.ed = se;
    dv.Sinv = f64_of_bits((uint64_t)(1023 - se) << 52);
    dv.quotient = 1;
    return dv;
}

/* The scale and divisor of the block xb (no NaN or inf; amax its largest magnitude, daz
 * applied): its scale code, its clip count and its divisor. */
static int64_t block_scale(block_divisor *dv, int64_t *clip, const double *xb, int64_t width,
                           double amax, double lo, const lowbit_float *grid, int is_int,
                           int asym, const lowbit_float *scale_f, const double *sv, int pow2,
                           int rule, int64_t emax, int64_t precision, double mpos, double T)
{
    const int64_t smin = scale_f->min_exponent;
    int64_t code, se = 0; /* se: the exponent of a power-of-two scale */
    double S;
    if (amax == 0.0) {
        code = scale_f->zero ? 1 : 0;
        S = 1.0;
    } else if (pow2) {
        se = pow2_block_exp(amax, scale_f, rule, emax, precision, mpos, T);
        code = se - smin;
        S = ldexp(1.0, (int)se);
    } else {
        code = scale_code_rounded(amax, mpos * T, scale_f, sv, rule == RULE_RCEIL);
        S = sv[code];
    }
    if (pow2 && T == 1.0 && se >= -1022 && se <= 1022) { /* D = 2^se */
        *dv = pow2_divisor(se);
    } else {
        dv->D = S * T;
        dv->Dd = parts(dv->D, &dv->ed);
        const int tz = __builtin_ctzll(dv->Dd); /* D > 0: Dd != 0 */
        dv->Dd >>= tz;
        dv->ed += tz;
        dv->Sinv = dv->Dd == 1 ? ldexp(1.0, (int)-dv->ed) : 0.0;
    }
    dv->quotient = !is_int && quotient_rounds_exactly(grid, dv->Dd);
    const double top_pos = mpos * dv->D, top_neg = (asym ? 2.0 : mpos) * dv->D;
    int64_t nclip = 0; /* branch-free: signs are random */
    for (int64_t i = 0; i < width; i++) {
        const double a0 = fabs(xb[i]), a = a0 < lo ? 0.0 : a0;
        nclip += a > (xb[i] < 0.0 ? top_neg : top_pos);
    }
    *clip = nclip;
    return code;
}

/* The MX case on float32 lanes: float32 input, power-of-two scales, no tensor scale, a
 * saturating RNE float element of at most 16 bits. With its block's scale 2^e, an
 * element's q = |x| * 2^-e (sinv[i]) is exact in float32 while it is a normal float32
 * (else the element is slow, and element_code takes it on doubles); the rest is
 * rne_elements' arithmetic in float32 and int32 (q * 2^(M - ec) exact, rintf to nearest
 * even, codes below 2^16). clip[i]: q exceeds the element's largest value (the same
 * comparison as |x| > mpos * 2^e). One pass over a run of blocks, vectorised. Returns
 * whether any element is slow. */
static int mx_run_f32(int32_t *restrict out, unsigned char *restrict slow,
                      unsigned char *restrict clip, const float *restrict xf,
                      const float *restrict sinv, int64_t n, const lowbit_float *grid,
                      float mpos, int daz)
{
    const int32_t zneg = (int32_t)zero_code(1, grid), sbit = (int32_t)grid->sign_bit,
                  M = (int32_t)grid->man_bits, emin = (int32_t)grid->min_exponent,
                  top = (int32_t)grid->max_field, subn = (int32_t)grid->subnormals;
    const float lo = daz ? 0x1p-126f : 0.0f;
    int32_t any = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = xf[i], a0 = fabsf(v), a = a0 < lo ? 0.0f : a0;
        const float q = a * sinv[i];
        const uint32_t qb = f32_bits(q), vb = f32_bits(v);
        const int32_t qe = (int32_t)(qb >> 23);
        const int32_t bad = (qb != 0) & ((qe == 0) | (qe == 0xFF));
        const int32_t ev = qe - 127, ec = ev > emin ? ev : emin;
        const float sc = f32_of_bits((uint32_t)(127 + M - ec) << 23);
        const int32_t r = (int32_t)rintf(q * sc);
        int32_t mag = r + ((ec - emin) << M);
        mag = mag > top ? top : mag; /* the grid saturates */
        mag = (mag < (1 << M)) & (subn == 0) ? 0 : mag;
        mag = bad | (qb == 0) ? 0 : mag;
        const int32_t neg = -(int32_t)(vb >> 31); /* all ones for a negative value */
        out[i] = mag | (neg & (mag != 0 ? sbit : zneg));
        slow[i] = (unsigned char)bad;
        clip[i] = (unsigned char)(q > mpos);
        any |= bad;
    }
    return any != 0;
}

#define MX_CHUNK 64 /* blocks per pass of mx_run_f32 */

/* lowbit_block_quantize for the MX case (see mx_run_f32), in chunks of MX_CHUNK blocks:
 * per block the amax (an integer max of the float32 magnitudes' bit patterns) and the scale
 * (pow2_block_exp), then one pass over the chunk's
 * elements; codes written as int64, or as bytes with codes_u8. */
static int mx_quantize_f32(void *codes, int codes_u8, int64_t *scales, int64_t *clipped,
                           const float *x, const int64_t *index, int64_t nblocks,
                           int64_t width, const lowbit_float *grid, int32_t asym,
                           const lowbit_float *scale_f, int32_t rule, int64_t emax,
                           int64_t precision, double mpos, int32_t daz, uint64_t seed)
{
    int bad = 0, nomem = 0;
    const int64_t smin = scale_f->min_exponent;
    const int64_t nchunks = (nblocks + MX_CHUNK - 1) / MX_CHUNK;
    _Pragma("omp parallel reduction(+:bad) reduction(|:nomem) if(nblocks * width > LOWBIT_PARALLEL_MIN)")
    {
        const size_t cap = (size_t)MX_CHUNK * (size_t)width;
        int32_t *const out = malloc(sizeof(int32_t) * cap);
        float *const sinv = malloc(sizeof(float) * cap);
        unsigned char *const slow = malloc(cap), *const clip = malloc(cap);
        unsigned char special[MX_CHUNK];
        int64_t es[MX_CHUNK];
        if (!out || !sinv || !slow || !clip)
            nomem = 1;
        _Pragma("omp for schedule(static)")
        for (int64_t c = 0; c < nchunks; c++) {
            if (nomem)
                continue;
            const int64_t b0 = c * MX_CHUNK;
            const int64_t nb = nblocks - b0 < MX_CHUNK ? nblocks - b0 : MX_CHUNK;
            const int64_t n = nb * width, i0 = b0 * width;
            const float *xs = x + i0;
            for (int64_t k = 0; k < nb; k++) {
                const float *xf = xs + k * width;
                uint32_t top_bits = 0; /* the largest |x| as the largest bit pattern */
                for (int64_t i = 0; i < width; i++) {
                    const uint32_t ab = f32_bits(xf[i]) & UINT32_C(0x7FFFFFFF);
                    top_bits = ab > top_bits ? ab : top_bits;
                }
                int64_t e = 0;
                special[k] = top_bits >= UINT32_C(0x7F800000); /* a NaN or inf */
                if (special[k]) {
                    if (scale_f->nan_code < 0) {
                        bad += 1;
                        scales[b0 + k] = 0;
                    } else {
                        scales[b0 + k] = scale_f->nan_code;
                    }
                } else {
                    double amax = (double)f32_of_bits(top_bits);
                    amax = daz && amax < FP32_SMALLEST_NORMAL ? 0.0 : amax;
                    if (amax == 0.0) {
                        scales[b0 + k] = scale_f->zero ? 1 : 0;
                    } else {
                        e = pow2_block_exp(amax, scale_f, rule, emax, precision, mpos, 1.0);
                        scales[b0 + k] = e - smin;
                    }
                }
                es[k] = e;
                const float s = (float)ldexp(1.0, (int)-e); /* 2^-e in E8M0's range: exact */
                float *const sk = sinv + k * width;
                for (int64_t i = 0; i < width; i++)
                    sk[i] = s;
            }
            const int any = mx_run_f32(out, slow, clip, xs, sinv, n, grid, (float)mpos, daz);
            for (int64_t k = 0; k < nb; k++) {
                int32_t *const ok = out + k * width;
                if (special[k]) {
                    clipped[b0 + k] = 0;
                    for (int64_t i = 0; i < width; i++)
                        ok[i] = 0;
                    continue;
                }
                int64_t nclip = 0;
                for (int64_t i = 0; i < width; i++)
                    nclip += clip[k * width + i];
                clipped[b0 + k] = nclip;
                if (!any)
                    continue;
                const block_divisor dv = pow2_divisor(es[k]);
                for (int64_t i = 0; i < width; i++)
                    if (slow[k * width + i]) {
                        const int64_t j = i0 + k * width + i;
                        ok[i] = (int32_t)element_code((double)xs[k * width + i], &dv, grid, 0,
                                                      asym, daz, seed, index ? index[j] : j);
                    }
            }
            if (codes_u8) { /* every code of an element of at most 8 bits fits a byte */
                uint8_t *const c8 = codes;
                if (index) {
                    for (int64_t i = 0; i < n; i++)
                        if (index[i0 + i] >= 0)
                            c8[index[i0 + i]] = (uint8_t)out[i];
                } else {
                    for (int64_t i = 0; i < n; i++)
                        c8[i0 + i] = (uint8_t)out[i];
                }
            } else {
                int64_t *const c64 = codes;
                if (index) {
                    for (int64_t i = 0; i < n; i++)
                        if (index[i0 + i] >= 0)
                            c64[index[i0 + i]] = out[i];
                } else {
                    for (int64_t i = 0; i < n; i++)
                        c64[i0 + i] = out[i];
                }
            }
        }
        free(out);
        free(sinv);
        free(slow);
        free(clip);
    }
    if (nomem)
        return LOWBIT_ERR_NOMEM;
    return bad ? LOWBIT_ERR_NAN : LOWBIT_OK;
}

#define CHUNK_BLOCKS 64 /* blocks whose elements one vectorised pass codes */

int lowbit_block_quantize(void *codes_out, int32_t codes_u8, int64_t *scales,
                          int64_t *clipped, const void *x, int32_t x_f32,
                          const int64_t *index, int64_t nblocks, int64_t width,
                          const lowbit_float *grid, int32_t is_int, int32_t asym,
                          const lowbit_float *scale_f, int32_t pow2, int32_t rule, int64_t emax,
                          int64_t precision, double mpos, double T, int32_t daz, uint64_t seed)
{
    int bad = 0, nomem = 0;
    const int rne = grid->rounding == LOWBIT_NEAREST_EVEN && !is_int &&
                    grid->overflow == LOWBIT_SATURATE;
    const int use_div = !(pow2 && T == 1.0); /* else every divisor is a power of two */
    const double lo = daz ? FP32_SMALLEST_NORMAL : 0.0;
    const int64_t nchunks = (nblocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
    if (x_f32 && rne && !use_div && grid->sign_bit < (INT64_C(1) << 16)) /* <= 16-bit codes */
        return mx_quantize_f32(codes_out, codes_u8, scales, clipped, (const float *)x, index,
                               nblocks, width, grid, asym, scale_f, rule, emax, precision, mpos,
                               daz, seed);
    if (codes_u8)
        return LOWBIT_ERR_RANGE; /* byte codes are the MX path's only */
    int64_t *const codes = codes_out;
    /* the values of the scale's codes, for a scale that is not a power of two */
    double *sv = NULL;
    if (!pow2) {
        if (scale_f->max_field >= (INT64_C(1) << 20))
            return LOWBIT_ERR_NOMEM; /* no table for scales this wide (none is) */
        sv = malloc(sizeof(double) * (size_t)(scale_f->max_field + 1));
        if (!sv)
            return LOWBIT_ERR_NOMEM;
        for (int64_t c = 0; c <= scale_f->max_field; c++)
            sv[c] = value_of(c, scale_f);
    }
    _Pragma("omp parallel reduction(+:bad) reduction(|:nomem) if(nblocks * width > LOWBIT_PARALLEL_MIN)")
    {
        const size_t cap = (size_t)CHUNK_BLOCKS * (size_t)width;
        double *const xbuf = malloc(sizeof(double) * cap);
        double *const mul = malloc(sizeof(double) * cap);
        int64_t *const cbuf = malloc(sizeof(int64_t) * cap);
        unsigned char *const slow = malloc(cap);
        block_divisor *const dvs = malloc(sizeof(block_divisor) * CHUNK_BLOCKS);
        unsigned char *const kind = malloc(CHUNK_BLOCKS);
        if (!xbuf || !mul || !cbuf || !slow || !dvs || !kind)
            nomem = 1;
        _Pragma("omp for schedule(static)")
        for (int64_t c = 0; c < nchunks; c++) {
            if (nomem)
                continue;
            const int64_t b0 = c * CHUNK_BLOCKS;
            const int64_t nb = nblocks - b0 < CHUNK_BLOCKS ? nblocks - b0 : CHUNK_BLOCKS;
            const int64_t n = nb * width, i0 = b0 * width;
            const double *xs;
            if (x_f32) {
                const float *xf = (const float *)x + i0;
                for (int64_t i = 0; i < n; i++)
                    xbuf[i] = (double)xf[i];
                xs = xbuf;
            } else {
                xs = (const double *)x + i0;
            }
            int64_t *const out = index ? cbuf : codes + i0;
            int any_rne = 0;
            for (int64_t k = 0; k < nb; k++) {
                const double *xb = xs + k * width;
                /* the largest |x| as the largest magnitude bit pattern (same order as
                 * the values; an inf or NaN is above every finite one): one integer max */
                uint64_t top_bits = 0;
                for (int64_t i = 0; i < width; i++) {
                    uint64_t ab;
                    memcpy(&ab, xb + i, sizeof ab);
                    ab &= UINT64_C(0x7FFFFFFFFFFFFFFF);
                    top_bits = ab > top_bits ? ab : top_bits;
                }
                double *const mk = mul + k * width;
                if (top_bits >= UINT64_C(0x7FF0000000000000)) { /* a NaN or inf */
                    if (scale_f->nan_code < 0) {
                        bad += 1;
                        scales[b0 + k] = 0;
                    } else {
                        scales[b0 + k] = scale_f->nan_code;
                    }
                    clipped[b0 + k] = 0;
                    kind[k] = BLOCK_SPECIAL;
                    for (int64_t i = 0; i < width; i++)
                        mk[i] = 1.0;
                    continue;
                }
                double amax = f64_of_bits(top_bits);
                amax = amax < lo ? 0.0 : amax; /* daz: the largest is flushed only if all are */
                scales[b0 + k] = block_scale(&dvs[k], &clipped[b0 + k], xb, width, amax, lo,
                                             grid, is_int, asym, scale_f, sv, pow2, rule,
                                             emax, precision, mpos, T);
                kind[k] = rne && dvs[k].quotient ? BLOCK_RNE : BLOCK_GENERAL;
                any_rne |= kind[k] == BLOCK_RNE;
                const double m = use_div ? dvs[k].D : dvs[k].Sinv;
                for (int64_t i = 0; i < width; i++)
                    mk[i] = m;
            }
            const int any_slow = any_rne && rne_elements(out, slow, xs, mul, mul, n, use_div,
                                                         grid, daz);
            for (int64_t k = 0; k < nb; k++) {
                int64_t *const ok = out + k * width;
                const double *xb = xs + k * width;
                const int64_t *ib = index ? index + (b0 + k) * width : NULL;
                if (kind[k] == BLOCK_SPECIAL) {
                    for (int64_t i = 0; i < width; i++)
                        ok[i] = 0;
                } else if (kind[k] == BLOCK_GENERAL || any_slow) {
                    for (int64_t i = 0; i < width; i++)
                        if (kind[k] == BLOCK_GENERAL || slow[k * width + i])
                            ok[i] = element_code(xb[i], &dvs[k], grid, is_int, asym, daz,
                                                 seed, ib ? ib[i] : (b0 + k) * width + i);
                }
            }
            if (index)
                for (int64_t i = 0; i < n; i++)
                    if (index[i0 + i] >= 0)
                        codes[index[i0 + i]] = cbuf[i];
        }
        free(xbuf);
        free(mul);
        free(cbuf);
        free(slow);
        free(dvs);
        free(kind);
    }
    free(sv);
    if (nomem)
        return LOWBIT_ERR_NOMEM;
    return bad ? LOWBIT_ERR_NAN : LOWBIT_OK;
}
