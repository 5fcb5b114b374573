/* Power-of-two quantization of activations (per token, one exponent per 8 channels, or per larger
 * group for research), real-valued scales for research (kernels.h), the 4-bit weight packing, and
 * the activation layout the integer kernels read. */
#include "kernels/kernels.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

void lm_pack_int4_row(uint8_t *dst, const int8_t *src, int K) {
    for (int k = 0; k + 1 < K; k += 2) dst[k / 2] = (uint8_t)((src[k] & 0x0F) | (src[k + 1] & 0x0F) << 4);
    if (K & 1) dst[K / 2] = (uint8_t)(src[K - 1] & 0x0F);
}

void lm_unpack_int4_row(int8_t *dst, const uint8_t *src, int K) {
    for (int k = 0; k < K; k++) {
        int nibble = (src[k / 2] >> (4 * (k & 1))) & 0x0F;
        dst[k] = (int8_t)((nibble ^ 8) - 8); /* sign-extend 4 bits */
    }
}

int lm_act_exponent(float absmax, int bits) {
    if (!(absmax > 0.0f)) return LM_ACT_EXP_ZERO; /* 0 or NaN */
    if (isinf(absmax)) absmax = FLT_MAX;
    int E;
    frexpf(absmax, &E); /* absmax = f * 2^E, f in [0.5, 1): floor(log2 absmax) = E - 1 */
    return E - 1 - (bits - 2);
}

int lm_act_quantize(float x, int e, int bits) {
    int qmax = (1 << (bits - 1)) - 1;
    if (isnan(x)) return 0;
    /* x * 2^-e is exact in double for every float x and every exponent used here, and so is
     * + 0.5 up to the precision that can still change the floor. */
    double v = floor(ldexp((double)x, -e) + 0.5);
    return v > qmax ? qmax : v < -qmax ? -qmax : (int)v;
}

static int sa_max(int abits) { return abits == 4 ? 15 : 7; }

