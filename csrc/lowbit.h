/*
 * lowbit.h -- shared definitions of the lowbit C kernels (C11).
 *
 * The semantics of every function are those of the exact reference in
 * numerics/reference (see docs/formats.md); both this backend and the Numba one
 * must return the same codes for every input. Kernels assume the inputs were
 * validated by emulators/ (widths, ranges, shapes): they never read out of
 * bounds, never overflow a signed integer and never shift by >= 64 for valid
 * inputs. Status codes map to Python exceptions in emulators/_c/backend.py.
 *
 * The section between "cffi:begin" and "cffi:end" is read by
 * emulators/_c/build.py as the cffi cdef (enum values become "= ...", so the
 * C compiler supplies them and a test checks they equal the Python enums).
 */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stdint.h>

/* cffi:begin */
enum lowbit_rounding {
    LOWBIT_NEAREST_EVEN = 0,
    LOWBIT_NEAREST_AWAY = 1,
    LOWBIT_TOWARD_ZERO = 2,
    LOWBIT_FLOOR = 3,
    LOWBIT_CEIL = 4,
    LOWBIT_STOCHASTIC = 5,
    LOWBIT_ODD = 6          /* float formats only */
};

enum lowbit_overflow {
    LOWBIT_SATURATE = 0,
    LOWBIT_WRAP = 1,
    LOWBIT_INFINITY = 2     /* float formats only */
};

enum lowbit_order {
    LOWBIT_SEQUENTIAL = 0,
    LOWBIT_PAIRWISE = 1
};

enum lowbit_status {
    LOWBIT_OK = 0,
    LOWBIT_ERR_NAN = 1,      /* an input was NaN */
    LOWBIT_ERR_INF = 2,      /* an input was +-inf under WRAP */
    LOWBIT_ERR_NOMEM = 3,    /* a scratch buffer could not be allocated */
    LOWBIT_ERR_ZERO_DIVISION = 4, /* an LNS division by zero */
    LOWBIT_ERR_RANGE = 5     /* a fast path's range check failed: take the general one */
};

/* A fixed-point format: value = code * 2^-frac. */
typedef struct lowbit_fixed {
    int32_t bits;       /* 1..62 */
    int32_t frac;       /* -512..512 */
    int32_t is_signed;  /* 0 or 1 */
    int32_t rounding;   /* enum lowbit_rounding */
    int32_t overflow;   /* enum lowbit_overflow */
} lowbit_fixed;

/* Cast n floats to codes of fmt; stochastic counter = element index. */
int lowbit_fixed_cast_f64(int64_t *out, const double *x, int64_t n,
                          const lowbit_fixed *fmt, uint64_t seed);
int lowbit_fixed_cast_f32(int64_t *out, const float *x, int64_t n,
                          const lowbit_fixed *fmt, uint64_t seed);

/* Re-round codes with src_frac fractional bits into fmt; the stochastic counter
 * of element i is (i << counter_shift) | counter_low. */
int lowbit_fixed_convert(int64_t *out, const int64_t *codes, int64_t n, int32_t src_frac,
                         const lowbit_fixed *fmt, uint64_t seed,
                         int32_t counter_shift, uint64_t counter_low);

/* out[i] = round(a[i] * 2^-fa +- b[i] * 2^-fb) (minus if negate_b). */
int lowbit_fixed_add(int64_t *out, const int64_t *a, int32_t fa, const int64_t *b, int32_t fb,
                     int64_t n, int32_t negate_b, const lowbit_fixed *fmt, uint64_t seed);

/* out[i] = round(a[i] * b[i] * 2^-pfrac). */
int lowbit_fixed_mul(int64_t *out, const int64_t *a, const int64_t *b, int64_t n,
                     int32_t pfrac, const lowbit_fixed *fmt, uint64_t seed);

/* out (M x N) = a (M x K) @ b (K x N), all row-major; products carry pfrac
 * fractional bits, their exact int64 sum is rounded once into fmt. The i32
 * variant takes codes that fit int32 (faster: half the memory traffic). */
int lowbit_fixed_matmul_exact_i64(int64_t *out, const int64_t *a, const int64_t *b,
                                  int64_t M, int64_t K, int64_t N, int32_t pfrac,
                                  const lowbit_fixed *fmt, uint64_t seed);
int lowbit_fixed_matmul_exact_i32(int64_t *out, const int32_t *a, const int32_t *b,
                                  int64_t M, int64_t K, int64_t N, int32_t pfrac,
                                  const lowbit_fixed *fmt, uint64_t seed);

