/* The matrix unit and its feeders: activation quantizer, weight reader, MMU (hk.h). */
#include "hk.h"

/* Wide values [n] (n a multiple of 8) -> PoT(abits) per 8 channels at site F -> the kernels.h
 * activation format: e_g = s_g - F, eb = max e_g - SA_MAX (15 at 4 bits, 7 at 8), sa_g = e_g - eb;
 * a group below eb is rounded right to eb (sa 0). Pass 1 quantizes as values stream in and
 * tracks the max exponent; pass 2 rebases (it needs the max). Entries past n are zeroed: the
 * MMU reads whole CIP chunks. */
void hk_act_quant(hk_act *a, hk_wide_s *in, int n, int F, int abits) {
    const int groups = n / HK_GROUP, sa_max = abits == 4 ? 15 : 7;
    int8_t q[HK_MAX_K];
    uint8_t s[HK_MAX_K / HK_GROUP];
    int emax = -(1 << 20);
    for (int g = 0; g < groups; g++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_K/8)
        HK_PRAGMA(HLS pipeline II=1)
        int32_t X[HK_GROUP];
        int8_t q8[HK_GROUP];
        for (int i = 0; i < HK_GROUP; i++) X[i] = hk_wide_s_pop(in);
        s[g] = hk_pot_group(q8, X, HK_GROUP, abits);
        for (int i = 0; i < HK_GROUP; i++) q[g * HK_GROUP + i] = q8[i];
        if (s[g] - F > emax) emax = s[g] - F;
    }
    const int base = emax - sa_max;
    for (int g = 0; g < groups; g++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_K/8)
        HK_PRAGMA(HLS pipeline II=1)
        const int rel = s[g] - F - base;
        for (int i = 0; i < HK_GROUP; i++) {
            const int k = g * HK_GROUP + i;
            a->q[k] = rel >= 0 ? q[k] : (int8_t)hk_shift_sat32(q[k], rel);
        }
        a->sa[g] = (uint8_t)(rel >= 0 ? rel : 0);
    }
    for (int k = n; k < HK_MAX_K; k++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_K)
        a->q[k] = 0;
        if (k % HK_GROUP == 0) a->sa[k / HK_GROUP] = 0;
    }
    a->eb = base;
}

/* The 4-bit slice the MMU multiplies for weight qw[o][k] (kernels.h packing: two's complement
 * nibbles, low nibble first; or int8): 4-bit weights are their own (signed) slice; an 8-bit
 * weight w = 16 hi + lo is two, slice 0 the low nibble lo (unsigned, 0..15), slice 1 the high
 * nibble hi = w >> 4 (signed, -8..7). */
static int8_t hk_weight_slice(const uint8_t *q, int stride, int wbits, int o, int k, int slice) {
    const uint8_t *row = q + (long)o * stride;
    if (wbits == 8) return slice ? (int8_t)((int8_t)row[k] >> 4) : (int8_t)(row[k] & 15);
    const int nib = (row[k >> 1] >> ((k & 1) * 4)) & 15;
    return (int8_t)(nib >= 8 ? nib - 16 : nib);
}

/* Streams a weight matrix [O, K] in MMU order: per group of COP rows, its e0, then for each
 * chunk of CIP inputs one beat of 4-bit slices per slice (two for 8-bit weights, so W8 takes
 * twice the cycles: the simulator's x2); a new 128-input group first sends its COP scale bytes.
 * Rows past O and inputs past K are zeros (the last row group and chunk are padded). */
void hk_weight_reader(hk_wbeat_s *wb, hk_wscale_s *wsc, hk_we0_s *we, const uint8_t *q, const uint8_t *scale,
                      const int8_t *e0, int O, int K, int wbits) {
    const int groups = (K + HK_WGROUP - 1) / HK_WGROUP, stride = wbits == 4 ? (K + 1) / 2 : K;
    const int row_groups = (O + HK_COP - 1) / HK_COP, chunks = (K + HK_CIP - 1) / HK_CIP;
    const int lg_slices = wbits == 8 ? 1 : 0;
    for (int rg = 0; rg < row_groups; rg++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_ROW_GROUPS)
        hk_we0 e;
        for (int r = 0; r < HK_COP; r++) {
            const int o = rg * HK_COP + r;
            e.e0[r] = o < O ? e0[o] : 0;
        }
        hk_we0_s_push(we, e);
        for (int c = 0; c < chunks << lg_slices; c++) {
            HK_PRAGMA(HLS loop_tripcount max=2*HK_MAX_K/HK_CIP)
            HK_PRAGMA(HLS pipeline II=1)
            const int k0 = (c >> lg_slices) * HK_CIP, slice = c & lg_slices;
            if (k0 % HK_WGROUP == 0 && slice == 0) {
                hk_wscale sc;
                for (int r = 0; r < HK_COP; r++) {
                    const int o = rg * HK_COP + r;
                    sc.sc[r] = o < O ? scale[(long)o * groups + k0 / HK_WGROUP] : 0;
                }
                hk_wscale_s_push(wsc, sc);
            }
            hk_wbeat b;
            for (int r = 0; r < HK_COP; r++)
                for (int i = 0; i < HK_CIP; i++) {
                    const int o = rg * HK_COP + r, k = k0 + i;
                    b.w[r][i] = o < O && k < K ? hk_weight_slice(q, stride, wbits, o, k, slice) : 0;
                }
            hk_wbeat_s_push(wb, b);
        }
    }
}

