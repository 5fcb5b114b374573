/* RMSNorm unit (block input and gated norm) and the HTU's two units (hk.h). */
#include "hk.h"

/* out = x / sqrt(mean x^2 + eps) * gamma per group of p->group channels (integer-datapath.md
 * section 3). The group streams into a buffer while its max is found (pass 1); k, the sum of
 * squares S and the rsqrt LUT index need that max (pass 2); pass 3 scales and streams out:
 *   k = max(0, bitlength(max|x|) - 24), S = sum (x >> k)^2 + (eps_term >> 2k)      (uint64)
 *   j = max(0, ceil((bitlength(S) - 12) / 2)), M = S >> 2j (< 4096), R = rsqrt[M]
 *   a = clamp(round(x R 2^-(shift[M>>9] + j + k - 16)), +-2^16), out = round(a gq 2^(e_gamma - 16 + F_out)) */
#if HK_DATAPATH & HK_DP_NORM8
/* The release's norm (Rmsnorm1/2::forward): pass 1 buffers the group and sums its squares
 * (saturating at 2^63 - 1, where the release's 64-bit sum ends), the sum picks a table t (the last
 * with S >= alpha[t]) and an entry R = r8[t][clamp((S - alpha[t]) >> ld[t], 0, 511)] << off[t];
 * pass 2: out = ((x R) >> 12) gq >> 8. The host bounds the tables so both products fit int64. */
void hk_rmsnorm(hk_wide_s *out, hk_wide_s *in, const hk_norm *p, const hk_layer *L) {
    int32_t buf[HK_MAX_NORM];
    for (int g0 = 0; g0 < p->n; g0 += p->group) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_G)
        uint64_t S = 0;
        for (int i = 0; i < p->group; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_NORM)
            HK_PRAGMA(HLS pipeline II=1)
            const int32_t x = hk_wide_s_pop(in);
            const uint64_t sq = (uint64_t)((int64_t)x * x);
            buf[i] = x;
            S = S > UINT64_MAX - sq ? UINT64_MAX : S + sq;
        }
        const int64_t Ss = S > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)S;
        int t = 0;
        for (int i = 0; i < HK_RSQRT_TABLES; i++) {
            HK_PRAGMA(HLS unroll)
            if (Ss >= p->alpha[i]) t = i;
        }
        int64_t idx = (Ss - p->alpha[t]) >> p->ld[t];
        idx = idx < 0 ? 0 : idx > HK_RSQRT_ENTRIES - 1 ? HK_RSQRT_ENTRIES - 1 : idx;
        const int64_t R = (int64_t)p->r8[t * HK_RSQRT_ENTRIES + idx] << p->off[t];
        for (int i = 0; i < p->group; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_NORM)
            HK_PRAGMA(HLS pipeline II=1)
            const int64_t a = ((int64_t)buf[i] * R) >> HK_NORM8_TRUNC1;
            hk_wide_s_push(out, hk_sat32((a * p->gq[g0 + i]) >> HK_NORM8_TRUNC2));
        }
    }
    (void)L;
}
#else
void hk_rmsnorm(hk_wide_s *out, hk_wide_s *in, const hk_norm *p, const hk_layer *L) {
    int32_t buf[HK_MAX_NORM];
    for (int g0 = 0; g0 < p->n; g0 += p->group) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_G)
        uint32_t m = 0;
        for (int i = 0; i < p->group; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_NORM)
            HK_PRAGMA(HLS pipeline II=1)
            const int32_t x = hk_wide_s_pop(in);
            const uint32_t a = x < 0 ? (uint32_t)0 - (uint32_t)x : (uint32_t)x;
            buf[i] = x;
            if (a > m) m = a;
        }
        int k = hk_bitlength(m) - 24;
        if (k < 0) k = 0;
        uint64_t S = 0;
        for (int i = 0; i < p->group; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_NORM)
            HK_PRAGMA(HLS pipeline II=1)
            const int64_t v = buf[i] >> k;
            S += (uint64_t)(v * v);
        }
        S += p->eps_term >> (2 * k);
        int j = (hk_bitlength(S) - 12 + 1) / 2;
        if (j < 0) j = 0;
        const uint64_t M = S >> (2 * j);
        const int32_t R = L->rsqrt[M];
        const int sh = L->rsqrt_shift[M >> 9] + j + k - 16, L_out = p->e_gamma - 16 + p->F_out;
        for (int i = 0; i < p->group; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_NORM)
            HK_PRAGMA(HLS pipeline II=1)
            int32_t a = hk_shift_sat32((int64_t)buf[i] * R, -sh);
            a = a > 65536 ? 65536 : a < -65536 ? -65536 : a;
            hk_wide_s_push(out, hk_shift_sat32((int64_t)a * p->gq[g0 + i], L_out));
        }
    }
}
#endif