/* The same with a narrow accumulator *acc: order sequential or pairwise, Kahan
 * compensation when compensated (each output still sums over k in order). */
int lowbit_fixed_matmul_acc(int64_t *out, const int64_t *a, const int64_t *b,
                            int64_t M, int64_t K, int64_t N, int32_t pfrac,
                            const lowbit_fixed *acc, int32_t order, int32_t compensated,
                            const lowbit_fixed *fmt, uint64_t seed);

/* out[m] = sum over k of a[m * K + k] (terms with tfrac fractional bits). */
int lowbit_fixed_sum(int64_t *out, const int64_t *a, int64_t M, int64_t K, int32_t tfrac,
                     const lowbit_fixed *acc, int32_t order, int32_t compensated,
                     const lowbit_fixed *fmt, uint64_t seed);

/* Binary: code = x >= 0 ? +1 : -1. Ternary: sign(x) if |x| > threshold else 0. */
int lowbit_binary_cast_f64(int64_t *out, const double *x, int64_t n);
int lowbit_binary_cast_f32(int64_t *out, const float *x, int64_t n);
int lowbit_ternary_cast_f64(int64_t *out, const double *x, int64_t n, double threshold);
int lowbit_ternary_cast_f32(int64_t *out, const float *x, int64_t n, double threshold);

/* Pack each row of codes (rows x K) into W = ceil(K/64) words: bit k % 64 of
 * word k / 64 is set where the code equals value; padding bits are 0. */
void lowbit_pack_bits(uint64_t *words, const int64_t *codes, int64_t rows, int64_t K,
                      int64_t W, int64_t value);

/* Pack each column of codes (K x N) into W words, as lowbit_pack_bits packs
 * the rows of its transpose, without forming the transpose: words is N x W. */
void lowbit_pack_cols(uint64_t *words, const int64_t *codes, int64_t K, int64_t N,
                      int64_t W, int64_t value);

/* out (M x N) = a @ b for binary codes: K - 2 * popcount(a_row XOR bt_row). */
void lowbit_binary_matmul(int64_t *out, const uint64_t *a, const uint64_t *bt,
                          int64_t M, int64_t N, int64_t W, int64_t K);

/* out (M x N) = a @ b for codes in {-1, 0, 1} held as +1 and -1 bit-planes. */
void lowbit_ternary_matmul(int64_t *out, const uint64_t *ap, const uint64_t *an,
                           const uint64_t *btp, const uint64_t *btn,
                           int64_t M, int64_t N, int64_t W);
/* ---- LNS (csrc/lns.c) ----------------------------------------------------
 * Codes: 0 is zero; +-(e - e_min + 1) for (-1)^s 2^(e / 2^frac_bits), negative
 * for s = 1. Semantics: numerics/reference/lns.py and docs/lns.md. */

typedef struct lowbit_lns {
    int32_t frac_bits;
    int32_t underflow_min;  /* 1: results below e_min become e_min; 0: zero */
    int32_t rounding;       /* enum lowbit_rounding: NEAREST_EVEN, FLOOR, CEIL, STOCHASTIC */
    int64_t e_min;
    int64_t e_max;
} lowbit_lns;

/* An adder spec as tables (numerics/gaussian_log.py: AdderTables): row f of
 * sub (2 x sub_len) and tab (2 x tab_len) is sb (f = 0) or db (f = 1). */
typedef struct lowbit_adder {
    const int64_t *sub;
    int64_t sub_len;
    const int64_t *tab;
    int64_t tab_len;
    const int32_t *tab32; /* tab as int32 when every entry fits (the fast path's gathers), or NULL */
    int64_t last;        /* entries q > last consult no table */
    int64_t beyond[2];   /* the final value of sb and db there */
    int32_t k;           /* |z| = q * 2^k + r */
    int32_t guard;       /* bits kept beyond frac_bits before the final rounding */
    int32_t interp;      /* 1: interpolate between tab[q] and tab[q + 1] */
} lowbit_adder;

/* Cast floats (thresholds: numerics.gaussian_log.cast_thresholds); 1 on NaN. */
int lowbit_lns_cast_f64(int64_t *out, const double *x, int64_t n, const double *thresholds,
                        int64_t n_thresholds, const lowbit_lns *fmt);
int lowbit_lns_cast_f32(int64_t *out, const float *x, int64_t n, const double *thresholds,
                        int64_t n_thresholds, const lowbit_lns *fmt);
