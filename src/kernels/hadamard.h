/* Hadamard transforms of the sizes the Mamba2 family needs (docs/quantization.md section 2).
 *
 * A Hadamard matrix H_n has entries +-1 and H_n H_n^T = n I, so Q = H_n / sqrt(n) is
 * orthogonal. We build H_n for n = m * 2^k as the Kronecker product
 *     H_n = H_m (x) H_{2^k}        m in {1, 12, 20, 28, 40}
 * where H_{2^k} is the Sylvester (Walsh-Hadamard) matrix, H_{2^k}[a][a'] = (-1)^popcount(a & a'),
 * and H_m is generated, never typed in:
 *     H_12 Paley I  (q = 11),  H_20 Paley I (q = 19),  H_28 Paley II (q = 13),
 *     H_40 = [[H_20, H_20], [H_20, -H_20]] (Sylvester doubling of H_20).
 * When several m fit (n = 5 * 2^k) the largest is used, as the accelerator does for
 * d_inner = 5120 = 40 x 128 (a 7-stage radix-2 transform over 128 points and a 40 x 40 +-1 product).
 *
 * Index layout: entry i of a vector is (b, a) with i = b * 2^k + a. Applying H_n means a fast
 * Walsh-Hadamard transform over each contiguous block of 2^k entries, then the m x m +-1
 * matrix across blocks (entry a of every block). */
#ifndef LM_KERNELS_HADAMARD_H
#define LM_KERNELS_HADAMARD_H
#include <stdint.h>
#include "lightmamba.h"

typedef struct lm_hadamard lm_hadamard;

/* Builds the transform of size n; LM_ERR_UNSUPPORTED naming n when n is not m * 2^k with m above. */
lm_status lm_hadamard_init(lm_hadamard **h, int n);
void lm_hadamard_free(lm_hadamard *h);
int lm_hadamard_size(const lm_hadamard *h);
/* The factorization n = m * 2^k that was chosen. */
int lm_hadamard_base(const lm_hadamard *h); /* m */
/* The m x m +-1 factor H_m, row-major (the HTU's small matrix unit). */
const int8_t *lm_hadamard_base_matrix(const lm_hadamard *h);

/* x[t][:] <- H_n x[t][:] / sqrt(n), for t < T, in place.                    x [T, n] */
void lm_hadamard_rotate(const lm_hadamard *h, float *x, int T);

/* The dense +-1 matrix H_n, row-major: out[i * n + j] = H_n[i][j].          out [n, n] */
void lm_hadamard_matrix(const lm_hadamard *h, int8_t *out);

/* Defines static void NAME(TYPE *x, int p): x <- H_p x over one block of p = 2^k values, log2(p)
 * radix-2 butterfly stages. One body for the float rotation and the integer datapath's exact
 * int64 transform (integer/hadamard.c).                                         x [p] */
#define LM_FWHT_DEFINE(name, type)                       \
    static void name(type *x, int p) {                   \
        for (int len = 1; len < p; len <<= 1)            \
            for (int i = 0; i < p; i += 2 * len)         \
                for (int j = i; j < i + len; j++) {      \
                    type a = x[j], b = x[j + len];       \
                    x[j] = a + b;                        \
                    x[j + len] = a - b;                  \
                }                                        \
    }

#endif
