/* Hadamard matrices by construction (Sylvester, Paley I, Paley II) and the fast transform. */
#include "kernels/hadamard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

#define HADAMARD_MAX_BASE 40

struct lm_hadamard {
    int n;        /* m * p */
    int m;        /* order of the generated factor: 1, 12, 20, 28 or 40 */
    int p;        /* 2^k: the Walsh-Hadamard factor */
    float scale;  /* 1 / sqrt(n) */
    int8_t base[HADAMARD_MAX_BASE * HADAMARD_MAX_BASE]; /* H_m, row-major */
};

/* chi[a] = Legendre symbol (a / q) for a prime q: 0 at 0, +1 on the nonzero squares, -1 elsewhere. */
static void legendre_table(int q, int *chi) {
    for (int a = 0; a < q; a++) chi[a] = -1;
    chi[0] = 0;
    for (int a = 1; a < q; a++) chi[a * a % q] = 1;
}

/* Paley I, q prime, q = 3 (mod 4): order q + 1.
 * Jacobsthal matrix J[i][j] = chi(j - i) is skew-symmetric (chi(-1) = -1), and
 * S = [[0, 1^T], [-1, J]] is a skew conference matrix (S^T = -S, S S^T = q I), so
 * H = I + S has H H^T = I + S + S^T + S S^T = (q + 1) I. */
static void paley1(int q, int8_t *H) {
    int chi[64], m = q + 1;
    legendre_table(q, chi);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            int s;
            if (i == 0) s = j == 0 ? 0 : 1;
            else if (j == 0) s = -1;
            else s = chi[((j - 1) - (i - 1) + q) % q];
            H[i * m + j] = (int8_t)(s + (i == j));
        }
}

/* Paley II, q prime, q = 1 (mod 4): order 2 (q + 1).
 * J is symmetric here, C = [[0, 1^T], [1, J]] is a symmetric conference matrix (C C^T = q I), and
 * H = C (x) [[1, -1], [-1, -1]] + I (x) [[1, 1], [1, -1]] is Hadamard: the zero diagonal of C
 * is exactly where the identity term puts its +-1 block. */
static void paley2(int q, int8_t *H) {
    int chi[64], c = q + 1, m = 2 * c;
    legendre_table(q, chi);
    static const int8_t off[2][2] = {{1, -1}, {-1, -1}}, diag[2][2] = {{1, 1}, {1, -1}};
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) {
            int cij;
            if (i == j) cij = 0;
            else if (i == 0 || j == 0) cij = 1;
            else cij = chi[((j - 1) - (i - 1) + q) % q];
            for (int r = 0; r < 2; r++)
                for (int s = 0; s < 2; s++)
                    H[(2 * i + r) * m + 2 * j + s] = (int8_t)(cij ? cij * off[r][s] : diag[r][s]);
        }
}

/* [[A, A], [A, -A]]: order 2m from order m. */
static void sylvester_double(const int8_t *A, int m, int8_t *H) {
    for (int i = 0; i < 2 * m; i++)
        for (int j = 0; j < 2 * m; j++) {
            int8_t a = A[(i % m) * m + j % m];
            H[i * 2 * m + j] = (i >= m && j >= m) ? (int8_t)-a : a;
        }
}

static void build_base(int m, int8_t *H) {
    switch (m) {
    case 1: H[0] = 1; break;
    case 12: paley1(11, H); break;
    case 20: paley1(19, H); break;
    case 28: paley2(13, H); break;
    case 40: {
        int8_t h20[20 * 20];
        paley1(19, h20);
        sylvester_double(h20, 20, H);
        break;
    }
    }
}