/* Re-round codes (src e_min; shift = F_src - F_dst) into dst; counter i. */
int lowbit_lns_convert(int64_t *out, const int64_t *codes, int64_t n, int64_t emin_src,
                       int32_t shift, const lowbit_lns *dst, uint64_t seed);
/* a * b, or a / b when divide (returns 1 if a divisor is zero). */
int lowbit_lns_mul(int64_t *out, const int64_t *a, int64_t emin_a, const int64_t *b,
                   int64_t emin_b, int64_t n, int32_t divide, const lowbit_lns *fmt);
/* a + b, or a - b when negate_b; counter i. */
int lowbit_lns_add(int64_t *out, const int64_t *a, int64_t emin_a, const int64_t *b,
                   int64_t emin_b, int64_t n, int32_t negate_b, const lowbit_lns *fmt,
                   const lowbit_adder *adder, uint64_t seed);
/* out (M x N) = a @ b: products exact in acc (exponents shifted by widen),
 * accumulated in acc with its adder, converted into fmt. */
int lowbit_lns_matmul(int64_t *out, const int64_t *a, const int64_t *b, int64_t M, int64_t K,
                      int64_t N, int64_t emin_a, int64_t emin_b, int32_t widen,
                      const lowbit_lns *acc, const lowbit_adder *adder, int32_t order,
                      int32_t compensated, const lowbit_lns *fmt, uint64_t seed);
/* out[m] = sum of row m of a (M x K) in acc, converted into fmt. */
int lowbit_lns_sum(int64_t *out, const int64_t *a, int64_t M, int64_t K, int64_t emin_a,
                   int32_t widen, const lowbit_lns *acc, const lowbit_adder *adder,
                   int32_t order, int32_t compensated, const lowbit_lns *fmt, uint64_t seed);
/* ---- Float (csrc/floating.c) --------------------------------------------
 * Codes are bit patterns. Semantics: numerics/reference/floating.py and
 * docs/floats.md. The format as the kernels see it (lowbit.emulators._numba
 * .floating.fmt_tuple, field for field): */

typedef struct lowbit_float {
    int64_t man_bits;       /* M, 0..23 */
    int64_t min_exponent;   /* of the smallest normal binade */
    int64_t zero;           /* 0: no zero, the field 0 is a normal binade (E8M0) */
    int64_t max_field;      /* magnitude bits of the largest finite value */
    int64_t sign_bit;       /* 0 when unsigned */
    int64_t negative_zero;  /* 1 if -0 has a code */
    int64_t subnormals;     /* 0: flush subnormal results to zero */
    int64_t overflow;       /* LOWBIT_SATURATE or LOWBIT_INFINITY */
    int64_t nan_code;       /* -1: no NaN */
    int64_t inf_code;       /* -1: no inf */
    int64_t inf_policy;     /* 0 max, 1 inf, 2 nan: what an infinite input becomes */
    int64_t rounding;       /* enum lowbit_rounding */
    int64_t sr_bits;        /* 0: exact stochastic rounding (53 bits), else k random bits */
    int64_t is_signed;
    int64_t exp_bits;
    int64_t bias;
    int64_t specials;       /* 0 ieee, 1 fn, 2 fnuz, 3 p3109, 4 none */
    int64_t daz;            /* 1: subnormal operands read as zero */
} lowbit_float;

/* Cast n float64 (float32) values to codes of fmt; stochastic counter = element index.
 * Returns LOWBIT_ERR_NAN (LOWBIT_ERR_INF) if a NaN (inf) cannot be represented. */
int lowbit_float_cast_f64(int64_t *out, const double *x, int64_t n, const lowbit_float *fmt,
                          uint64_t seed);
int lowbit_float_cast_f32(int64_t *out, const float *x, int64_t n, const lowbit_float *fmt,
                          uint64_t seed);

/* Element-wise out[i] = a[i] op b[i] (op: LOWBIT_OP_ADD, _SUB, _MUL, _DIV) or, for
 * LOWBIT_OP_FMA, a[i] * b[i] + c[i]: the exact result rounded once into fmt (IEEE
 * specials; stochastic counter i). Returns LOWBIT_ERR_NAN if a NaN result has no code. */
enum lowbit_float_op {
    LOWBIT_OP_ADD = 0,
    LOWBIT_OP_SUB = 1,
    LOWBIT_OP_MUL = 2,
    LOWBIT_OP_DIV = 3,
    LOWBIT_OP_FMA = 4
};
int lowbit_float_elementwise(int64_t *out, const int64_t *a, const lowbit_float *fa,
                             const int64_t *b, const lowbit_float *fb, const int64_t *c,
                             const lowbit_float *fc, int64_t n, int32_t op,
                             const lowbit_float *fmt, uint64_t seed);
