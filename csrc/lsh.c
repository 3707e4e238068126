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
