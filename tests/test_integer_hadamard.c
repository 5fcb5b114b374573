/* The integer online Hadamard (lm_int_hadamard) is the float rotation's matrix, exactly: on
 * random wide inputs it equals the dense product with lm_hadamard_matrix (int64, then one
 * rounding shift), for every base (1, 12, 20, 28, 40), saturates symmetrically, and scaled by
 * 1/sqrt(n) it matches lm_hadamard_rotate within float rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "integer/integer.h"
#include "kernels/hadamard.h"

static uint64_t rng_state = 0x5851F42D4C957F2Dull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static int32_t rng_wide(int bits) {
    int64_t m = (int64_t)(rng_u64() >> (64 - bits));
    if (m > INT32_MAX) m = INT32_MAX;
    return rng_u64() & 1 ? -(int32_t)m : (int32_t)m;
}

static void check_size(int n) {
    lm_hadamard *h;
    CHECK_OK(lm_hadamard_init(&h, n));
    if (!h) return;
    const int m = lm_hadamard_base(h);
    int8_t *Hn = malloc((size_t)n * n);
    int32_t *x = malloc(sizeof(int32_t) * n), *out = malloc(sizeof(int32_t) * n);
    int64_t *scratch = malloc(sizeof(int64_t) * n);
    float *xf = malloc(sizeof(float) * n);
    lm_hadamard_matrix(h, Hn);
    int bad = 0;
    double max_rel = 0.0;
    for (int t = 0; t < 6; t++) {
        const int bits = t < 4 ? 20 : 31;             /* 31 bits: sums past int32, saturating at L = 0 */
        const int L = t == 5 ? 0 : -(int)(rng_u64() % 8);
        for (int i = 0; i < n; i++) x[i] = rng_wide(bits);
        lm_int_hadamard(out, x, lm_hadamard_base_matrix(h), m, n, L, scratch);
        for (int i = 0; i < n; i++) {
            int64_t acc = 0;
            for (int j = 0; j < n; j++) acc += Hn[(size_t)i * n + j] * (int64_t)x[j];
            bad += out[i] != lm_shift_sat32(acc, L);
        }
        if (bits == 20) {                              /* against the float rotation */
            for (int i = 0; i < n; i++) xf[i] = (float)x[i];
            lm_hadamard_rotate(h, xf, 1);
            double err2 = 0.0, ref2 = 0.0;
            for (int i = 0; i < n; i++) {
                double v = ldexp((double)out[i], -L) / sqrt((double)n);
                err2 += (v - xf[i]) * (v - xf[i]);
                ref2 += (double)xf[i] * xf[i];
            }
            double rel = sqrt(err2 / ref2);
            if (rel > max_rel) max_rel = rel;
        }
    }
    CHECK(bad == 0, "n %d (m %d): %d entries differ from the dense product", n, m, bad);
    /* integer rounding of 2^L (<= 2^7 LSB on ~2^20 * sqrt(n) values) plus float32 rounding */
    CHECK(max_rel < 1e-4, "n %d: relative error %.3g against lm_hadamard_rotate", n, max_rel);
    free(Hn); free(x); free(out); free(scratch); free(xf);
    lm_hadamard_free(h);
}

int main(void) {
    static const int sizes[] = {1, 8, 128, 12, 192, 20, 160, 28, 224, 40, 320, 640};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_size(sizes[i]);
    /* symmetric saturation: all +max through H_1 (x) H_8 at L = 0 gives 8 * (2^31 - 1) in entry 0 */
    int32_t x[8], out[8];
    int64_t scratch[8];
    const int8_t one = 1;
    for (int i = 0; i < 8; i++) x[i] = INT32_MAX;
    lm_int_hadamard(out, x, &one, 1, 8, 0, scratch);
    CHECK(out[0] == INT32_MAX && out[1] == 0, "saturation: %d %d", out[0], out[1]);
    for (int i = 0; i < 8; i++) x[i] = -INT32_MAX;
    lm_int_hadamard(out, x, &one, 1, 8, 0, scratch);
    CHECK(out[0] == -INT32_MAX, "negative saturation: %d", out[0]);
    return test_finish();
}