/* A fused accumulator model (numerics/accumulators.py); register/outer are Float formats. */
typedef struct lowbit_fused {
    int64_t group;
    int64_t frac_bits;
    int64_t floor_align;    /* 1: cut toward -inf, 0: toward zero */
    int64_t promote_every;  /* 0: no promotion */
} lowbit_fused;

/* out (M x N) = a (M x K) @ b (K x N) of Float codes, products exact, summed by mode:
 * LOWBIT_FACC_EXACT (exactly in int64, products' grid from lsb_exp: the caller checks it
 * fits), _SEQUENTIAL / _PAIRWISE / _KAHAN in the Float acc (every addition rounded),
 * _FUSED (the model, register = acc, outer); then rounded into fmt. Counters as
 * docs/rng.md. Returns LOWBIT_ERR_NAN if a NaN result has no code, LOWBIT_ERR_NOMEM. */
enum lowbit_float_acc_mode {
    LOWBIT_FACC_EXACT = 0,
    LOWBIT_FACC_SEQUENTIAL = 1,
    LOWBIT_FACC_PAIRWISE = 2,
    LOWBIT_FACC_KAHAN = 3,
    LOWBIT_FACC_FUSED = 4
};
int lowbit_float_matmul(int64_t *out, const int64_t *a, const lowbit_float *fa,
                        const int64_t *b, const lowbit_float *fb, int64_t M, int64_t K,
                        int64_t N, int32_t mode, int64_t lsb_exp, const lowbit_float *acc,
                        const lowbit_fused *fused, const lowbit_float *outer,
                        const lowbit_float *fmt, uint64_t seed);

/* out[i] = table[2 * (bits(x[i]) >> shift) + (low shift bits != 0)]: a float32 cast
 * through the table of its input classes (emulators/_float_ops.py builds it with
 * lowbit_float_cast_f32; exact for formats whose rounding bit lies at or above bit
 * `shift` of every input). Entries -1 / -2 are a NaN / an inf the format cannot hold:
 * LOWBIT_ERR_NAN / LOWBIT_ERR_INF. */
int lowbit_float_cast_f32_table(int64_t *out, const float *x, int64_t n, const int64_t *table,
                                int32_t shift);
/* The same into uint8 codes, for formats of at most 8 bits (every table entry fits). */
int lowbit_float_cast_f32_table_u8(uint8_t *out, const float *x, int64_t n, const int64_t *table,
                                int32_t shift);

/* out (M x N) = a @ b of float32 arrays (row-major), each output summed in binary32 from
 * +0 in k order, every addition rounded to nearest even: lowbit_float_matmul's sequential
 * fp32 accumulator exactly when every product a[i,k] * b[k,j] is exact in binary32 (the
 * caller's check: both significands fit 24 bits together, no product under- or overflows). */
void lowbit_float_matmul_binary32(float *out, const float *a, const float *b, int64_t M,
                                  int64_t K, int64_t N);

/* out (M x N float64) = a @ b of float64 values under an accumulator model (group, frac_bits,
 * floor_align, promote: see numerics/accumulators.py; register: its format) whose every
 * product, cut and partial sum is exact in a double, and whose outer accumulator is binary32
 * with RNE: lowbit_float_matmul's fused mode exactly when the caller's range checks hold
 * (emulators/_float_ops.py). LOWBIT_ERR_NOMEM when out of memory. */
int lowbit_fused_matmul_f64(double *out, const double *a, const double *b, int64_t M,
                            int64_t K, int64_t N, int64_t group, int64_t frac_bits,
                            int32_t floor_align, int64_t promote, const lowbit_float *regp);

/* The same in float32 for a model that cuts toward zero into a round-toward-zero register
 * of binary32's range (FP8 presets): every product, power-of-two scaling and group sum
 * (below 2^24) is exact in a float. LOWBIT_ERR_RANGE when a group's largest magnitude or a
 * register value leaves the range where that holds (the caller runs the float64 kernel). */
int lowbit_fused_matmul_f32(float *out, const float *a, const float *b, int64_t M,
                            int64_t K, int64_t N, int64_t group, int64_t frac_bits,
                            int64_t promote, const lowbit_float *regp);