lm_status lm_qact_init(lm_qact *a, int max_T, int K, int abits, int wbits) {
    memset(a, 0, sizeof *a);
    if (max_T <= 0 || K <= 0 || K > (1 << 24))
        return lm_fail(LM_ERR_ARG, "quantized activations: bad shape T=%d K=%d", max_T, K);
    if ((abits != 4 && abits != 8) || (wbits != 4 && wbits != 8))
        return lm_fail(LM_ERR_ARG, "quantized activations: abits=%d wbits=%d (each must be 4 or 8)", abits, wbits);
    if (wbits == 8 && abits == 4)
        return lm_fail(LM_ERR_UNSUPPORTED, "W8A4 is not supported: its int32 group accumulator could overflow");
    a->max_T = max_T, a->K = K, a->abits = abits, a->wbits = wbits;
    a->group = LM_ACT_GROUP, a->scale = LM_ACT_SCALE_POW2;
    a->Kp = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP * LM_WEIGHT_GROUP;
    a->lanes = wbits == 4 ? a->Kp / 8 : a->Kp / 4;
    size_t n_groups = (size_t)(K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    a->q = malloc((size_t)max_T * K);
    a->sa = malloc((size_t)max_T * n_groups);
    a->eb = malloc(sizeof(int32_t) * (size_t)max_T);
    a->kq = aligned_alloc(64, (size_t)max_T * a->Kp);
    a->ksa = aligned_alloc(64, sizeof(int32_t) * (size_t)max_T * a->lanes);
    a->kcorr = aligned_alloc(64, sizeof(int32_t) * (size_t)max_T * a->lanes);
    if (!a->q || !a->sa || !a->eb || !a->kq || !a->ksa || !a->kcorr) {
        lm_qact_free(a);
        return lm_fail(LM_ERR_NOMEM, "quantized activations: out of memory (T=%d K=%d)", max_T, K);
    }
    return LM_OK;
}

void lm_qact_free(lm_qact *a) {
    free(a->q), free(a->sa), free(a->eb), free(a->kq), free(a->ksa), free(a->kcorr), free(a->xhat);
    memset(a, 0, sizeof *a);
}

int lm_act_format_valid(int group, lm_act_scale scale) {
    return (group == LM_ACT_PER_TOKEN || group == 8 || group == 16 || group == 32 || group == 64 || group == 128) &&
           (scale == LM_ACT_SCALE_POW2 || scale == LM_ACT_SCALE_REAL);
}

lm_status lm_qact_set_format(lm_qact *a, int group, lm_act_scale scale) {
    if (!lm_act_format_valid(group, scale))
        return lm_fail(LM_ERR_ARG, "activation group %d, scale type %d: the group must be 8, 16, 32, 64, 128 or per "
                       "token, the scale a power of two or real", group, (int)scale);
    if (scale == LM_ACT_SCALE_REAL && !a->xhat)
        LM_TRY(lm_calloc(&a->xhat, (size_t)a->max_T * a->K, sizeof(float), "real-scale activations"));
    a->group = group == LM_ACT_PER_TOKEN ? a->K : group;
    a->scale = scale;
    return LM_OK;
}

/* max |x| over n values (NaN skipped) */
static float absmax(const float *x, int n) {
    float m = 0.0f;
    for (int k = 0; k < n; k++)
        if (fabsf(x[k]) > m) m = fabsf(x[k]);
    return m;
}

/* One token, the contract line by line, with one exponent per `group` channels (a multiple of
 * LM_ACT_GROUP, or K) given to each of its 8-channel groups: x [K] -> q [K], sa [ceil(K/8)]; returns eb. */
static int quantize_token_scalar(int8_t *q, uint8_t *sa, const float *x, int K, int bits, int group) {
    /* Pass 1: the largest group exponent of the token. */
    int e_max = LM_ACT_EXP_ZERO;
    for (int k0 = 0; k0 < K; k0 += group) {
        int e = lm_act_exponent(absmax(x + k0, K - k0 < group ? K - k0 : group), bits);
        if (e > e_max) e_max = e;
    }
    int eb = e_max == LM_ACT_EXP_ZERO ? 0 : e_max - sa_max(bits);
    /* Pass 2: quantize each group with max(own exponent, eb); sa = that - eb. */
    for (int k0 = 0; k0 < K; k0 += group) {
        int k1 = k0 + group < K ? k0 + group : K;
        int e = lm_act_exponent(absmax(x + k0, k1 - k0), bits);
        if (e < eb) e = eb;
        for (int g = k0 / LM_ACT_GROUP; g * LM_ACT_GROUP < k1; g++) sa[g] = (uint8_t)(e - eb);
        for (int k = k0; k < k1; k++) q[k] = (int8_t)lm_act_quantize(x[k], e, bits);
    }
    return eb;
}

/* One token with real scales: each group of `group` channels as q * s, s = absmax / qmax,
 * q = clamp(round_half_up(x / s), -qmax, qmax) (NaN -> 0, an infinite absmax counts as FLT_MAX). */
static void quantize_token_real(float *xhat, const float *x, int K, int bits, int group) {
    const int qmax = (1 << (bits - 1)) - 1;
    for (int k0 = 0; k0 < K; k0 += group) {
        int k1 = k0 + group < K ? k0 + group : K;
        float m = absmax(x + k0, k1 - k0);
        if (isinf(m)) m = FLT_MAX;
        const double s = (double)m / qmax;
        for (int k = k0; k < k1; k++) {
            double v = s > 0 && !isnan(x[k]) ? floor((double)x[k] / s + 0.5) : 0.0;
            xhat[k] = (float)((v > qmax ? qmax : v < -qmax ? -qmax : v) * s);
        }
    }
}

/* ---- AVX-512: the same integers, 16 channels (two groups) per register ----
 * Exact in float: the group exponent is vgetexpps of the group's absmax (floor(log2 m), also for
 * subnormals; -inf for m = 0, which the max with eb then replaces; +inf for an infinite m, clamped
 * like FLT_MAX); v = x * 2^-e (vscalefps) is exact unless it is subnormal, and then |v| < 2^-126
 * rounds to 0 either way; floor(v + 0.5) = floor(v) + (v - floor(v) >= 0.5), where v - floor(v) is
 * exact, or (for -0.5 < v < 0) rounded monotonically and so on the same side of 0.5. */
#define QA_AVX512 __attribute__((target("avx512f,avx512bw")))

QA_AVX512 static __m512 abs_no_nan_avx512(__m512 x) { /* |x|, NaN -> 0 */
    return _mm512_mask_abs_ps(_mm512_setzero_ps(), _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x);
}

QA_AVX512 static int quantize_token_avx512(int8_t *q, uint8_t *sa, const float *x, int K, int bits) {
    /* Pass 1: the token's largest group exponent is the exponent of its absmax. */
    __m512 m = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
        __mmask16 live = K - k >= 16 ? 0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        m = _mm512_max_ps(m, abs_no_nan_avx512(_mm512_maskz_loadu_ps(live, x + k)));
    }
    int e_max = lm_act_exponent(_mm512_reduce_max_ps(m), bits);
    int eb = e_max == LM_ACT_EXP_ZERO ? 0 : e_max - sa_max(bits);
    /* Pass 2: two groups per register. */
    const float qmax = (float)((1 << (bits - 1)) - 1);
    const __m512 ebv = _mm512_set1_ps((float)eb), top = _mm512_set1_ps((float)(127 - (bits - 2)));
    const __m512 shift = _mm512_set1_ps((float)(bits - 2)), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int k = 0; k < K; k += 16) {
        __mmask16 live = K - k >= 16 ? 0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(live, x + k), g = abs_no_nan_avx512(xv);
        /* the max over each group of 8 lanes, in all its lanes */
        g = _mm512_max_ps(g, _mm512_permute_ps(g, 0xB1));
        g = _mm512_max_ps(g, _mm512_permute_ps(g, 0x4E));
        g = _mm512_max_ps(g, _mm512_shuffle_f32x4(g, g, 0xB1));
        __m512 e = _mm512_min_ps(_mm512_sub_ps(_mm512_getexp_ps(g), shift), top);
        e = _mm512_max_ps(e, ebv);
        __m512i s = _mm512_cvtps_epi32(_mm512_sub_ps(e, ebv));
        sa[k / LM_ACT_GROUP] = (uint8_t)_mm512_cvtsi512_si32(s);
        if (K - k > LM_ACT_GROUP) sa[k / LM_ACT_GROUP + 1] = (uint8_t)_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(s, 2));
        __m512 v = _mm512_scalef_ps(xv, _mm512_sub_ps(_mm512_setzero_ps(), e));
        __m512 fl = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_mask_add_ps(fl, _mm512_cmp_ps_mask(_mm512_sub_ps(v, fl), half, _CMP_GE_OQ), fl, one);
        r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-qmax)), _mm512_set1_ps(qmax)); /* +-inf too */
        __m512i qi = _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(xv, xv, _CMP_ORD_Q), r); /* NaN -> 0 */
        _mm512_mask_cvtepi32_storeu_epi8(q + k, live, qi);
    }
    return eb;
}

