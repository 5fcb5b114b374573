/* The online Hadamard of out_proj's input in integers (integer.h): an exact +-1 transform, then
 * one rounding shift. The same matrix as the float rotation (kernels/hadamard.h). */
#include "integer/integer.h"

#include <assert.h>

#include "kernels/hadamard.h"

LM_FWHT_DEFINE(fwht_i64, int64_t)

void lm_int_hadamard(int32_t *out, const int32_t *x, const int8_t *Hm, int m, int n, int L, int64_t *scratch) {
    assert(m >= 1 && m <= LM_INT_HADAMARD_MAX_BASE && n % m == 0);
    const int p = n / m;
    assert((p & (p - 1)) == 0);
    for (int i = 0; i < n; i++) scratch[i] = x[i];
    for (int b = 0; b < m; b++) fwht_i64(scratch + (size_t)b * p, p);
    /* entry a of every block: v[b] <- sum_b' H_m[b][b'] v[b'] */
    for (int a = 0; a < p; a++) {
        int64_t v[LM_INT_HADAMARD_MAX_BASE];
        for (int b = 0; b < m; b++) {
            int64_t acc = 0;
            for (int bb = 0; bb < m; bb++) acc += Hm[b * m + bb] > 0 ? scratch[(size_t)bb * p + a] : -scratch[(size_t)bb * p + a];
            v[b] = acc;
        }
        for (int b = 0; b < m; b++) out[(size_t)b * p + a] = lm_shift_sat32(v[b], L);
    }
}