/* ---- Block formats (csrc/block.c) ----------------------------------------
 * The block cast of x, laid out as nblocks rows of width float64 values (pads 0.0 with
 * index -1): codes[index[i]] = element code, scales[b] = scale code, clipped[b] = the
 * block's clipped elements. grid: the Float the elements round in (saturating; MXINT8's
 * sign-magnitude grid with is_int); scale_f: the scale format (pow2: E8M0-like); rule:
 * 0 floor, 1 ceil, 2 even, 3 rceil, 4 nearest; emax, precision, mpos: the element's
 * exponent of its largest value, significant bits, largest value; T: the tensor scale.
 * Semantics: numerics/reference/block.py. LOWBIT_ERR_NAN if a NaN block has no NaN scale.
 * codes_out: int64 codes, or uint8 with codes_u8 (only for float32 x, power-of-two scales,
 * T = 1 and RNE float elements of at most 8 bits; else LOWBIT_ERR_RANGE). */
int lowbit_block_quantize(void *codes_out, int32_t codes_u8, int64_t *scales,
                          int64_t *clipped, const void *x, int32_t x_f32,
                          const int64_t *index, int64_t nblocks, int64_t width,
                          const lowbit_float *grid, int32_t is_int, int32_t asym,
                          const lowbit_float *scale_f, int32_t pow2, int32_t rule, int64_t emax,
                          int64_t precision, double mpos, double T, int32_t daz, uint64_t seed);
/* ---- LSH (csrc/lsh.c) ------------------------------------------------------
 * SimHash buckets (n x L) of the rows of codes (n x dim): bit j of table t is 1 when
 * sum_q sign[h][q] * row[idx[h][q]] < 0, h = t * K + j; packed high bit first
 * (numerics/lsh.py). The caller bounds |code| * m below 2^62. */
void lowbit_simhash(int64_t *out, const int64_t *codes, int64_t n, int64_t dim,
                    const int64_t *idx, const int64_t *sign, int64_t m, int64_t K, int64_t L);

/* DWTA buckets (n x L): per bin (n_bins x width coordinates) the position of the largest
 * non-zero code (first on ties); an empty bin h takes the code of the first non-empty bin
 * among probes[h][0..n_probes) (else 0); bucket = sum_j code_j << ((K-1-j) * shift).
 * Returns LOWBIT_ERR_NOMEM if a scratch row cannot be allocated. */
int lowbit_dwta(int64_t *out, const int64_t *codes, int64_t n, int64_t dim,
                const int64_t *bins, int64_t n_bins, int64_t width,
                const int64_t *probes, int64_t n_probes, int64_t K, int64_t L, int64_t shift);

/* Bucket unions (csrc/lsh.c): per query b (B queries x L tables of buckets q), the
 * ascending distinct ids of its buckets (table t's bucket v: ids[t][offsets[t][v] ..
 * offsets[t][v+1]), nb1 = buckets + 1, N ids per table) and of its extra ids
 * eids[eoff[b] .. eoff[b+1]), as CSR out_off (B + 1) / out (at most out_cap ids).
 * Returns LOWBIT_ERR_NOMEM if scratch memory is short or out_cap is too small.
 * Semantics: numerics/reference/lsh.py (bucket_union). */
int lowbit_bucket_union(int64_t *out_off, int64_t *out, int64_t out_cap, const int64_t *offsets,
                        const int64_t *ids, int64_t L, int64_t nb1, int64_t N, const int64_t *q,
                        int64_t B, const int64_t *eoff, const int64_t *eids);

/* ---- per-sample sparse products (csrc/sparse.c) ----------------------------
 * CSR active sets: sample b owns ids[offsets[b] .. offsets[b+1]). dots: out[k] = sum_j
 * x[b][j] * w[ids[k]][j] (j ascending); grad_input: out[b][j] = sum_k g[k] * w[ids[k]][j]
 * (k ascending); grad_rows: out[u][j] = sum g[k] * x[sample[k]][j] over k =
 * order[row_offsets[u] .. row_offsets[u+1]). float32 (each product rounded, then added) or
 * exact int64 (the caller bounds the sums below 2^62). Semantics:
 * numerics/reference/sparse.py. */
void lowbit_sparse_dots_f32(float *out, const float *x, const float *w, int64_t B, int64_t d,
                            const int64_t *offsets, const int64_t *ids);
void lowbit_sparse_grad_input_f32(float *out, const float *g, const float *w, int64_t B,
                                  int64_t d, const int64_t *offsets, const int64_t *ids);
void lowbit_sparse_grad_rows_f32(float *out, const float *g, const float *x, int64_t U,
                                 int64_t d, const int64_t *sample, const int64_t *row_offsets,
                                 const int64_t *order);
