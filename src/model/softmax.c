/* Softmax statistics over rows of logits (model/softmax.h):
 *   lse(l)       = log sum_i exp(l_i) = max + log sum_i exp(l_i - max)      nll = lse - l[target]
 *   KL(P || Q)   = sum_i P_i log(P_i / Q_i),   P = softmax(p), Q = softmax(q)   (see kl_body)
 * Perplexity evaluates these over the whole vocabulary for every scored token, as many exp calls
 * as lm_head has multiply-adds per output row, so they are vectorized: one body written with GCC
 * vector extensions (16 floats), compiled for AVX-512, for AVX2 + FMA and for the x86-64 baseline
 * (SSE2), the one at lm_simd_level_get() (kernels.h) chosen per call. exp is Cephes expf's
 * polynomial (|rel err| < 2 ulp); the tails past a multiple of 16 use expf. Partial sums are
 * float over blocks of at most 64 vectors per lane, then double. */
#include "model/softmax.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* The helpers below are always inlined into the per-level functions: no vector crosses a call,
 * so GCC's note that a 64-byte vector return changes the ABI without AVX-512 does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
enum { VL = 16, BLOCK = 64 * VL };
#define BODY static inline __attribute__((always_inline))

/* Cephes expf coefficients: exp(r) ~ 1 + r + r^2 * P(r) on |r| <= ln2/2. */
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_MIN -87.0f         /* below this exp underflows: clamp (exp(-87) ~ 1.6e-38 adds nothing) */
#define EXP_MAX 80.0f          /* (only expm1's arguments can be positive) */
#define ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: (v + M) - M rounds |v| < 2^22 to the nearest integer */

BODY vf splat(float x) { return (vf){0} + x; }
BODY vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v); /* an unaligned vector load */
    return v;
}
BODY vf vmax(vf a, vf b) {
    vi gt = a > b;
    return (vf)((gt & (vi)a) | (~gt & (vi)b));
}
BODY float hmax(vf v) {
    float m = v[0];
    for (int j = 1; j < VL; j++) m = v[j] > m ? v[j] : m;
    return m;
}
BODY double hsum(vf v) {
    double s = 0.0;
    for (int j = 0; j < VL; j++) s += v[j];
    return s;
}

/* exp(x) = 2^n (1 + r + q2), q2 = r^2 P(r), x = n ln2 + r, |r| <= ln2/2; 2^n built in the exponent
 * field, so x is clamped to [EXP_MIN, EXP_MAX]. For |x| <= ln2/2, n = 0 and r = x exactly. */
typedef struct {
    vf r, q2, two_n;
} exp_split;

BODY exp_split exp_parts(vf x) {
    x = vmax(x, splat(EXP_MIN));
    x = -vmax(-x, splat(-EXP_MAX));
    vf n = (x * 1.44269504089f + ROUND_MAGIC) - ROUND_MAGIC;
    vf r = x - n * EXP_LN2_HI;
    r = r - n * EXP_LN2_LO;
    vf p = splat(EXP_P0);
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    return (exp_split){r, (p * r) * r, (vf)((__builtin_convertvector(n, vi) + 127) << 23)};
}
BODY vf vexp(vf x) {
    exp_split e = exp_parts(x);
    return (e.q2 + e.r + 1.0f) * e.two_n;
}
/* expm1(x) - x for x in [EXP_MIN, EXP_MAX], to full relative precision also near 0 (there it is q2). */
BODY vf vexpm1_minus_x(vf x) {
    exp_split e = exp_parts(x);
    return e.q2 * e.two_n + ((e.r * e.two_n - x) + (e.two_n - 1.0f));
}

