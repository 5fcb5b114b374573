/* nll = -log softmax(logits)[target] = log(sum_i exp(l_i - max)) + max - l_target.
 * Perplexity evaluates this over the whole vocabulary for every scored token, as many
 * exp calls as lm_head has multiply-adds per output row, so it is vectorized: a
 * polynomial exp (Cephes expf: |rel err| < 2 ulp) in AVX-512 or AVX2+FMA, at the level
 * of lm_simd_level_get() (kernels.h), with a scalar expf tail and fallback. Partial sums are float over blocks of at
 * most 64 elements per lane, then double. */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <math.h>

static double nll_scalar(const float *l, int n, int32_t target) {
    float mx = l[0];
    for (int i = 1; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += expf(l[i] - mx);
    return log(sum) + mx - l[target];
}

/* Cephes expf coefficients: exp(r) ~ 1 + r + r^2 * P(r) on |r| <= ln2/2. */
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_MIN -87.0f /* below this exp underflows: clamp (exp(-87) ~ 1.6e-38 adds nothing) */

/* exp(x) for x <= 0: x = n ln2 + r, exp(x) = 2^n exp(r). */
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

__attribute__((target("avx512f"))) static double nll_avx512(const float *l, int n, int32_t target) {
    const int n16 = n & ~15;
    __m512 vmx = _mm512_set1_ps(l[0]);
    for (int i = 0; i < n16; i += 16) vmx = _mm512_max_ps(vmx, _mm512_loadu_ps(l + i));
    float mx = _mm512_reduce_max_ps(vmx);
    for (int i = n16; i < n; i++) mx = l[i] > mx ? l[i] : mx;

    const __m512 vm = _mm512_set1_ps(mx);
    __m512d total = _mm512_setzero_pd();
    for (int b = 0; b < n16; b += 64 * 16) {
        int end = b + 64 * 16 < n16 ? b + 64 * 16 : n16;
        __m512 acc = _mm512_setzero_ps();
        for (int i = b; i < end; i += 16) acc = _mm512_add_ps(acc, exp512(_mm512_sub_ps(_mm512_loadu_ps(l + i), vm)));
        total = _mm512_add_pd(total, _mm512_cvtps_pd(_mm512_castps512_ps256(acc)));
        total = _mm512_add_pd(total, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))));
    }
    double sum = _mm512_reduce_add_pd(total);
    for (int i = n16; i < n; i++) sum += expf(l[i] - mx);
    return log(sum) + mx - l[target];
}

__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    /* 2^n by building the exponent field: n in [-126, 0] here */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static double nll_avx2(const float *l, int n, int32_t target) {
    const int n8 = n & ~7;
    __m256 vmx = _mm256_set1_ps(l[0]);
    for (int i = 0; i < n8; i += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(l + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    float mx = lanes[0];
    for (int i = 1; i < 8; i++) mx = lanes[i] > mx ? lanes[i] : mx;
    for (int i = n8; i < n; i++) mx = l[i] > mx ? l[i] : mx;

    const __m256 vm = _mm256_set1_ps(mx);
    __m256d total = _mm256_setzero_pd();
    for (int b = 0; b < n8; b += 64 * 8) {
        int end = b + 64 * 8 < n8 ? b + 64 * 8 : n8;
        __m256 acc = _mm256_setzero_ps();
        for (int i = b; i < end; i += 8) acc = _mm256_add_ps(acc, exp256(_mm256_sub_ps(_mm256_loadu_ps(l + i), vm)));
        total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_castps256_ps128(acc)));
        total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1)));
    }
    double parts[4];
    _mm256_storeu_pd(parts, total);
    double sum = parts[0] + parts[1] + parts[2] + parts[3];
    for (int i = n8; i < n; i++) sum += expf(l[i] - mx);
    return log(sum) + mx - l[target];
}

double lm_nll(const float *logits, int n, int32_t target) {
    switch (lm_simd_level_get()) {
    case LM_SIMD_AVX512: return nll_avx512(logits, n, target);
    case LM_SIMD_AVX2: return nll_avx2(logits, n, target);
    default: return nll_scalar(logits, n, target);
    }
}