void lowbit_sparse_dots_i64(int64_t *out, const int64_t *x, const int64_t *w, int64_t B,
                            int64_t d, const int64_t *offsets, const int64_t *ids);
void lowbit_sparse_grad_input_i64(int64_t *out, const int64_t *g, const int64_t *w, int64_t B,
                                  int64_t d, const int64_t *offsets, const int64_t *ids);
void lowbit_sparse_grad_rows_i64(int64_t *out, const int64_t *g, const int64_t *x, int64_t U,
                                 int64_t d, const int64_t *sample, const int64_t *row_offsets,
                                 const int64_t *order);

/* cffi:end */

/* ------------------------------------------------------------------------
 * Shared inline helpers of the kernels (not part of the cffi interface).
 * ------------------------------------------------------------------------ */
#include <math.h>
#include <stdlib.h>

#define LOWBIT_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define LOWBIT_STEP_BITS 32
#define LOWBIT_FINAL_STEP UINT64_C(0xFFFFFFFF)
#define LOWBIT_TWO53 UINT64_C(0x20000000000000)

/* splitmix64: the counter-th output from state seed, all 64 bits (numerics/rng.py). */
static inline uint64_t lowbit_u64(uint64_t seed, uint64_t counter)
{
    uint64_t z = seed + (counter + 1) * LOWBIT_GAMMA;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Its top 53 bits. */
static inline uint64_t lowbit_u53(uint64_t seed, uint64_t counter)
{
    return lowbit_u64(seed, counter) >> 11;
}

/* A fixed-point format prepared for the element loops. */
typedef struct lowbit_fmt {
    int64_t lo, hi;       /* code range */
    uint64_t mask;        /* 2^bits - 1 */
    int32_t bits, frac, is_signed, rounding, wrap;
} lowbit_fmt;

static inline lowbit_fmt lowbit_prepare(const lowbit_fixed *f)
{
    lowbit_fmt p;
    p.bits = f->bits;
    p.frac = f->frac;
    p.is_signed = f->is_signed;
    p.rounding = f->rounding;
    p.wrap = f->overflow == LOWBIT_WRAP;
    p.mask = (UINT64_C(1) << f->bits) - 1;
    if (f->is_signed) {
        p.lo = -(INT64_C(1) << (f->bits - 1));
        p.hi = (INT64_C(1) << (f->bits - 1)) - 1;
    } else {
        p.lo = 0;
        p.hi = (int64_t)p.mask;
    }
    return p;
}

/* floor(v / 2^s) for 0 <= s <= 63 without relying on signed right shifts. */
static inline int64_t lowbit_floor_shift(int64_t v, int s)
{
    return v >= 0 ? (int64_t)((uint64_t)v >> s) : (int64_t)~((uint64_t)~v >> s);
}

/* v * 2^k for 0 <= k <= 63, wrapping modulo 2^64 (never undefined). */
static inline int64_t lowbit_shl(int64_t v, int k)
{
    return (int64_t)((uint64_t)v << k);
}

/* Two's-complement wrap of the low `bits` bits of w. */
static inline int64_t lowbit_wrap_bits(uint64_t w, const lowbit_fmt *f)
{
    w &= f->mask;
    if (f->is_signed && ((w >> (f->bits - 1)) & 1))
        w |= ~f->mask;
    return (int64_t)w;
}

/* The overflow policy applied to an exact integer n (branch-free per element). */
static inline int64_t lowbit_overflow(int64_t n, const lowbit_fmt *f)
{
    if (f->wrap)
        return lowbit_wrap_bits((uint64_t)n, f);
    return n < f->lo ? f->lo : (n > f->hi ? f->hi : n);
}

/* round(p * 2^-s) for 1 <= s <= 62 with the given rounding (no overflow).
 * The decisions are bitwise, not branches: rounding random data stays cheap. */
static inline int64_t lowbit_round_shift62(int64_t p, int s, int rounding, uint64_t u53)
{
    int64_t q = lowbit_floor_shift(p, s);
    uint64_t r = (uint64_t)p & ((UINT64_C(1) << s) - 1);
    uint64_t half = UINT64_C(1) << (s - 1);
    uint64_t t;
    switch (rounding) {
    case LOWBIT_NEAREST_EVEN:
        return q + ((r > half) | ((r == half) & (int)(q & 1)));
    case LOWBIT_NEAREST_AWAY:
        return q + ((r > half) | ((r == half) & (p > 0)));
    case LOWBIT_TOWARD_ZERO:
        return q + ((p < 0) & (r != 0));
    case LOWBIT_FLOOR:
        return q;
    case LOWBIT_CEIL:
        return q + (r != 0);
    default: /* LOWBIT_STOCHASTIC: up iff u53 < ceil(r * 2^(53 - s)) */
        if (s <= 53)
            t = r << (53 - s);
        else
            t = (r >> (s - 53)) + ((r & ((UINT64_C(1) << (s - 53)) - 1)) != 0);
        return q + (u53 < t);
    }
}

/* round(p * 2^-s) for any s >= 1: shifts beyond 62 first compress p to
 * s = 62 keeping a sticky bit, which preserves every rounding decision. */
static inline int64_t lowbit_round_shift(int64_t p, int64_t s, int rounding, uint64_t u53)
{
    if (s > 62) {
        int64_t d = s - 62;
        if (d >= 63) {
            p = p > 0 ? 1 : (p < 0 ? -1 : 0);
        } else {
            uint64_t lost = (uint64_t)p & ((UINT64_C(1) << d) - 1);
            p = (int64_t)((uint64_t)lowbit_floor_shift(p, (int)d) | (lost != 0));
        }
        s = 62;
    }
    return lowbit_round_shift62(p, (int)s, rounding, u53);
}

/* The code of the exact value p * 2^-pfrac in f (one rounding, then overflow). */
static inline int64_t lowbit_quantize(int64_t p, int64_t pfrac, const lowbit_fmt *f,
                                      uint64_t seed, uint64_t counter)
{
    int64_t s = pfrac - f->frac;
    if (s > 0) {
        uint64_t u = f->rounding == LOWBIT_STOCHASTIC ? lowbit_u53(seed, counter) : 0;
        return lowbit_overflow(lowbit_round_shift(p, s, f->rounding, u), f);
    }
    if (s == 0 || p == 0)
        return lowbit_overflow(p, f);
    int64_t k = -s;
    if (f->wrap)
        return k >= 64 ? 0 : lowbit_wrap_bits((uint64_t)p << k, f);
    int kk = k > 63 ? 63 : (int)k;
    if (p > (f->hi >> kk))
        return f->hi;
    if (p < -((-f->lo) >> kk))
        return f->lo;
    return lowbit_shl(p, (int)k);
}

/* ---- fast paths: the loop body is chosen once per operation ------------- */

enum lowbit_path {
    LOWBIT_PATH_RIGHT = 0,   /* deterministic mode + saturate, 1 <= s <= 62 */
    LOWBIT_PATH_SR = 1,      /* stochastic + saturate, 1 <= s <= 53 */
    LOWBIT_PATH_LEFT = 2,    /* saturate, -62 <= s <= 0: exact shift */
    LOWBIT_PATH_GENERIC = 3, /* anything else: lowbit_quantize */
    LOWBIT_PATH_EXACT = 4    /* accumulation step with no rounding (ss == 0) */
};

/* Which branch-free body rounds p * 2^-s into f (twin: rounding.rounding_path). */
static inline int lowbit_rounding_path(int64_t s, const lowbit_fmt *f)
{
    if (f->wrap)
        return LOWBIT_PATH_GENERIC;
    if (s >= -62 && s <= 0)
        return LOWBIT_PATH_LEFT;
    if (f->rounding == LOWBIT_STOCHASTIC)
        return s >= 1 && s <= 53 ? LOWBIT_PATH_SR : LOWBIT_PATH_GENERIC;
    return s >= 1 && s <= 62 ? LOWBIT_PATH_RIGHT : LOWBIT_PATH_GENERIC;
}

static inline int64_t lowbit_clamp(int64_t n, int64_t lo, int64_t hi)
{
    return n < lo ? lo : (n > hi ? hi : n);
}

/* p * 2^-s rounded by a deterministic mode, 1 <= s <= 62; bitwise, no branches. */
static inline int64_t lowbit_right_round(int64_t p, int s, int rounding)
{
    int64_t q = lowbit_floor_shift(p, s);
    int64_t r = (int64_t)((uint64_t)p & ((UINT64_C(1) << s) - 1));
    int64_t half = INT64_C(1) << (s - 1);
    int above = r > half, tie = r == half, inexact = r != 0;
    int up = ((rounding == LOWBIT_NEAREST_EVEN) & (above | (tie & (int)(q & 1))))
           | ((rounding == LOWBIT_NEAREST_AWAY) & (above | (tie & (p > 0))))
           | ((rounding == LOWBIT_TOWARD_ZERO) & (p < 0) & inexact)
           | ((rounding == LOWBIT_CEIL) & inexact);
    return q + up;
}

/* Stochastically rounded p * 2^-s for 1 <= s <= 53. */
static inline int64_t lowbit_sr_round(int64_t p, int s, uint64_t seed, uint64_t counter)
{
    int64_t q = lowbit_floor_shift(p, s);
    uint64_t t = ((uint64_t)p & ((UINT64_C(1) << s) - 1)) << (53 - s);
    return q + (lowbit_u53(seed, counter) < t);
}

static inline int64_t lowbit_right_sat(int64_t p, int s, int rounding, int64_t lo, int64_t hi)
{
    return lowbit_clamp(lowbit_right_round(p, s, rounding), lo, hi);
}

static inline int64_t lowbit_sr_sat(int64_t p, int s, int64_t lo, int64_t hi,
                                    uint64_t seed, uint64_t counter)
{
    return lowbit_clamp(lowbit_sr_round(p, s, seed, counter), lo, hi);
}

static inline int64_t lowbit_left_sat(int64_t p, int k, int64_t lo, int64_t hi)
{
    if (p > (hi >> k))
        return hi;
    if (p < -((-lo) >> k))
        return lo;
    return lowbit_shl(p, k);
}

/* Round p * 2^-s into f on a path chosen by lowbit_rounding_path (loop-invariant). */
static inline int64_t lowbit_round_on_path(int path, int64_t p, int64_t s, const lowbit_fmt *f,
                                           uint64_t seed, uint64_t counter)
{
    switch (path) {
    case LOWBIT_PATH_RIGHT:
        return lowbit_right_sat(p, (int)s, f->rounding, f->lo, f->hi);
    case LOWBIT_PATH_SR:
        return lowbit_sr_sat(p, (int)s, f->lo, f->hi, seed, counter);
    case LOWBIT_PATH_LEFT:
        return lowbit_left_sat(p, (int)-s, f->lo, f->hi);
    default:
        return lowbit_quantize(p, s + f->frac, f, seed, counter);
    }
}

/* out[i] = round(P * 2^-S) into *F for i in [0, N), P an expression of i and
 * COUNTER the stochastic counter of i: one loop per path, so every loop body is
 * branch-free and the path switch is outside the element loop. */
#define LOWBIT_ROUND_LOOP(N, P, S, F, SEED, COUNTER)                                          \
    do {                                                                                      \
        int64_t i_, n_ = (N), s_ = (S);                                                      \
        const lowbit_fmt *f_ = (F);                                                           \
        switch (lowbit_rounding_path(s_, f_)) {                                               \
        case LOWBIT_PATH_RIGHT:                                                               \
            _Pragma("omp parallel for schedule(static) if(n_ > LOWBIT_PARALLEL_MIN)")         \
            for (i_ = 0; i_ < n_; i_++) {                                                     \
                int64_t i = i_;                                                               \
                out[i] = lowbit_right_sat((P), (int)s_, f_->rounding, f_->lo, f_->hi);        \
            }                                                                                 \
            break;                                                                            \
        case LOWBIT_PATH_SR:                                                                  \
            _Pragma("omp parallel for schedule(static) if(n_ > LOWBIT_PARALLEL_MIN)")         \
            for (i_ = 0; i_ < n_; i_++) {                                                     \
                int64_t i = i_;                                                               \
                out[i] = lowbit_sr_sat((P), (int)s_, f_->lo, f_->hi, (SEED), (COUNTER));      \
            }                                                                                 \
            break;                                                                            \
        case LOWBIT_PATH_LEFT:                                                                \
            _Pragma("omp parallel for schedule(static) if(n_ > LOWBIT_PARALLEL_MIN)")         \
            for (i_ = 0; i_ < n_; i_++) {                                                     \
                int64_t i = i_;                                                               \
                out[i] = lowbit_left_sat((P), (int)-s_, f_->lo, f_->hi);                     \
            }                                                                                 \
            break;                                                                            \
        default:                                                                              \
            _Pragma("omp parallel for schedule(static) if(n_ > LOWBIT_PARALLEL_MIN)")         \
            for (i_ = 0; i_ < n_; i_++) {                                                     \
                int64_t i = i_;                                                               \
                out[i] = lowbit_quantize((P), s_ + f_->frac, f_, (SEED), (COUNTER));          \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#define LOWBIT_PARALLEL_MIN 65536 /* elements below which OpenMP is not worth it */

#endif /* LOWBIT_H */