/* max_i l_i over n >= 1 values */
BODY float row_max(const float *l, int n) {
    const int nv = n & ~(VL - 1);
    vf m = splat(l[0]);
    for (int i = 0; i < nv; i += VL) m = vmax(m, load(l + i));
    float mx = hmax(m);
    for (int i = nv; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    return mx;
}

BODY double lse_body(const float *l, int n, float *max) {
    const int nv = n & ~(VL - 1);
    const float mx = row_max(l, n);
    double sum = 0.0;
    for (int b = 0; b < nv; b += BLOCK) {
        const int end = b + BLOCK < nv ? b + BLOCK : nv;
        vf acc = splat(0.0f);
        for (int i = b; i < end; i += VL) acc += vexp(load(l + i) - mx);
        sum += hsum(acc);
    }
    for (int i = nv; i < n; i++) sum += expf(l[i] - mx);
    *max = mx;
    return mx + log(sum);
}

/* KL(P || Q) with d = p - q: log(P_v / Q_v) = d_v - log sum_u P_u exp(-d_u), so for any c, with
 * x_v = c - d_v, A = E_P[x] and G = E_P[expm1(x) - x] (E_P: the mean under P),
 *   KL = E_P[d] + log E_P[exp(-d)] = -A + log E_P[exp(x)] = log1p(A + G) - A.
 * With c = E_P[d] (as summed in float) A is nearly 0 and G ~ Var_P(d) / 2 is a sum of terms >= 0,
 * each computed to full relative precision; an error in A cancels to first order. So a small KL
 * keeps its relative precision, where the textbook E_P[d] - lse(p) + lse(q) subtracts two
 * log-sum-exps that float sums give only to ~1e-7 absolute. E_P uses the weights w_v = exp(p_v - max p)
 * over their sum. Three passes: the maxima; the sums of w, w d and exp(q - max q) (for lse(q)); A
 * and G. (x is clamped to [EXP_MIN, EXP_MAX]: probability ratios beyond e^80.) */
BODY double kl_body(const float *p, const float *q, int n, double *lse_p, double *lse_q) {
    const int nv = n & ~(VL - 1);
    const float mp = row_max(p, n), mq = row_max(q, n);
    double sw = 0.0, sq = 0.0, swd = 0.0;
    for (int b = 0; b < nv; b += BLOCK) {
        const int end = b + BLOCK < nv ? b + BLOCK : nv;
        vf aw = splat(0.0f), aq = aw, awd = aw;
        for (int i = b; i < end; i += VL) {
            vf pv = load(p + i), qv = load(q + i), w = vexp(pv - mp);
            aw += w;
            aq += vexp(qv - mq);
            awd += w * (pv - qv);
        }
        sw += hsum(aw), sq += hsum(aq), swd += hsum(awd);
    }
    for (int i = nv; i < n; i++) {
        float w = expf(p[i] - mp);
        sw += w, sq += expf(q[i] - mq), swd += w * (p[i] - q[i]);
    }
    const float c = (float)(swd / sw);
    double sa = 0.0, sg = 0.0;
    for (int b = 0; b < nv; b += BLOCK) {
        const int end = b + BLOCK < nv ? b + BLOCK : nv;
        vf aa = splat(0.0f), ag = aa;
        for (int i = b; i < end; i += VL) {
            vf pv = load(p + i), w = vexp(pv - mp), x = c - (pv - load(q + i));
            x = -vmax(-vmax(x, splat(EXP_MIN)), splat(-EXP_MAX));
            aa += w * x;
            ag += w * vexpm1_minus_x(x);
        }
        sa += hsum(aa), sg += hsum(ag);
    }
    for (int i = nv; i < n; i++) {
        double w = expf(p[i] - mp), x = fmin(fmax(c - (p[i] - q[i]), EXP_MIN), EXP_MAX);
        sa += w * x, sg += w * (expm1(x) - x);
    }
    *lse_p = mp + log(sw);
    *lse_q = mq + log(sq);
    const double a = sa / sw, kl = log1p(a + sg / sw) - a;
    return kl > 0.0 ? kl : 0.0;
}

#define SOFTMAX_LEVEL(level, attr)                                                                    \
    attr static double lse_##level(const float *l, int n, float *max) { return lse_body(l, n, max); } \
    attr static double kl_##level(const float *p, const float *q, int n, double *lse_p, double *lse_q) { \
        return kl_body(p, q, n, lse_p, lse_q);                                                        \
    }
SOFTMAX_LEVEL(avx512, __attribute__((target("avx512f"))))
SOFTMAX_LEVEL(avx2, __attribute__((target("avx2,fma"))))
SOFTMAX_LEVEL(baseline, )

double lm_logsumexp(const float *l, int n, int32_t *argmax) {
    float mx;
    double lse;
    switch (lm_simd_level_get()) {
    case LM_SIMD_AVX512: lse = lse_avx512(l, n, &mx); break;
    case LM_SIMD_AVX2: lse = lse_avx2(l, n, &mx); break;
    default: lse = lse_baseline(l, n, &mx); break;
    }
    if (argmax) {
        int32_t i = 0;
        while (i + 1 < n && l[i] != mx) i++;
        *argmax = i;
    }
    return lse;
}

int32_t lm_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double lm_nll(const float *logits, int n, int32_t target) { return lm_logsumexp(logits, n, NULL) - logits[target]; }

double lm_kl_logits(const float *p, const float *q, int n, double *lse_p, double *lse_q) {
    switch (lm_simd_level_get()) {
    case LM_SIMD_AVX512: return kl_avx512(p, q, n, lse_p, lse_q);
    case LM_SIMD_AVX2: return kl_avx2(p, q, n, lse_p, lse_q);
    default: return kl_baseline(p, q, n, lse_p, lse_q);
    }
}
