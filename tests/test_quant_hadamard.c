/* Hadamard transforms: every size the Mamba2 family and the shared models need is a
 * Hadamard matrix (H H^T = n I, exactly, in integers), the fast transform equals the dense
 * product, and sizes without a construction are refused with a clear error. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/hadamard.h"

/* H H^T == n I exactly: rows packed as bitsets (bit set = -1), dot(i, j) = n - 2 popcount(r_i ^ r_j). */
static int check_orthogonal(const int8_t *H, int n) {
    int words = (n + 63) / 64;
    uint64_t *bits = calloc((size_t)n * words, sizeof *bits);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (H[(size_t)i * n + j] != 1 && H[(size_t)i * n + j] != -1) {
                free(bits);
                return 0;
            }
            if (H[(size_t)i * n + j] < 0) bits[(size_t)i * words + j / 64] |= 1ull << (j % 64);
        }
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        for (int j = i; j < n && ok; j++) {
            int diff = 0;
            for (int w = 0; w < words; w++) diff += __builtin_popcountll(bits[(size_t)i * words + w] ^ bits[(size_t)j * words + w]);
            int dot = n - 2 * diff;
            if (dot != (i == j ? n : 0)) ok = 0;
        }
    free(bits);
    return ok;
}

static void test_size(int n, int expect_base) {
    lm_hadamard *h = NULL;
    CHECK_OK(lm_hadamard_init(&h, n));
    if (!h) return;
    CHECK(lm_hadamard_size(h) == n, "size %d", n);
    CHECK(lm_hadamard_base(h) == expect_base, "n=%d: base %d, expected %d", n, lm_hadamard_base(h), expect_base);
    int8_t *H = malloc((size_t)n * n);
    lm_hadamard_matrix(h, H);
    CHECK(check_orthogonal(H, n), "n=%d: H H^T != n I", n);

    /* Rotating the identity gives, row i, H e_i / sqrt(n) = column i of H scaled: exact, since
     * each output is a sum of +-1 (an exact integer in float) times the one scale. */
    float scale = (float)(1.0 / sqrt((double)n));
    float *x = calloc((size_t)n * n, sizeof *x);
    for (int i = 0; i < n; i++) x[(size_t)i * n + i] = 1.0f;
    lm_hadamard_rotate(h, x, n);
    int exact = 1;
    for (int i = 0; i < n && exact; i++)
        for (int j = 0; j < n; j++)
            if (x[(size_t)i * n + j] != (float)H[(size_t)j * n + i] * scale) {
                exact = 0;
                break;
            }
    CHECK(exact, "n=%d: fast transform of the identity != dense H^T / sqrt(n)", n);

    /* Random vectors: fast == dense product (double reference), and the norm is preserved. */
    int T = 3;
    float *v = malloc((size_t)T * n * sizeof *v);
    double *ref = malloc((size_t)T * n * sizeof *ref);
    srand(n);
    for (int i = 0; i < T * n; i++) v[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
    double norm_in = 0, norm_out = 0, max_err = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += H[(size_t)i * n + j] * (double)v[(size_t)t * n + j];
            ref[(size_t)t * n + i] = s / sqrt((double)n);
            norm_in += (double)v[(size_t)t * n + i] * v[(size_t)t * n + i];
        }
    lm_hadamard_rotate(h, v, T);
    for (int i = 0; i < T * n; i++) {
        double e = fabs(v[i] - ref[i]);
        if (e > max_err) max_err = e;
        norm_out += (double)v[i] * v[i];
    }
    CHECK(max_err < 1e-5, "n=%d: fast vs dense max error %g", n, max_err);
    CHECK(fabs(norm_out - norm_in) < 1e-4 * norm_in, "n=%d: norm %g -> %g", n, norm_in, norm_out);

    free(v);
    free(ref);
    free(x);
    free(H);
    lm_hadamard_free(h);
}

int main(void) {
    /* The generated bases themselves, then every size we need. */
    test_size(1, 1);
    test_size(2, 1);
    test_size(12, 12);
    test_size(20, 20);
    test_size(28, 28);
    test_size(40, 40);
    test_size(56, 28);
    /* shared models: d_model 128, 384; d_inner 256, 768 */
    test_size(128, 1);
    test_size(256, 1);
    test_size(384, 12);
    /* the Mamba2 family: d_model and d_inner of 130m .. 2.7b */
    test_size(768, 12);
    test_size(1024, 1);
    test_size(1536, 12);
    test_size(2048, 1);
    test_size(2560, 40);
    test_size(3072, 12);
    test_size(4096, 1);
    test_size(5120, 40);

    /* Sizes with no construction here: a clear error, no handle. */
    int bad[] = {36 * 64, 3, 24 * 5 * 7, 0, -8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_hadamard *h = (lm_hadamard *)1;
        lm_status s = lm_hadamard_init(&h, bad[i]);
        CHECK(s != LM_OK && h == NULL, "size %d accepted", bad[i]);
        CHECK(strstr(lm_last_error(), "size") != NULL, "size %d: message '%s'", bad[i], lm_last_error());
    }
    lm_hadamard_free(NULL);
    return test_finish();
}