lm_status lm_quantize_act(lm_qact *a, const float *x, int T) {
    if (T < 0 || T > a->max_T) return lm_fail(LM_ERR_ARG, "quantize activations: %d tokens, room for %d", T, a->max_T);
    int K = a->K, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    if (a->scale == LM_ACT_SCALE_REAL) {
        for (int t = 0; t < T; t++) quantize_token_real(a->xhat + (size_t)t * K, x + (size_t)t * K, K, a->abits, a->group);
        a->T = T;
        return LM_OK;
    }
    int simd = lm_simd_level_get() >= LM_SIMD_AVX512 && a->group == LM_ACT_GROUP;
    for (int t = 0; t < T; t++) {
        int8_t *q = a->q + (size_t)t * K;
        uint8_t *sa = a->sa + (size_t)t * n_groups;
        const float *xt = x + (size_t)t * K;
        a->eb[t] = simd ? quantize_token_avx512(q, sa, xt, K, a->abits)
                        : quantize_token_scalar(q, sa, xt, K, a->abits, a->group);
    }
    return lm_qact_pack(a, T);
}

/* The kernel layout of one token (see lm_qact in kernels.h), plainly. */
static void pack_token_scalar(const lm_qact *a, int8_t *kq, int32_t *ksa, int32_t *kcorr, const int8_t *q,
                              const uint8_t *sa) {
    int K = a->K, lane_width = a->wbits == 4 ? 8 : 4, offset = 1 << (a->wbits - 1);
    memset(kq, 0, (size_t)a->Kp);
    for (int k = 0; k < K; k++) {
        /* 4-bit weights: in each 128-block the even channels first, then the odd ones */
        int at = a->wbits == 4 ? (k & ~127) + (k & 1) * 64 + (k & 127) / 2 : k;
        kq[at] = q[k];
    }
    for (int l = 0; l < a->lanes; l++) {
        int k0 = l * lane_width, sum = 0;
        for (int k = k0; k < k0 + lane_width && k < K; k++) sum += q[k];
        ksa[l] = k0 < K ? sa[k0 / LM_ACT_GROUP] : 0;
        kcorr[l] = -offset * sum;
    }
}

