/* Per-sample sparse products: the twins of emulators/_numba/sparse.py; semantics in
 * numerics/reference/sparse.py. float32 and int64 from one template; -ffp-contract=off keeps
 * every float32 product rounded before its addition. */

#include "lowbit.h"

#define LOWBIT_SPARSE(SUFFIX, T)                                                              \
    void lowbit_sparse_dots_##SUFFIX(T *out, const T *x, const T *w, int64_t B, int64_t d,   \
                                     const int64_t *offsets, const int64_t *ids)              \
    {                                                                                         \
        int64_t b;                                                                            \
        _Pragma("omp parallel for schedule(dynamic, 8) if (offsets[B] * d > 65536)")         \
        for (b = 0; b < B; b++) {                                                             \
            const T *xr = x + b * d;                                                          \
            int64_t k = offsets[b];                                                           \
            /* four dots at once: independent chains (latency hidden), each in j order */     \
            for (; k + 4 <= offsets[b + 1]; k += 4) {                                         \
                const T *w0 = w + ids[k] * d, *w1 = w + ids[k + 1] * d;                       \
                const T *w2 = w + ids[k + 2] * d, *w3 = w + ids[k + 3] * d;                   \
                T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                             \
                for (int64_t j = 0; j < d; j++) {                                             \
                    s0 += xr[j] * w0[j];                                                      \
                    s1 += xr[j] * w1[j];                                                      \
                    s2 += xr[j] * w2[j];                                                      \
                    s3 += xr[j] * w3[j];                                                      \
                }                                                                             \
                out[k] = s0;                                                                  \
                out[k + 1] = s1;                                                              \
                out[k + 2] = s2;                                                              \
                out[k + 3] = s3;                                                              \
            }                                                                                 \
            for (; k < offsets[b + 1]; k++) {                                                 \
                const T *wr = w + ids[k] * d;                                                 \
                T s = 0;                                                                      \
                for (int64_t j = 0; j < d; j++)                                               \
                    s += xr[j] * wr[j];                                                       \
                out[k] = s;                                                                   \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    void lowbit_sparse_grad_input_##SUFFIX(T *out, const T *g, const T *w, int64_t B,        \
                                           int64_t d, const int64_t *offsets,                 \
                                           const int64_t *ids)                                \
    {                                                                                         \
        int64_t b;                                                                            \
        _Pragma("omp parallel for schedule(dynamic, 8) if (offsets[B] * d > 65536)")         \
        for (b = 0; b < B; b++) {                                                             \
            T *o = out + b * d;                                                               \
            for (int64_t j = 0; j < d; j++)                                                   \
                o[j] = 0;                                                                     \
            for (int64_t k = offsets[b]; k < offsets[b + 1]; k++) {                           \
                const T *wr = w + ids[k] * d;                                                 \
                const T gk = g[k];                                                            \
                for (int64_t j = 0; j < d; j++)                                               \
                    o[j] += gk * wr[j];                                                       \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
                                                                                              \
    void lowbit_sparse_grad_rows_##SUFFIX(T *out, const T *g, const T *x, int64_t U,         \
                                          int64_t d, const int64_t *sample,                   \
                                          const int64_t *row_offsets, const int64_t *order)   \
    {                                                                                         \
        int64_t u;                                                                            \
        _Pragma("omp parallel for schedule(dynamic, 8) if (row_offsets[U] * d > 65536)")     \
        for (u = 0; u < U; u++) {                                                             \
            T *o = out + u * d;                                                               \
            for (int64_t j = 0; j < d; j++)                                                   \
                o[j] = 0;                                                                     \
            for (int64_t e = row_offsets[u]; e < row_offsets[u + 1]; e++) {                   \
                const int64_t k = order[e];                                                   \
                const T *xr = x + sample[k] * d;                                              \
                const T gk = g[k];                                                            \
                for (int64_t j = 0; j < d; j++)                                               \
                    o[j] += gk * xr[j];                                                       \
            }                                                                                 \
        }                                                                                     \
    }

LOWBIT_SPARSE(f32, float)
LOWBIT_SPARSE(i64, int64_t)
