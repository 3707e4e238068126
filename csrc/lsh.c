/* LSH kernels: the twins of emulators/_numba/lsh.py; semantics in numerics/lsh.py. */

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