/* The same with AVX-512, a 128-channel block at a time (channels past K read as q = 0, which
 * is what the layout holds there). */
QA_AVX512 static void pack_token_avx512(const lm_qact *a, int8_t *kq, int32_t *ksa, int32_t *kcorr, const int8_t *q,
                                        const uint8_t *sa) {
    int K = a->K, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    const __m512i flip = _mm512_set1_epi8((char)0x80), ones8 = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1);
    for (int k0 = 0; k0 < a->Kp; k0 += 128) {
        __mmask64 live0 = K - k0 >= 64 ? ~0ull : K - k0 > 0 ? (1ull << (K - k0)) - 1 : 0;
        __mmask64 live1 = K - k0 >= 128 ? ~0ull : K - k0 > 64 ? (1ull << (K - k0 - 64)) - 1 : 0;
        __m512i q0 = _mm512_maskz_loadu_epi8(live0, q + k0), q1 = _mm512_maskz_loadu_epi8(live1, q + k0 + 64);
        int g0 = k0 / LM_ACT_GROUP, left = n_groups - g0; /* groups of this block: 16, fewer at the end */
        __m512i s = _mm512_cvtepu8_epi32(_mm512_castsi512_si128(
            _mm512_maskz_loadu_epi8(left >= 16 ? 0xFFFF : (1ull << left) - 1, sa + g0)));
        if (a->wbits == 4) {
            /* even channels = the low bytes of the int16 pairs, odd = the high bytes */
            _mm256_store_si256((__m256i *)(kq + k0), _mm512_cvtepi16_epi8(q0));
            _mm256_store_si256((__m256i *)(kq + k0 + 32), _mm512_cvtepi16_epi8(q1));
            _mm256_store_si256((__m256i *)(kq + k0 + 64), _mm512_cvtepi16_epi8(_mm512_srai_epi16(q0, 8)));
            _mm256_store_si256((__m256i *)(kq + k0 + 96), _mm512_cvtepi16_epi8(_mm512_srai_epi16(q1, 8)));
            /* lane = group of 8: sum(q) = sum(q + 128) - 1024 (vpsadbw); kcorr = -8 sum(q) */
            __m512i sum0 = _mm512_sad_epu8(_mm512_xor_si512(q0, flip), _mm512_setzero_si512());
            __m512i sum1 = _mm512_sad_epu8(_mm512_xor_si512(q1, flip), _mm512_setzero_si512());
            __m512i sums = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(sum0)),
                                              _mm512_cvtepi64_epi32(sum1), 1);
            _mm512_store_si512(kcorr + k0 / 8, _mm512_sub_epi32(_mm512_set1_epi32(8192), _mm512_slli_epi32(sums, 3)));
            _mm512_store_si512(ksa + k0 / 8, s);
        } else {
            _mm512_store_si512(kq + k0, q0);
            _mm512_store_si512(kq + k0 + 64, q1);
            /* lane = 4 channels: sum(q) by vpmaddubsw + vpmaddwd; kcorr = -128 sum(q) */
            __m512i sum0 = _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, q0), ones16);
            __m512i sum1 = _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, q1), ones16);
            _mm512_store_si512(kcorr + k0 / 4, _mm512_mullo_epi32(sum0, _mm512_set1_epi32(-128)));
            _mm512_store_si512(kcorr + k0 / 4 + 16, _mm512_mullo_epi32(sum1, _mm512_set1_epi32(-128)));
            /* each group's sa in its two lanes, 0 in lanes wholly past K */
            int live_lanes = K - k0 >= 128 ? 32 : (K - k0 + 3) / 4;
            __m512i lo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(s)), hi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(s, 1));
            lo = _mm512_or_si512(lo, _mm512_slli_epi64(lo, 32)), hi = _mm512_or_si512(hi, _mm512_slli_epi64(hi, 32));
            _mm512_store_si512(ksa + k0 / 4, _mm512_maskz_mov_epi32(live_lanes >= 16 ? 0xFFFF : (1u << live_lanes) - 1, lo));
            _mm512_store_si512(ksa + k0 / 4 + 16,
                               _mm512_maskz_mov_epi32(live_lanes >= 32 ? 0xFFFF : (1u << (live_lanes - 16 > 0 ? live_lanes - 16 : 0)) - 1, hi));
        }
    }
}

