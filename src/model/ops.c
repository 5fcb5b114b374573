/* The float32 operators of a Mamba2 block (shapes in ops.h). Plain loops, the hot ones on
 * GCC vector types (16 floats): the chunk's heavy work is in the linear layers (GEMM in
 * src/kernels); these are O(T * width), but for the scan (O(T * H * P * N)), whose chunked
 * form's products are also src/kernels' (lm_gemm_small). */
#include "model/ops.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "common/half.h"

/* 16 floats, loaded and stored unaligned: GCC lowers it to one AVX-512 register, two AVX2 or
 * four SSE ones, whichever the function is compiled for. */
typedef float v16f __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

/* y[i] = SiLU(x[i]) * (m ? m[i] : 1) = x[i] / (1 + exp(-x[i])) * m[i], 16 lanes at a time (the
 * tail through a padded copy, so every element takes the same path: the results do not depend
 * on where a range starts). exp's argument is clamped to [-87.3, 88], where SiLU is x or 0 to
 * float precision; a NaN x stays NaN (it is the numerator). y may be x or m. SiLU is most of the
 * conv's cost: with libm's expf per element the conv stage measured 1.8x slower. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void silu_mul(float *y, const float *x, const float *m, int n) {
    for (int i = 0; i < n; i += 16) {
        const int len = n - i < 16 ? n - i : 16;
        v16f xv = {0}, mv = {0};
        if (len == 16) {
            xv = *(const v16f *)(x + i);
            if (m) mv = *(const v16f *)(m + i);
        } else {
            memcpy(&xv, x + i, (size_t)len * sizeof(float));
            if (m) memcpy(&mv, m + i, (size_t)len * sizeof(float));
        }
        /* v = -x clamped to [-87.3, 88] (a NaN gives 88) */
        v16f v = -xv;
        const v16i above = v > 88.0f, inside = v > -87.3f;
        v = (v16f)((above & (v16i)((v16f){0} + 88.0f)) | (~above & inside & (v16i)v) |
                   (~above & ~inside & (v16i)((v16f){0} - 87.3f)));
        /* exp(v) = 2^k exp(r), k = round(v / ln2), |r| <= ln2/2, exp(r) by its degree-6 Taylor
         * polynomial (truncation below 1.3e-7 relative, about one ulp), 2^k in the exponent field */
        const v16f k = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* + 1.5 * 2^23 rounds */
        const v16f r = v - k * 0.693145751953125f - k * 1.428606765330187e-06f; /* ln 2 in two parts */
        v16f p = r * (1.0f / 720) + 1.0f / 120;
        p = p * r + 1.0f / 24;
        p = p * r + 1.0f / 6;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        const v16i two_k = (__builtin_convertvector(k, v16i) + 127) << 23;
        v16f out = xv / (1.0f + p * (v16f)two_k);
        if (m) out *= mv;
        if (len == 16)
            *(v16f *)(y + i) = out;
        else
            memcpy(y + i, &out, (size_t)len * sizeof(float));
    }
}

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

void embedding_forward(float *x, const lm_model *m, const int32_t *tokens, int T) {
    const size_t D = (size_t)m->cfg.d_model;
    for (int t = 0; t < T; t++) {
        assert(tokens[t] >= 0 && tokens[t] < m->cfg.vocab_size);
        if (m->embedding_q.q) {
            lm_qweight_dequantize_rows(&m->embedding_q, tokens[t], tokens[t] + 1, x + t * D);
        } else if (m->embedding_f16) {
            const uint16_t *row = m->embedding_f16 + (size_t)tokens[t] * D;
            for (size_t i = 0; i < D; i++) x[t * D + i] = lm_f16_to_f32(row[i]);
        } else {
            memcpy(x + t * D, m->embedding + (size_t)tokens[t] * D, D * sizeof(float));
        }
    }
}

