/* LSH kernels: the twins of emulators/_numba/lsh.py; semantics in numerics/lsh.py. */

#include <stdlib.h>

#include "lowbit.h"

void lowbit_simhash(int64_t *out, const int64_t *codes, int64_t n, int64_t dim,
                    const int64_t *idx, const int64_t *sign, int64_t m, int64_t K, int64_t L)
{
    int64_t r;
#pragma omp parallel for schedule(static) if (n * K * L * m > 65536)
    for (r = 0; r < n; r++) {
        const int64_t *row = codes + r * dim;
        for (int64_t t = 0; t < L; t++) {
            int64_t bucket = 0;
            for (int64_t j = 0; j < K; j++) {
                const int64_t h = t * K + j;
                const int64_t *ih = idx + h * m, *sh = sign + h * m;
                int64_t s = 0;
                for (int64_t q = 0; q < m; q++)
                    s += sh[q] * row[ih[q]];
                if (s < 0)
                    bucket |= (int64_t)1 << (K - 1 - j);
            }
            out[r * L + t] = bucket;
        }
    }
}

int lowbit_dwta(int64_t *out, const int64_t *codes, int64_t n, int64_t dim,
                const int64_t *bins, int64_t n_bins, int64_t width,
                const int64_t *probes, int64_t n_probes, int64_t K, int64_t L, int64_t shift)
{
    int status = LOWBIT_OK;
#pragma omp parallel if (n * n_bins * width > 65536)
    {
        int64_t *raw = malloc((size_t)n_bins * sizeof *raw);
        if (raw == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        }
        int64_t r;
#pragma omp for schedule(static)
        for (r = 0; r < n; r++) {
            if (raw == NULL)
                continue;
            const int64_t *row = codes + r * dim;
            for (int64_t b = 0; b < n_bins; b++) {
                int64_t pos = -1, best = 0;
                for (int64_t i = 0; i < width; i++) {
                    const int64_t v = row[bins[b * width + i]];
                    if (v != 0 && (pos < 0 || v > best)) {
                        best = v;
                        pos = i;
                    }
                }
                raw[b] = pos;
            }
            for (int64_t t = 0; t < L; t++) {
                int64_t bucket = 0;
                for (int64_t j = 0; j < K; j++) {
                    const int64_t h = t * K + j;
                    int64_t code = raw[h];
                    if (code < 0) {
                        code = 0;
                        for (int64_t c = 0; c < n_probes; c++) {
                            const int64_t q = raw[probes[h * n_probes + c]];
                            if (q >= 0) {
                                code = q;
                                break;
                            }
                        }
                    }
                    bucket += code << ((K - 1 - j) * shift);
                }
                out[r * L + t] = bucket;
            }
        }
        free(raw);
    }
    return status;
}

/* Bucket unions: per query b, the distinct ids of its L buckets and of its extra ids,
 * ascending, as CSR. Two passes over the queries (count, then fill and sort), each thread
 * with its own stamp array of N entries (stamp[i] == b: id i already taken for query b). */
static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t union_pass(const int64_t *offsets, const int64_t *ids, int64_t nb1, int64_t N,
                          const int64_t *q, int64_t L, const int64_t *eoff, const int64_t *eids,
                          int64_t b, int64_t *stamp, int64_t *out)
{
    int64_t c = 0;
    for (int64_t t = 0; t < L; t++) {
        const int64_t qb = q[b * L + t];
        for (int64_t e = offsets[t * nb1 + qb]; e < offsets[t * nb1 + qb + 1]; e++) {
            const int64_t i = ids[t * N + e];
            if (stamp[i] != b) {
                stamp[i] = b;
                if (out)
                    out[c] = i;
                c++;
            }
        }
    }
    for (int64_t e = eoff[b]; e < eoff[b + 1]; e++) {
        const int64_t i = eids[e];
        if (stamp[i] != b) {
            stamp[i] = b;
            if (out)
                out[c] = i;
            c++;
        }
    }
    return c;
}

int lowbit_bucket_union(int64_t *out_off, int64_t *out, int64_t out_cap, const int64_t *offsets,
                        const int64_t *ids, int64_t L, int64_t nb1, int64_t N, const int64_t *q,
                        int64_t B, const int64_t *eoff, const int64_t *eids)
{
    int status = LOWBIT_OK;
    out_off[0] = 0;
#pragma omp parallel if (B > 16)
    {
        int64_t *stamp = malloc((size_t)(N > 0 ? N : 1) * sizeof *stamp);
        if (stamp == NULL) {
#pragma omp atomic write
            status = LOWBIT_ERR_NOMEM;
        } else {
            for (int64_t i = 0; i < N; i++)
                stamp[i] = -1;
        }
        int64_t b;
#pragma omp for schedule(static)
        for (b = 0; b < B; b++)
            if (stamp)
                out_off[b + 1] = union_pass(offsets, ids, nb1, N, q, L, eoff, eids, b, stamp,
                                            NULL);
#pragma omp single
        {
            for (int64_t k = 0; k < B; k++)
                out_off[k + 1] += out_off[k];
            if (out_off[B] > out_cap)
                status = LOWBIT_ERR_NOMEM;
        }
        if (stamp) {
            for (int64_t i = 0; i < N; i++)
                stamp[i] = -1;
        }
#pragma omp for schedule(static)
        for (b = 0; b < B; b++) {
            if (stamp == NULL || status != LOWBIT_OK)
                continue;
            const int64_t n = union_pass(offsets, ids, nb1, N, q, L, eoff, eids, b, stamp,
                                         out + out_off[b]);
            qsort(out + out_off[b], (size_t)n, sizeof *out, cmp_i64);
        }
        free(stamp);
    }
    return status;
}