/* Whether every q lies in [-qmax - 1, qmax] and every sa in [0, samax]. */
QA_AVX512 static int in_range_avx512(const int8_t *q, int K, const uint8_t *sa, int n_groups, int qmax, int samax) {
    const __m512i hi = _mm512_set1_epi8((char)qmax), lo = _mm512_set1_epi8((char)(-qmax - 1)), top = _mm512_set1_epi8((char)samax);
    __mmask64 bad = 0;
    for (int k = 0; k < K; k += 64) {
        __m512i v = _mm512_maskz_loadu_epi8(K - k >= 64 ? ~0ull : (1ull << (K - k)) - 1, q + k);
        bad |= _mm512_cmpgt_epi8_mask(v, hi) | _mm512_cmplt_epi8_mask(v, lo);
    }
    for (int g = 0; g < n_groups; g += 64) {
        __m512i v = _mm512_maskz_loadu_epi8(n_groups - g >= 64 ? ~0ull : (1ull << (n_groups - g)) - 1, sa + g);
        bad |= _mm512_cmpgt_epu8_mask(v, top);
    }
    return bad == 0;
}

lm_status lm_qact_pack(lm_qact *a, int T) {
    if (T < 0 || T > a->max_T) return lm_fail(LM_ERR_ARG, "pack activations: %d tokens, room for %d", T, a->max_T);
    int K = a->K, Kp = a->Kp, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    int qmax = (1 << (a->abits - 1)) - 1, samax = sa_max(a->abits);
    int simd = lm_simd_level_get() >= LM_SIMD_AVX512;
    for (int t = 0; t < T; t++) {
        const int8_t *q = a->q + (size_t)t * K;
        const uint8_t *sa = a->sa + (size_t)t * n_groups;
        if (!simd || !in_range_avx512(q, K, sa, n_groups, qmax, samax)) { /* then find the first bad value */
            for (int k = 0; k < K; k++)
                if (q[k] < -qmax - 1 || q[k] > qmax)
                    return lm_fail(LM_ERR_ARG, "pack activations: token %d channel %d: q = %d outside [-%d, %d]", t,
                                   k, q[k], qmax + 1, qmax);
            for (int g = 0; g < n_groups; g++)
                if (sa[g] > samax)
                    return lm_fail(LM_ERR_ARG, "pack activations: token %d group %d: sa = %d outside [0, %d]", t, g,
                                   sa[g], samax);
        }
        int8_t *kq = a->kq + (size_t)t * Kp;
        int32_t *ksa = a->ksa + (size_t)t * a->lanes, *kcorr = a->kcorr + (size_t)t * a->lanes;
        if (simd)
            pack_token_avx512(a, kq, ksa, kcorr, q, sa);
        else
            pack_token_scalar(a, kq, ksa, kcorr, q, sa);
    }
    a->T = T;
    return LM_OK;
}