void linear_forward(float *y, const float *x, const lm_linear *L, int T, lm_pool *pool, lm_qact *act) {
    if (L->kind == LM_LINEAR_INT) {
        /* Integer layer (kernels.h contract): activations quantized per token in the model's format
         * (the hardware's: a power-of-two exponent per 8 channels), then the integer product (or, for
         * real-valued scales, the float reference). The session sized act for this layer, so neither
         * call can fail. */
        assert(act && act->K == L->cols && act->abits == L->abits && act->wbits == L->q.wbits && T <= act->max_T);
        lm_status s = lm_quantize_act(act, x, T);
        if (s == LM_OK) s = lm_qlinear(y, act, &L->q, pool);
        assert(s == LM_OK);
        (void)s;
    } else if (L->kind == LM_LINEAR_F16) {
        assert(L->w16);
        lm_matmul_f16(y, x, L->w16, T, L->cols, L->rows, pool);
    } else {
        assert(L->kind == LM_LINEAR_F32 && L->w);
        lm_matmul_f32(y, x, L->w, T, L->cols, L->rows, pool);
    }
    if (L->bias)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < L->rows; o++) y[(size_t)t * L->rows + o] += L->bias[o];
}

void conv1d_silu_forward(float *out, float *state, const float *in, int in_stride,
                         const float *w, const float *b, int T, int C, int W, int c0, int c1) {
    assert(W >= 1 && C > 0 && T >= 0 && 0 <= c0 && c0 <= c1 && c1 <= C);
    /* Channel by channel, the taps summed in a register: w[c][:] is contiguous and out is written
     * once (a pass over out per tap, reading w with a stride, measured 1.3x slower); then SiLU
     * over the row, 16 channels at a time. */
    for (int t = 0; t < T; t++) {
        float *ot = out + (size_t)t * C;
        for (int c = c0; c < c1; c++) {
            const float *wc = w + (size_t)c * W;
            float acc = b ? b[c] : 0.0f;
            /* tap k reads input row t - (W-1) + k: from the state while that is < 0 */
            for (int k = 0; k < W; k++) {
                const int src = t - (W - 1) + k;
                acc += wc[k] * (src < 0 ? state[(size_t)(src + W - 1) * C + c] : in[(size_t)src * in_stride + c]);
            }
            ot[c] = acc;
        }
        silu_mul(ot + c0, ot + c0, NULL, c1 - c0);
    }
    /* The new state is the last W-1 rows of [state ; in]. */
    const int keep = W - 1;
    const size_t bytes = (size_t)(c1 - c0) * sizeof(float);
    if (keep == 0 || T == 0) return;
    for (int r = 0; r < keep - T; r++) /* T < keep: rows move up by T */
        memmove(state + (size_t)r * C + c0, state + (size_t)(r + T) * C + c0, bytes);
    for (int r = (T < keep ? keep - T : 0); r < keep; r++)
        memcpy(state + (size_t)r * C + c0, in + (size_t)(T - keep + r) * in_stride + c0, bytes);
}


/* The sum of the 16 lanes, halving in registers (16 scalar adds through memory stall on the
 * store of the whole vector). */