lm_status lm_hadamard_init(lm_hadamard **out, int n) {
    *out = NULL;
    if (n < 1) return lm_fail(LM_ERR_ARG, "Hadamard transform: size %d must be positive", n);
    /* Largest base first: 40 before 20 for n = 5 * 2^k (the accelerator's 5120 = 40 x 128). */
    static const int bases[] = {40, 28, 20, 12, 1};
    int m = 0;
    for (size_t i = 0; i < sizeof bases / sizeof bases[0] && !m; i++) {
        int b = bases[i];
        if (n % b == 0 && ((n / b) & (n / b - 1)) == 0) m = b;
    }
    if (!m)
        return lm_fail(LM_ERR_UNSUPPORTED,
                       "Hadamard transform: size %d is not 2^k times 1, 12, 20, 28 or 40 (no construction for it)", n);
    lm_hadamard *h;
    LM_TRY(lm_calloc(&h, 1, sizeof *h, "Hadamard transform"));
    h->n = n;
    h->m = m;
    h->p = n / m;
    h->scale = (float)(1.0 / sqrt((double)n));
    build_base(m, h->base);
    *out = h;
    return LM_OK;
}

void lm_hadamard_free(lm_hadamard *h) { free(h); }
int lm_hadamard_size(const lm_hadamard *h) { return h->n; }
int lm_hadamard_base(const lm_hadamard *h) { return h->m; }
const int8_t *lm_hadamard_base_matrix(const lm_hadamard *h) { return h->base; }

LM_FWHT_DEFINE(fwht, float)

/* x[b][a] <- sum_b' H_m[b][b'] x[b'][a]: the +-1 product across the m blocks, done in
 * column chunks so the scratch is a fixed stack buffer. The inner loops always run the whole
 * chunk width (a short last chunk is padded with zeros and only its c columns stored), so the
 * compiler vectorises them; each output is still 0 +- x[0][a] +- x[1][a] ... in that order, the
 * same float result as a loop over c. Compiled for AVX-512, AVX2 and baseline x86-64 (the
 * online rotation runs once per layer per decoded token).                      x [m, p] */
enum { BASE_CHUNK = 64 };
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void base_product(const int8_t *H, int m, float *x, int p) {
    float in[HADAMARD_MAX_BASE][BASE_CHUNK], acc[BASE_CHUNK];
    for (int a0 = 0; a0 < p; a0 += BASE_CHUNK) {
        int c = p - a0 < BASE_CHUNK ? p - a0 : BASE_CHUNK;
        for (int b = 0; b < m; b++) {
            memcpy(in[b], x + (size_t)b * p + a0, (size_t)c * sizeof(float));
            memset(in[b] + c, 0, (size_t)(BASE_CHUNK - c) * sizeof(float));
        }
        for (int b = 0; b < m; b++) {
            for (int a = 0; a < BASE_CHUNK; a++) acc[a] = 0.0f;
            for (int bb = 0; bb < m; bb++) {
                if (H[b * m + bb] > 0)
                    for (int a = 0; a < BASE_CHUNK; a++) acc[a] += in[bb][a];
                else
                    for (int a = 0; a < BASE_CHUNK; a++) acc[a] -= in[bb][a];
            }
            memcpy(x + (size_t)b * p + a0, acc, (size_t)c * sizeof(float));
        }
    }
}

void lm_hadamard_rotate(const lm_hadamard *h, float *x, int T) {
    const int n = h->n, p = h->p, m = h->m;
    for (int t = 0; t < T; t++) {
        float *xt = x + (size_t)t * n;
        for (int b = 0; b < m; b++) fwht(xt + (size_t)b * p, p);
        if (m > 1) base_product(h->base, m, xt, p);
        for (int i = 0; i < n; i++) xt[i] *= h->scale;
    }
}

void lm_hadamard_matrix(const lm_hadamard *h, int8_t *out) {
    const int n = h->n, p = h->p, m = h->m;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int b = i / p, a = i % p, bb = j / p, aa = j % p;
            int walsh = (__builtin_popcount((unsigned)(a & aa)) & 1) ? -1 : 1;
            out[(size_t)i * n + j] = (int8_t)(h->base[b * m + bb] * walsh);
        }
}