/* The online Hadamard of out_proj's input, out = round((H_m (x) H_p) x 2^rot_L), n = d_inner = m p
 * (entry b p + a: block b, position a), in two units as in the paper: butterflies per block as
 * the blocks stream in, then the +-1 matrix across blocks (it needs all of them). Exact in int64
 * (< 2^31 2^12 40), one rounding at the end. rot_m = 0: both pass values through. */

/* log2(p) radix-2 stages over one block of p values, HTU_WIDTH / 2 butterflies a cycle. */
void hk_htu_fwht(hk_long_s *out, hk_wide_s *in, const hk_layer *L) {
    const int m = L->rot_m ? L->rot_m : 1, p = L->di / m;
    int64_t v[HK_MAX_DI];
    HK_PRAGMA(HLS array_partition variable=v cyclic factor=HK_HTU_WIDTH)
    for (int b = 0; b < m; b++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_HTU_MAX_BASE)
        for (int i = 0; i < p; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI)
            HK_PRAGMA(HLS pipeline II=1)
            v[i] = hk_wide_s_pop(in);
        }
        for (int lg = 0; L->rot_m && (1 << lg) < p; lg++) {
            HK_PRAGMA(HLS loop_tripcount max=12)
            const int len = 1 << lg;
            for (int t = 0; t < p / 2; t++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI/2)
                HK_PRAGMA(HLS pipeline II=1)
                HK_PRAGMA(HLS unroll factor=HK_HTU_WIDTH/2)
                const int i = ((t >> lg) << (lg + 1)) | (t & (len - 1)), j = i + len;   /* pair (i, i + len) */
                const int64_t x0 = v[i], x1 = v[j];
                v[i] = x0 + x1;
                v[j] = x0 - x1;
            }
        }
        for (int i = 0; i < p; i++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI)
            HK_PRAGMA(HLS pipeline II=1)
            hk_long_s_push(out, v[i]);
        }
    }
}

/* out[b p + a] = round(sum_b' H_m[b][b'] v[b' p + a] 2^rot_L): m adds/subtracts per output. */
void hk_htu_matrix(hk_wide_s *out, hk_long_s *in, const hk_layer *L) {
    const int n = L->di, m = L->rot_m, p = m ? n / m : n;
    int64_t v[HK_MAX_DI];
    for (int i = 0; i < n; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI)
        HK_PRAGMA(HLS pipeline II=1)
        v[i] = hk_long_s_pop(in);
        if (m == 0) hk_wide_s_push(out, (int32_t)v[i]);   /* no rotation: the wide input, unchanged */
    }
    for (int b = 0; b < m; b++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_HTU_MAX_BASE)
        for (int a = 0; a < p; a++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI)
            HK_PRAGMA(HLS pipeline II=1)
            int64_t acc = 0;
            for (int bb = 0; bb < HK_HTU_MAX_BASE; bb++) {
                HK_PRAGMA(HLS unroll)
                if (bb < m) acc += L->rot_base[b][bb] > 0 ? v[bb * p + a] : -v[bb * p + a];
            }
            hk_wide_s_push(out, hk_shift_sat32(acc, L->rot_L));
        }
    }
}