static inline __attribute__((always_inline)) float sum_lanes(v16f a) {
    v8f h = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    v4f q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* Head hd's step and decay for n tokens (docs/mamba2.md section 5), the same for both forms of
 * the scan:  dt[t] = clamp(softplus(dt_raw[t][hd] + dt_bias[hd]), dt_min, dt_max),
 *            dA[t] = exp(dt[t] * A[hd])                  dt_raw [n, H] with row stride dt_stride */
static inline void ssm_head_dt(float *dt, float *dA, const float *dt_raw, int dt_stride, const lm_layer *L,
                               const lm_config *cfg, int hd, int n) {
    for (int t = 0; t < n; t++) {
        float d = softplus(dt_raw[(size_t)t * dt_stride + hd] + L->dt_bias[hd]);
        dt[t] = fminf(fmaxf(d, cfg->dt_limit_min), cfg->dt_limit_max);
        dA[t] = expf(dt[t] * L->A[hd]);
    }
}

/* R <= 4 rows of a head's state at one token (rows N apart), sharing B and C:
 *   h[r][n] = dA*h[r][n] + xdt[r]*B[n],  out[r] = sum_n h[r][n]*C[n]
 * Independent accumulators per row keep the FMA units busy (one row's reduction would wait on
 * its own latency), and B, C are loaded once for all rows. A row's arithmetic is the same
 * whichever rows it is grouped with: 16 lane sums, summed by sum_lanes, then the tail (N mod
 * 16) in order. Inlined, so a constant R unrolls. */
static inline __attribute__((always_inline)) void ssm_rows(float *h, const float *B, const float *C, float dA,
                                                           const float *xdt, float *out, int N, int R) {
    v16f acc[4] = {{0}};
    int n = 0;
    for (; n + 16 <= N; n += 16) {
        const v16f b = *(const v16f *)(B + n), c = *(const v16f *)(C + n);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            v16f *hr = (v16f *)(h + (size_t)r * N + n);
            const v16f v = dA * *hr + xdt[r] * b;
            *hr = v;
            acc[r] += v * c;
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float *hr = h + (size_t)r * N, sum = sum_lanes(acc[r]);
        for (int m = n; m < N; m++) {
            const float v = dA * hr[m] + xdt[r] * B[m];
            hr[m] = v;
            sum += v * C[m];
        }
        out[r] = sum;
    }
}

/* Loop order: per head, per group of state rows p, over the tokens, so the rows
 * h[hd][p..][:] stay in L1 for the whole chunk (token-major order would stream the whole
 * state through the cache once per token). Compiled for AVX-512, AVX2+FMA and baseline
 * x86-64; the loader picks one at run time (this is the prefill's hottest loop outside the
 * GEMMs). */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void ssm_forward_clones(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                               const lm_layer *L, const lm_config *cfg, int T, int h0, int h1) {
    enum { TB = 64 }; /* tokens per block of precomputed dt, dA */
    const int H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int d_inner = cfg->d_inner, C = d_inner + 2 * G * N, heads_per_group = H / G;
    assert(0 <= h0 && h0 <= h1 && h1 <= H && H % G == 0);
    /* A chunk updates four rows at a time (they stay in L1 across its tokens). Decode streams
     * the state from memory one row at a time: four interleaved row streams measured 1.3-2x
     * slower on Zen 4 (on a Xeon, up to 20 % faster). */
    const int rows = T > 1 ? 4 : 1;
    float dt[TB], dA[TB];
    for (int hd = h0; hd < h1; hd++) {
        const int g = hd / heads_per_group;
        const float Dh = L->D[hd];
        for (int t0 = 0; t0 < T; t0 += TB) {
            const int nt = T - t0 < TB ? T - t0 : TB;
            ssm_head_dt(dt, dA, dt_raw + (size_t)t0 * dt_stride, dt_stride, L, cfg, hd, nt);
            for (int p = 0; p < P; p += rows) {
                const int R = P - p < rows ? P - p : rows;
                float *h = state + ((size_t)hd * P + p) * N;
                for (int t = 0; t < nt; t++) {
                    const float *x = xbc + (size_t)(t0 + t) * C;
                    const float *B = x + d_inner + (size_t)g * N, *Cg = x + d_inner + (size_t)(G + g) * N;
                    const float *xp = x + hd * P + p;
                    float xdt[4], s[4];
                    for (int r = 0; r < R; r++) xdt[r] = dt[t] * xp[r];
                    if (R == 4)
                        ssm_rows(h, B, Cg, dA[t], xdt, s, N, 4);
                    else if (R == 1)
                        ssm_rows(h, B, Cg, dA[t], xdt, s, N, 1);
                    else
                        ssm_rows(h, B, Cg, dA[t], xdt, s, N, R);
                    float *yt = y + (size_t)(t0 + t) * d_inner + hd * P + p;
                    for (int r = 0; r < R; r++) yt[r] = s[r] + Dh * xp[r];
                }
            }
        }
    }
}

/* The clones are static behind a plain function: clang 14 (the fuzzing build) names the
 * dispatcher of an exported target_clones function so that other files cannot link to it. */
void ssm_forward(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                 const lm_layer *L, const lm_config *cfg, int T, int h0, int h1) {
    ssm_forward_clones(y, state, xbc, dt_raw, dt_stride, L, cfg, T, h0, h1);
}

int ssm_chunked_pays(const lm_config *cfg, int T) {
    /* From bench_scan (docs/mamba2.md section 7): at head_dim 64, d_state 64 or 128 the chunked
     * form wins from T = 32 (1.1-1.3x, 1.3-1.6x at T = 64) and loses at T <= 16 (the products of a
     * short chunk fill a fraction of each 64-column block); at head_dim = d_state = 32 or 16 it
     * loses at every T (an output row fills half or a quarter of a block). Only with the AVX-512
     * kernel: through OpenBLAS's AVX2 sgemm it lost at T = 64 too. */
    return T >= 32 && cfg->head_dim >= 64 && cfg->d_state >= 64 && lm_simd_level_get() == LM_SIMD_AVX512;
}

size_t ssm_chunked_scratch_floats(const lm_config *cfg) {
    const size_t Q = LM_SSD_CHUNK, P = (size_t)cfg->head_dim, N = (size_t)cfg->d_state;
    return 2 * Q * Q + 3 * Q * P + 2 * N * Q + 3 * Q;
}

/* out[i] = a * u[i] + b * v[i] (v NULL: out[i] = a * u[i]) for i < n, 16 lanes at a time. out may be u. */
static inline __attribute__((always_inline)) void row_axpby(float *out, float a, const float *u, float b, const float *v,
                                                            int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f o = a * *(const v16f *)(u + i);
        if (v) o += b * *(const v16f *)(v + i);
        *(v16f *)(out + i) = o;
    }
    for (; i < n; i++) out[i] = v ? a * u[i] + b * v[i] : a * u[i];
}

