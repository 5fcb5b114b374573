/* The float32 operators of a Mamba2 block (shapes in ops.h). Plain loops: the chunk's
 * heavy work is in the linear layers (GEMM in src/kernels); these are O(T * width). */
#include "model/ops.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus with its default threshold: x itself above 20. */
static inline float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void rmsnorm_forward(float *out, const float *x, const float *w, int T, int D, float eps) {
    assert(D > 0 && T >= 0);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * D;
        float *ot = out + (size_t)t * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++) ss += (double)xt[i] * xt[i];
        float scale = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++) ot[i] = xt[i] * scale * w[i];
    }
}

void linear_forward(float *y, const float *x, const lm_linear *L, int T, lm_pool *pool, lm_qact *act) {
    if (L->kind == LM_LINEAR_INT) {
        /* Integer layer (kernels.h contract): activations quantized per token with a power-of-two
         * exponent per 8 channels, then the integer product. The session sized act for this layer,
         * so neither call can fail. */
        assert(act && act->K == L->cols && act->abits == L->abits && act->wbits == L->q.wbits && T <= act->max_T);
        lm_status s = lm_quantize_act(act, x, T);
        if (s == LM_OK) s = lm_qlinear(y, act, &L->q, pool);
        assert(s == LM_OK);
        (void)s;
    } else {
        assert(L->kind == LM_LINEAR_F32 && L->w);
        lm_matmul_f32(y, x, L->w, T, L->cols, L->rows, pool);
    }
    if (L->bias)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < L->rows; o++) y[(size_t)t * L->rows + o] += L->bias[o];
}

void conv1d_silu_forward(float *out, float *state, const float *in, int in_stride,
                         const float *w, const float *b, int T, int C, int W) {
    assert(W >= 1 && C > 0 && T >= 0);
    for (int t = 0; t < T; t++) {
        float *ot = out + (size_t)t * C;
        for (int c = 0; c < C; c++) ot[c] = b ? b[c] : 0.0f;
        /* tap k reads input row t - (W-1) + k: from the state while that is < 0 */
        for (int k = 0; k < W; k++) {
            int src = t - (W - 1) + k;
            const float *row = src < 0 ? state + (size_t)(src + W - 1) * C : in + (size_t)src * in_stride;
            for (int c = 0; c < C; c++) ot[c] += w[(size_t)c * W + k] * row[c];
        }
        for (int c = 0; c < C; c++) ot[c] = silu(ot[c]);
    }
    /* The new state is the last W-1 rows of [state ; in]. */
    int keep = W - 1;
    if (keep == 0 || T == 0) return;
    if (T < keep) memmove(state, state + (size_t)T * C, (size_t)(keep - T) * C * sizeof(float));
    for (int r = (T < keep ? keep - T : 0); r < keep; r++) {
        int src = T - keep + r;
        memcpy(state + (size_t)r * C, in + (size_t)src * in_stride, (size_t)C * sizeof(float));
    }
}

/* One row of the state, h[n] = dA*h[n] + xdt*B[n], returning sum_n h[n]*C[n].
 * Sixteen partial sums so the compiler can vectorize the reduction. */
static inline float ssm_row(float *restrict h, const float *restrict B, const float *restrict C, float dA, float xdt, int N) {
    float acc[16] = {0};
    int n = 0;
    for (; n + 16 <= N; n += 16)
        for (int j = 0; j < 16; j++) {
            float v = dA * h[n + j] + xdt * B[n + j];
            h[n + j] = v;
            acc[j] += v * C[n + j];
        }
    for (; n < N; n++) {
        float v = dA * h[n] + xdt * B[n];
        h[n] = v;
        acc[0] += v * C[n];
    }
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* Loop order: per head, per state row p, over the tokens, so the row h[hd][p][:] stays in
 * L1 for the whole chunk (token-major order would stream the whole state through the cache
 * once per token). Compiled for AVX-512, AVX2+FMA and baseline x86-64; the loader picks one
 * at run time (this is the prefill's hottest loop outside the GEMMs). */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void ssm_forward(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                 const lm_layer *L, const lm_config *cfg, int T, int h0, int h1) {
    enum { TB = 64 }; /* tokens per block of precomputed dt, dA */
    const int H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int d_inner = cfg->d_inner, C = d_inner + 2 * G * N, heads_per_group = H / G;
    assert(0 <= h0 && h0 <= h1 && h1 <= H && H % G == 0);
    float dt[TB], dA[TB];
    for (int hd = h0; hd < h1; hd++) {
        const int g = hd / heads_per_group;
        const float Dh = L->D[hd];
        for (int t0 = 0; t0 < T; t0 += TB) {
            const int nt = T - t0 < TB ? T - t0 : TB;
            for (int t = 0; t < nt; t++) {
                float d = softplus(dt_raw[(size_t)(t0 + t) * dt_stride + hd] + L->dt_bias[hd]);
                dt[t] = fminf(fmaxf(d, cfg->dt_limit_min), cfg->dt_limit_max);
                dA[t] = expf(dt[t] * L->A[hd]);
            }
            for (int p = 0; p < P; p++) {
                float *h = state + ((size_t)hd * P + p) * N;
                for (int t = 0; t < nt; t++) {
                    const float *x = xbc + (size_t)(t0 + t) * C;
                    const float *B = x + d_inner + (size_t)g * N, *Cg = x + d_inner + (size_t)(G + g) * N;
                    const float xp = x[hd * P + p];
                    y[(size_t)(t0 + t) * d_inner + hd * P + p] = ssm_row(h, B, Cg, dA[t], dt[t] * xp, N) + Dh * xp;
                }
            }
        }
    }
}

void gated_rmsnorm_forward(float *out, const float *y, const float *z, int z_stride, const float *w,
                           int T, int d_inner, int G, float eps) {
    assert(G > 0 && d_inner % G == 0);
    const int gs = d_inner / G;
    for (int t = 0; t < T; t++) {
        const float *yt = y + (size_t)t * d_inner, *zt = z + (size_t)t * z_stride;
        float *ot = out + (size_t)t * d_inner;
        for (int i = 0; i < d_inner; i++) ot[i] = yt[i] * silu(zt[i]);
        for (int g = 0; g < G; g++) {
            float *v = ot + (size_t)g * gs;
            double ss = 0.0;
            for (int i = 0; i < gs; i++) ss += (double)v[i] * v[i];
            float scale = (float)(1.0 / sqrt(ss / gs + eps));
            for (int i = 0; i < gs; i++) v[i] = v[i] * scale * w[g * gs + i];
        }
    }
}