/* y[o] = sat32(round(acc_o * 2^(eb + e0[o] + F))) for O rows of K inputs (kernels.h contract):
 *   each cycle: COP rows x CIP inputs of (abits x 4-bit) products; per 8 inputs a dot of 8
 *   shifted by the group's sa and by 4 for the high slice of an 8-bit weight, summed into acc_G
 *   (34 bits at W8A4: int64 here);
 *   at the end of each 128-input group: acc_o += (acc_G << s1) + (acc_G << s2)   (int64).
 * Exact integer arithmetic: any CIP, COP give the same bits. */
void hk_mmu(hk_wide_s *out, const hk_act *a, hk_wbeat_s *wb, hk_wscale_s *wsc, hk_we0_s *we, int O, int K, int wbits,
            int F) {
    const int row_groups = (O + HK_COP - 1) / HK_COP, chunks = (K + HK_CIP - 1) / HK_CIP;
    const int lg_slices = wbits == 8 ? 1 : 0;
    for (int rg = 0; rg < row_groups; rg++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_ROW_GROUPS)
        const hk_we0 e = hk_we0_s_pop(we);
        int64_t acc[HK_COP], accG[HK_COP];
        HK_PRAGMA(HLS array_partition variable=acc complete)
        HK_PRAGMA(HLS array_partition variable=accG complete)
        hk_wscale sc = {{0}};
        for (int r = 0; r < HK_COP; r++) acc[r] = accG[r] = 0;
        for (int c = 0; c < chunks << lg_slices; c++) {
            HK_PRAGMA(HLS loop_tripcount max=2*HK_MAX_K/HK_CIP)
            HK_PRAGMA(HLS pipeline II=1)
            const int chunk = c >> lg_slices, slice = c & lg_slices, k0 = chunk * HK_CIP;
            if (k0 % HK_WGROUP == 0 && slice == 0) {
                sc = hk_wscale_s_pop(wsc);
                for (int r = 0; r < HK_COP; r++) accG[r] = 0;
            }
            const hk_wbeat b = hk_wbeat_s_pop(wb);
            for (int r = 0; r < HK_COP; r++) {
                HK_PRAGMA(HLS unroll)
                int64_t sum = 0;
                for (int j = 0; j < HK_CIP / HK_GROUP; j++) {
                    HK_PRAGMA(HLS unroll)
                    int32_t dot = 0;               /* 8 products of 8b x 4b: 15 bits */
                    for (int i = 0; i < HK_GROUP; i++) {
                        HK_PRAGMA(HLS unroll)
                        dot += (int32_t)a->q[k0 + j * HK_GROUP + i] * b.w[r][j * HK_GROUP + i];
                    }
                    sum += (int64_t)dot * ((int64_t)1 << (a->sa[k0 / HK_GROUP + j] + 4 * slice));
                }
                accG[r] += sum;
            }
            if (slice == lg_slices && ((k0 + HK_CIP) % HK_WGROUP == 0 || chunk == chunks - 1))
                for (int r = 0; r < HK_COP; r++) {
                    HK_PRAGMA(HLS unroll)
                    const int s1 = sc.sc[r] & 7, s2 = (sc.sc[r] >> 4) & 7;
                    acc[r] += accG[r] * ((int64_t)1 << s1) + accG[r] * ((int64_t)1 << s2);   /* two shifts, one add */
                }
        }
        for (int r = 0; r < HK_COP; r++) {
            HK_PRAGMA(HLS pipeline II=1)
            if (rg * HK_COP + r < O) hk_wide_s_push(out, hk_rescale(acc[r], a->eb + e.e0[r] + F));
        }
    }
}