/* out[i] = u[i] * v[i] for i < n */
static inline __attribute__((always_inline)) void row_mul(float *out, const float *u, const float *v, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) *(v16f *)(out + i) = *(const v16f *)(u + i) * *(const v16f *)(v + i);
    for (; i < n; i++) out[i] = u[i] * v[i];
}

/* The products are lm_gemm_small's; the O(Q^2 + Q P) loops around them are compiled for AVX-512,
 * AVX2+FMA and baseline x86-64 like ssm_forward's. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void ssm_chunked_clones(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                               const lm_layer *L, const lm_config *cfg, int T, int h0, int h1, float *scratch) {
    const int H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int d_inner = cfg->d_inner, C = d_inner + 2 * G * N, heads_per_group = H / G;
    assert(0 <= h0 && h0 <= h1 && h1 <= H && H % G == 0);
    enum { QMAX = LM_SSD_CHUNK };
    float *S = scratch;                   /* [Q, Q]  S[t][s] = C[t] . B[s], the group's */
    float *M = S + QMAX * QMAX;           /* [Q, Q]  S[t][s] a(t, s) for s <= t, 0 above */
    float *W = M + QMAX * QMAX;           /* [Q, P]  dt[s] x[s], the head's; then a(Q-1, s) dt[s] x[s] */
    float *Yt = W + (size_t)QMAX * P;     /* [P, Q]  h C^T, the entering state's share */
    float *Yo = Yt + (size_t)P * QMAX;    /* [Q, P]  its transpose */
    float *Bt = Yo + (size_t)QMAX * P;    /* [N, Q]  B^T of the group */
    float *Ct = Bt + (size_t)N * QMAX;    /* [N, Q]  C^T of the group */
    float *dt = Ct + (size_t)N * QMAX, *dA = dt + QMAX;
    float *decay = dA + QMAX;             /* [Q]     a(t, s) for the row t being built; after the last row, a(Q-1, s) */
    float cdecay[QMAX];                   /*         a(t, -1) = dA[0] ... dA[t]: the entering state's decay to token t */
    for (int t0 = 0; t0 < T; t0 += QMAX) {
        const int Q = T - t0 < QMAX ? T - t0 : QMAX;
        const float *xc = xbc + (size_t)t0 * C; /* the chunk's rows [Q, C] */
        int g_done = -1;
        for (int hd = h0; hd < h1; hd++) {
            const int g = hd / heads_per_group;
            const float *Bg = xc + d_inner + (size_t)g * N, *Cg = xc + d_inner + (size_t)(G + g) * N; /* [Q, N], stride C */
            if (g != g_done) { /* once for the group's heads */
                lm_transpose_f32(Bt, Q, Bg, C, Q, N);
                lm_transpose_f32(Ct, Q, Cg, C, Q, N);
                lm_gemm_small(S, Q, 0.0f, Cg, C, 0, Bt, Q, Q, Q, N, 0); /* [Q, N] x [N, Q] */
                g_done = g;
            }
            ssm_head_dt(dt, dA, dt_raw + (size_t)t0 * dt_stride, dt_stride, L, cfg, hd, Q);
            /* a(t, s) = dA[s+1] ... dA[t] (1 when s = t): row t is row t-1 times dA[t], the product in
             * the order the recurrence applies the decays to token s's contribution */
            float c = 1.0f;
            for (int t = 0; t < Q; t++) {
                float *Mt = M + (size_t)t * Q;
                row_axpby(decay, dA[t], decay, 0.0f, NULL, t);
                decay[t] = 1.0f;
                cdecay[t] = c *= dA[t];
                row_mul(Mt, S + (size_t)t * Q, decay, t + 1);
                memset(Mt + t + 1, 0, (size_t)(Q - t - 1) * sizeof(float));
            }
            const float *x = xc + (size_t)hd * P;                  /* [Q, P], row stride C */
            float *yh = y + (size_t)t0 * d_inner + (size_t)hd * P; /* [Q, P], row stride d_inner */
            float *h = state + (size_t)hd * P * N;                 /* [P, N] */
            /* the entering state's share and the skip: yh[t] = a(t, -1) h C[t] + D x[t]   [P, N] x [N, Q] */
            lm_gemm_small(Yt, Q, 0.0f, h, N, 0, Ct, Q, P, Q, N, 0);
            lm_transpose_f32(Yo, P, Yt, Q, P, Q);
            for (int t = 0; t < Q; t++) {
                const float *xt = x + (size_t)t * C;
                row_axpby(yh + (size_t)t * d_inner, cdecay[t], Yo + (size_t)t * P, L->D[hd], xt, P);
                row_axpby(W + (size_t)t * P, dt[t], xt, 0.0f, NULL, P);
            }
            /* the chunk's own tokens: yh += M W                                    [Q, Q] x [Q, P] */
            lm_gemm_small(yh, d_inner, 1.0f, M, Q, 0, W, P, Q, P, Q, 1);
            /* the state leaving the chunk: h = a(Q-1, -1) h + sum_s a(Q-1, s) W[s]^T B[s]   [P, Q] x [Q, N] */
            for (int s = 0; s < Q; s++) row_axpby(W + (size_t)s * P, decay[s], W + (size_t)s * P, 0.0f, NULL, P);
            lm_gemm_small(h, N, cdecay[Q - 1], W, P, 1, Bg, C, P, N, Q, 0);
        }
    }
}

void ssm_chunked_forward(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                         const lm_layer *L, const lm_config *cfg, int T, int h0, int h1, float *scratch) {
    ssm_chunked_clones(y, state, xbc, dt_raw, dt_stride, L, cfg, T, h0, h1, scratch);
}

void silu_gate_forward(float *y, const float *z, int z_stride, int T, int d_inner, int i0, int i1) {
    assert(0 <= i0 && i0 <= i1 && i1 <= d_inner && T >= 0);
    for (int t = 0; t < T; t++) {
        float *yt = y + (size_t)t * d_inner;
        const float *zt = z + (size_t)t * z_stride;
        silu_mul(yt + i0, zt + i0, yt + i0, i1 - i0);
    }
}

void group_rmsnorm_forward(float *y, const float *w, int T, int d_inner, int G, float eps) {
    assert(G > 0 && d_inner % G == 0 && T >= 0);
    const int gs = d_inner / G;
    /* [T, d_inner] is [T * G, gs]: one RMSNorm per row, with the weights of its group */
    for (int r = 0; r < T * G; r++)
        rmsnorm_forward(y + (size_t)r * gs, y + (size_t)r * gs, w + (size_t)(r % G) * gs, 1, gs, eps);
}
