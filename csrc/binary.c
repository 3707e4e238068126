/*
 * binary.c -- binary and ternary kernels: cast, bit packing, XNOR-popcount matmul.
 * Semantics: numerics/reference/binary.py and docs/formats.md.
 */
#include "lowbit.h"


#define LOWBIT_DEFINE_BINARY_CAST(NAME, T)                                        \
    int NAME(int64_t *out, const T *x, int64_t n)                                 \
    {                                                                             \
        int64_t i, nans = 0;                                                      \
        _Pragma("omp parallel for schedule(static) reduction(+:nans) if(n > LOWBIT_PARALLEL_MIN)") \
        for (i = 0; i < n; i++) {                                                 \
            nans += x[i] != x[i];                                                 \
            out[i] = x[i] >= 0 ? 1 : -1;                                          \
        }                                                                         \
        return nans ? LOWBIT_ERR_NAN : LOWBIT_OK;                                 \
    }

LOWBIT_DEFINE_BINARY_CAST(lowbit_binary_cast_f64, double)
LOWBIT_DEFINE_BINARY_CAST(lowbit_binary_cast_f32, float)

#define LOWBIT_DEFINE_TERNARY_CAST(NAME, T)                                       \
    int NAME(int64_t *out, const T *x, int64_t n, double threshold)               \
    {                                                                             \
        int64_t i, nans = 0;                                                      \
        _Pragma("omp parallel for schedule(static) reduction(+:nans) if(n > LOWBIT_PARALLEL_MIN)") \
        for (i = 0; i < n; i++) {                                                 \
            double v = (double)x[i];                                              \
            nans += v != v;                                                       \
            out[i] = fabs(v) > threshold ? (v > 0 ? 1 : -1) : 0;                  \
        }                                                                         \
        return nans ? LOWBIT_ERR_NAN : LOWBIT_OK;                                 \
    }

LOWBIT_DEFINE_TERNARY_CAST(lowbit_ternary_cast_f64, double)
LOWBIT_DEFINE_TERNARY_CAST(lowbit_ternary_cast_f32, float)

void lowbit_pack_bits(uint64_t *words, const int64_t *codes, int64_t rows, int64_t K,
                      int64_t W, int64_t value)
{
    int64_t r;
#pragma omp parallel for schedule(static) if (rows * K > LOWBIT_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        const int64_t *c = codes + r * K;
        for (int64_t w = 0; w < W; w++) {
            uint64_t word = 0;
            int64_t end = K - w * 64 < 64 ? K - w * 64 : 64;
            for (int64_t b = 0; b < end; b++)
                word |= (uint64_t)(c[w * 64 + b] == value) << b;
            words[r * W + w] = word;
        }
    }
}

void lowbit_pack_cols(uint64_t *words, const int64_t *codes, int64_t K, int64_t N,
                      int64_t W, int64_t value)
{
    int64_t j0;
    const int64_t block = 256; /* columns per task; for each word, 64 rows of the block
                                  fold into a contiguous temporary, then are stored */
#pragma omp parallel for schedule(static) if (K * N > LOWBIT_PARALLEL_MIN)
    for (j0 = 0; j0 < N; j0 += block) {
        uint64_t tmp[256];
        int64_t width = N - j0 < block ? N - j0 : block;
        for (int64_t w = 0; w < W; w++) {
            int64_t rows = K - w * 64 < 64 ? K - w * 64 : 64;
            for (int64_t j = 0; j < width; j++)
                tmp[j] = 0;
            for (int64_t bit = 0; bit < rows; bit++) {
                const int64_t *row = codes + (w * 64 + bit) * N + j0;
                for (int64_t j = 0; j < width; j++)
                    tmp[j] |= (uint64_t)(row[j] == value) << bit;
            }
            for (int64_t j = 0; j < width; j++)
                words[(j0 + j) * W + w] = tmp[j];
        }
    }
}

static inline int64_t popcount64(uint64_t w)
{
    return __builtin_popcountll(w);
}

void lowbit_binary_matmul(int64_t *out, const uint64_t *a, const uint64_t *bt,
                          int64_t M, int64_t N, int64_t W, int64_t K)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (M * N * W > 4096)
    for (i = 0; i < M; i++) {
        const uint64_t *ar = a + i * W;
        for (int64_t j = 0; j < N; j++) {
            const uint64_t *br = bt + j * W;
            int64_t d = 0;
            for (int64_t w = 0; w < W; w++)
                d += popcount64(ar[w] ^ br[w]);
            out[i * N + j] = K - 2 * d;
        }
    }
}

void lowbit_ternary_matmul(int64_t *out, const uint64_t *ap, const uint64_t *an,
                           const uint64_t *btp, const uint64_t *btn,
                           int64_t M, int64_t N, int64_t W)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (M * N * W > 4096)
    for (i = 0; i < M; i++) {
        const uint64_t *pr = ap + i * W, *nr = an + i * W;
        for (int64_t j = 0; j < N; j++) {
            const uint64_t *pc = btp + j * W, *nc = btn + j * W;
            int64_t d = 0;
            for (int64_t w = 0; w < W; w++)
                d += popcount64((pr[w] & pc[w]) | (nr[w] & nc[w]))
                     - popcount64((pr[w] & nc[w]) | (nr[w] & pc[w]));
            out[i * N + j] = d;
        }
    }
}
