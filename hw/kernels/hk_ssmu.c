/* The SSM side of a layer: router, conv, SiLU(z), dt/dA, the four tiled SSMU stages and the
 * state movers (hk.h). Sizes: H heads, P head_dim, N d_state, G groups, C = di + 2GN. */
#include "hk.h"

/* The reordered in_proj output [dt (H) | B (GN) | C (GN) | x_0 (P) z_0 (P) | x_1 z_1 | ...] is
 * split: dt to the dt unit, B, C, x_h (in that order) to the conv, z_h to the z path. */
void hk_router(hk_wide_s *dt, hk_wide_s *xbc, hk_wide_s *z, hk_wide_s *in, const hk_layer *L) {
    for (int i = 0; i < L->H; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        HK_PRAGMA(HLS pipeline II=1)
        hk_wide_s_push(dt, hk_wide_s_pop(in));
    }
    for (int i = 0; i < 2 * L->G * L->N; i++) {
        HK_PRAGMA(HLS loop_tripcount max=2*HK_MAX_G*HK_MAX_N)
        HK_PRAGMA(HLS pipeline II=1)
        hk_wide_s_push(xbc, hk_wide_s_pop(in));
    }
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        for (int i = 0; i < 2 * L->P; i++) {
            HK_PRAGMA(HLS loop_tripcount max=2*HK_MAX_P)
            HK_PRAGMA(HLS pipeline II=1)
            const int32_t v = hk_wide_s_pop(in);
            if (i < L->P) hk_wide_s_push(xbc, v);
            else hk_wide_s_push(z, v);
        }
    }
}

/* Per 8 channels, in arrival order (B, C, then x head by head; natural channel group
 * di/8 + i for the first 2GN/8 groups, i - 2GN/8 after): pot8 of the input at F_ip, then
 *   out[c] = sat32(sum_k round(w[c][k] q_k[c] 2^(s_k + ew[c/8][k] - F_ip + F_conv)) + round(b[c] 2^(eb + F_conv)))
 * over the W-1 state rows (oldest first) and this input, SiLU LUT, pot8. Under HK_DP_TRUNC the
 * terms are summed exactly at the finest of their scales and floored once (the host keeps their
 * scales within 40 of each other, so int64 holds the sum). The group's state rows shift by one
 * (oldest out, this input in), in place. */
void hk_conv(hk_pot8_s *out, hk_wide_s *xbc, int8_t *conv_q, uint8_t *conv_s, const hk_layer *L) {
    const int C = L->C, Cg = C / HK_GROUP, W = L->W, bc_groups = 2 * L->G * L->N / HK_GROUP;
    for (int i = 0; i < Cg; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_C/8)
        HK_PRAGMA(HLS pipeline II=1)
        const int g = i < bc_groups ? L->di / HK_GROUP + i : i - bc_groups;
        int32_t X[HK_GROUP], v[HK_GROUP];
        int8_t q[HK_GROUP];
        for (int j = 0; j < HK_GROUP; j++) X[j] = hk_wide_s_pop(xbc);
        const uint8_t s = hk_pot_group(q, X, HK_GROUP, 8);
        for (int j = 0; j < HK_GROUP; j++) {
            HK_PRAGMA(HLS unroll)
            const int c = g * HK_GROUP + j;
            int32_t t[HK_MAX_W + 1];             /* the taps' products, then the bias */
            int sc[HK_MAX_W + 1], lo = 127;      /* their scales in output LSBs */
            for (int k = 0; k < HK_MAX_W + 1; k++) {
                HK_PRAGMA(HLS unroll)
                const int tap = k < W, bias = k == HK_MAX_W && L->conv_bias;
                const int8_t xq = !tap ? 0 : k < W - 1 ? conv_q[k * C + c] : q[j];
                const int xs = !tap ? 0 : k < W - 1 ? conv_s[k * Cg + g] : s;
                t[k] = tap ? (int32_t)xq * L->conv_w[c][k] : bias ? L->conv_b[c] : 0;
                sc[k] = tap ? xs + L->conv_ew[g][k] - L->F_ip + L->F_conv : L->conv_eb[g] + L->F_conv;
                if ((tap || bias) && sc[k] < lo) lo = sc[k];
            }
            int64_t acc = 0;
            for (int k = 0; k < HK_MAX_W + 1; k++) {
                HK_PRAGMA(HLS unroll)
                if (HK_DATAPATH & HK_DP_TRUNC) acc += (int64_t)t[k] * ((int64_t)1 << (t[k] ? sc[k] - lo : 0));
                else acc += hk_shift_sat32(t[k], sc[k]);
            }
            v[j] = hk_lut_apply(&L->silu_xbc, HK_DATAPATH & HK_DP_TRUNC ? hk_rescale(acc, lo) : hk_sat32(acc));
        }
        for (int k = 0; k < HK_MAX_W - 1; k++) {
            HK_PRAGMA(HLS unroll)
            if (k < W - 1) {
                for (int j = 0; j < HK_GROUP; j++) {
                    const int c = g * HK_GROUP + j;
                    conv_q[k * C + c] = k < W - 2 ? conv_q[(k + 1) * C + c] : q[j];
                }
                conv_s[k * Cg + g] = k < W - 2 ? conv_s[(k + 1) * Cg + g] : s;
            }
        }
        hk_pot8 o;
        o.s = hk_pot_group(o.q, v, HK_GROUP, 8);
        hk_pot8_s_push(out, o);
    }
}

/* SiLU(z) by LUT, pot8 per 8 channels (z arrives head by head: natural order). */
void hk_zpath(hk_pot8_s *out, hk_wide_s *z, const hk_layer *L) {
    for (int i = 0; i < L->di / HK_GROUP; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_DI/8)
        HK_PRAGMA(HLS pipeline II=1)
        int32_t v[HK_GROUP];
        for (int j = 0; j < HK_GROUP; j++) v[j] = hk_lut_apply(&L->silu_z, hk_wide_s_pop(z));
        hk_pot8 o;
        o.s = hk_pot_group(o.q, v, HK_GROUP, 8);
        hk_pot8_s_push(out, o);
    }
}

/* Per group of (up to) 8 heads:
 *   dt = clamp(softplus(sat32(dt_raw + round(bq 2^(be + F_sp)))), dt_lo, dt_hi)  -> pot8
 *   dA = exp(round(q_dt qA 2^(s_dt - F_dt + eA + F_exp)))                       -> pot8
 * Each head's (dt, dA) goes to SSMU stage 1 (dt) and stage 2 (dA). */
void hk_dt_unit(hk_headc_s *out_dbx, hk_headc_s *out_upd, hk_wide_s *dt, const hk_layer *L) {
    for (int g0 = 0; g0 < L->H; g0 += HK_GROUP) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_HG)
        HK_PRAGMA(HLS pipeline II=1)
        const int g = g0 / HK_GROUP, len = L->H - g0 < HK_GROUP ? L->H - g0 : HK_GROUP;
        int32_t v[HK_GROUP], va[HK_GROUP];
        int8_t q_dt[HK_GROUP], q_dA[HK_GROUP];
        for (int i = 0; i < HK_GROUP; i++) {
            v[i] = 0;
            if (i < len) {
                const int h = g0 + i;
                const int32_t x = hk_sat32((int64_t)hk_wide_s_pop(dt) +
                                           hk_rescale(L->dt_bq[h], L->dt_be[g] + L->softplus.F_in));
                const int32_t d = hk_lut_apply(&L->softplus, x);
                v[i] = d < L->dt_lo ? L->dt_lo : d > L->dt_hi ? L->dt_hi : d;
            }
        }
        const uint8_t s_dt = hk_pot_group(q_dt, v, len, 8);
        for (int i = 0; i < HK_GROUP; i++) {                 /* lanes past H (q_dt = 0) are ignored */
            const int h = g0 + i < L->H ? g0 + i : L->H - 1;
            va[i] = hk_lut_apply(&L->exp, hk_rescale((int32_t)q_dt[i] * L->A_q[h], s_dt - L->F_dt + L->A_e[g] + L->exp.F_in));
        }
        const uint8_t s_dA = hk_pot_group(q_dA, va, len, 8);
        for (int i = 0; i < len; i++) {
            HK_PRAGMA(HLS loop_tripcount max=8)
            const hk_headc c = {q_dt[i], q_dA[i], s_dt, s_dA};
            hk_headc_s_push(out_dbx, c);
            hk_headc_s_push(out_upd, c);
        }
    }
}

/* The SSM state moves in tiles, head by head, p-tile by p-tile, n-tile by n-tile (the order every
 * stage uses). h_q [H, P, N], h_s [H, P/8, N]. */
void hk_state_reader(hk_state_s *out, const int8_t *h_q, const uint8_t *h_s, const hk_layer *L) {
    const int P = L->P, N = L->N;
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        for (int pt = 0; pt < P / HK_PP; pt++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/HK_PP)
            for (int nt = 0; nt < N / HK_NP; nt++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_N/HK_NP)
                HK_PRAGMA(HLS pipeline II=1)
                hk_state_tile t;
                for (int p = 0; p < HK_PP; p++)
                    for (int n = 0; n < HK_NP; n++)
                        t.q[p][n] = h_q[((long)h * P + pt * HK_PP + p) * N + nt * HK_NP + n];
                for (int pg = 0; pg < HK_PP / HK_GROUP; pg++)
                    for (int n = 0; n < HK_NP; n++)
                        t.s[pg][n] = h_s[((long)h * (P / HK_GROUP) + pt * (HK_PP / HK_GROUP) + pg) * N + nt * HK_NP + n];
                hk_state_s_push(out, t);
            }
        }
    }
}

void hk_state_writer(int8_t *h_q, uint8_t *h_s, hk_state_s *in, const hk_layer *L) {
    const int P = L->P, N = L->N;
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        for (int pt = 0; pt < P / HK_PP; pt++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/HK_PP)
            for (int nt = 0; nt < N / HK_NP; nt++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_N/HK_NP)
                HK_PRAGMA(HLS pipeline II=1)
                const hk_state_tile t = hk_state_s_pop(in);
                for (int p = 0; p < HK_PP; p++)
                    for (int n = 0; n < HK_NP; n++)
                        h_q[((long)h * P + pt * HK_PP + p) * N + nt * HK_NP + n] = t.q[p][n];
                for (int pg = 0; pg < HK_PP / HK_GROUP; pg++)
                    for (int n = 0; n < HK_NP; n++)
                        h_s[((long)h * (P / HK_GROUP) + pt * (HK_PP / HK_GROUP) + pg) * N + nt * HK_NP + n] = t.s[pg][n];
            }
        }
    }
}

/* Stage 1. B (all groups) is kept on chip, C is passed on to stage 3; then per group of (up to)
 * 8 heads:
 *   dB[h][n] = round(q_dt q_B[n] 2^(s_dt + s_B - F_dt - F_u + F_dB))   pot8 per 8 states of a head
 *                                      (HK_DP_DB_HEADS: per 8 heads of a state, hence the group)
 * and per head of it
 *   dBx[p][n] = round(q_dB[n] q_x[p] 2^(s_dB + s_x - F_dB - F_u + F_h))       per n_p x p_p tile
 * x_h is passed on to stage 4 (D x). */
void hk_ssm_dbx(hk_dbx_s *out, hk_pot8_s *x_fwd, hk_pot8_s *c_fwd, hk_pot8_s *xbc, hk_headc_s *dt, const hk_layer *L) {
    const int P = L->P, N = L->N, GN8 = L->G * L->N / HK_GROUP;
    int8_t Bq[HK_MAX_G * HK_MAX_N];
    uint8_t Bs[HK_MAX_G * HK_MAX_N / HK_GROUP];
    for (int i = 0; i < GN8; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_G*HK_MAX_N/8)
        HK_PRAGMA(HLS pipeline II=1)
        const hk_pot8 b = hk_pot8_s_pop(xbc);
        for (int j = 0; j < HK_GROUP; j++) Bq[i * HK_GROUP + j] = b.q[j];
        Bs[i] = b.s;
    }
    for (int i = 0; i < GN8; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_G*HK_MAX_N/8)
        HK_PRAGMA(HLS pipeline II=1)
        hk_pot8_s_push(c_fwd, hk_pot8_s_pop(xbc));
    }
    for (int h0 = 0; h0 < L->H; h0 += HK_GROUP) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_HG)
        const int len = L->H - h0 < HK_GROUP ? L->H - h0 : HK_GROUP;
        hk_headc hc[HK_GROUP];
        int8_t dBq[HK_GROUP][HK_MAX_N];
        uint8_t dBs[HK_GROUP][HK_MAX_N];              /* the exponent of each (head, state) */
        for (int i = 0; i < len; i++) {
            HK_PRAGMA(HLS loop_tripcount max=8)
            hc[i] = hk_headc_s_pop(dt);
        }
        for (int ng = 0; ng < N / HK_GROUP; ng++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_N/8)
            HK_PRAGMA(HLS pipeline II=1)
            int32_t v[HK_GROUP][HK_GROUP];            /* [head][state] of this 8 x 8 block, wide at F_dB */
            for (int i = 0; i < HK_GROUP; i++) {
                const int h = h0 + (i < len ? i : 0), g = h / (L->H / L->G);
                const int sh = hc[i < len ? i : 0].s_dt + Bs[(g * N) / HK_GROUP + ng] - L->F_dt - L->F_u + L->F_dB;
                for (int j = 0; j < HK_GROUP; j++)
                    v[i][j] = hk_rescale((int32_t)hc[i < len ? i : 0].q_dt * Bq[g * N + ng * HK_GROUP + j], sh);
            }
            for (int k = 0; k < HK_GROUP; k++) {
                /* HK_DP_DB_HEADS: the group of state k over the heads; ours: the group of head k over the states */
                int32_t X[HK_GROUP];
                int8_t q[HK_GROUP];
                for (int i = 0; i < HK_GROUP; i++) X[i] = HK_DATAPATH & HK_DP_DB_HEADS ? v[i][k] : v[k][i];
                const uint8_t e = hk_pot_group(q, X, HK_DATAPATH & HK_DP_DB_HEADS ? len : HK_GROUP, 8);
                for (int i = 0; i < HK_GROUP; i++) {
                    const int hi = HK_DATAPATH & HK_DP_DB_HEADS ? i : k, ni = ng * HK_GROUP + (HK_DATAPATH & HK_DP_DB_HEADS ? k : i);
                    dBq[hi][ni] = q[i];
                    dBs[hi][ni] = e;
                }
            }
        }
        for (int i = 0; i < len; i++) {
            HK_PRAGMA(HLS loop_tripcount max=8)
            int8_t xq[HK_MAX_P];
            uint8_t xs[HK_MAX_P / HK_GROUP];
            for (int pg = 0; pg < P / HK_GROUP; pg++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/8)
                HK_PRAGMA(HLS pipeline II=1)
                const hk_pot8 x = hk_pot8_s_pop(xbc);
                for (int k = 0; k < HK_GROUP; k++) xq[pg * HK_GROUP + k] = x.q[k];
                xs[pg] = x.s;
                hk_pot8_s_push(x_fwd, x);
            }
            const int base = -L->F_dB - L->F_u + L->F_h;
            for (int pt = 0; pt < P / HK_PP; pt++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/HK_PP)
                for (int nt = 0; nt < N / HK_NP; nt++) {
                    HK_PRAGMA(HLS loop_tripcount max=HK_MAX_N/HK_NP)
                    hk_dbx_tile t;
                    for (int p = 0; p < HK_PP; p++)
                        for (int n = 0; n < HK_NP; n++) {
                            HK_PRAGMA(HLS pipeline II=1)
                            HK_PRAGMA(HLS unroll factor=HK_SSMU_LANES)
                            const int pp = pt * HK_PP + p, nn = nt * HK_NP + n;
                            t.v[p][n] = hk_rescale((int32_t)dBq[i][nn] * xq[pp], dBs[i][nn] + xs[pp / HK_GROUP] + base);
                        }
                    hk_dbx_s_push(out, t);
                }
            }
        }
    }
}

/* Stage 2, per tile: h = sat32(round(q_dA h_q 2^(s_dA + h_s - F_dA)) + dBx)   (wide at F_h), then
 * the stored state: pot8 per 8 head_dim channels (a column of 8 rows for each n), and h2: pot8
 * per 8 states (a row segment for each p) for the C contraction. */
void hk_ssm_update(hk_state_s *st_out, hk_h2_s *h2_out, hk_dbx_s *dbx, hk_state_s *st_in, hk_headc_s *dA,
                   const hk_layer *L) {
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        const hk_headc hc = hk_headc_s_pop(dA);
        for (int t = 0; t < (L->P / HK_PP) * (L->N / HK_NP); t++) {
            HK_PRAGMA(HLS loop_tripcount max=(HK_MAX_P/HK_PP)*(HK_MAX_N/HK_NP))
            const hk_dbx_tile d = hk_dbx_s_pop(dbx);
            const hk_state_tile s = hk_state_s_pop(st_in);
            int32_t hw[HK_PP][HK_NP];
            for (int p = 0; p < HK_PP; p++)
                for (int n = 0; n < HK_NP; n++) {
                    HK_PRAGMA(HLS pipeline II=1)
                    HK_PRAGMA(HLS unroll factor=HK_SSMU_LANES)
                    const int32_t dAh = hk_rescale((int32_t)hc.q_dA * s.q[p][n], hc.s_dA + s.s[p / HK_GROUP][n] - L->F_dA);
                    hw[p][n] = hk_sat32((int64_t)dAh + d.v[p][n]);
                }
            hk_state_tile o;
            hk_h2_tile o2;
            for (int pg = 0; pg < HK_PP / HK_GROUP; pg++)
                for (int n = 0; n < HK_NP; n++) {
                    HK_PRAGMA(HLS pipeline II=1)
                    int32_t X[HK_GROUP];
                    int8_t q[HK_GROUP];
                    for (int i = 0; i < HK_GROUP; i++) X[i] = hw[pg * HK_GROUP + i][n];
                    o.s[pg][n] = hk_pot_group(q, X, HK_GROUP, 8);
                    for (int i = 0; i < HK_GROUP; i++) o.q[pg * HK_GROUP + i][n] = q[i];
                }
            for (int p = 0; p < HK_PP; p++)
                for (int ng = 0; ng < HK_NP / HK_GROUP; ng++) {
                    HK_PRAGMA(HLS pipeline II=1)
                    o2.s[p][ng] = hk_pot_group(&o2.q[p][ng * HK_GROUP], &hw[p][ng * HK_GROUP], HK_GROUP, 8);
                }
            hk_state_s_push(st_out, o);
            hk_h2_s_push(h2_out, o2);
        }
    }
}

/* Stage 3: yC[p] = round(sum_{groups of 8 n} (sum_8 h2_q q_C) 2^(h2_s + s_C) 2^(F_y - F_h - F_u)),
 * the sum exact in int64 across the n tiles of a p-tile (so the tiling cannot change it). */
void hk_ssm_hc(hk_wide_s *yc, hk_h2_s *h2, hk_pot8_s *c_in, const hk_layer *L) {
    const int N = L->N, GN8 = L->G * L->N / HK_GROUP;
    int8_t Cq[HK_MAX_G * HK_MAX_N];
    uint8_t Cs[HK_MAX_G * HK_MAX_N / HK_GROUP];
    for (int i = 0; i < GN8; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_G*HK_MAX_N/8)
        HK_PRAGMA(HLS pipeline II=1)
        const hk_pot8 c = hk_pot8_s_pop(c_in);
        for (int j = 0; j < HK_GROUP; j++) Cq[i * HK_GROUP + j] = c.q[j];
        Cs[i] = c.s;
    }
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        const int g = h / (L->H / L->G);
        for (int pt = 0; pt < L->P / HK_PP; pt++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/HK_PP)
            int64_t acc[HK_PP];
            HK_PRAGMA(HLS array_partition variable=acc complete)
            for (int p = 0; p < HK_PP; p++) acc[p] = 0;
            for (int nt = 0; nt < N / HK_NP; nt++) {
                HK_PRAGMA(HLS loop_tripcount max=HK_MAX_N/HK_NP)
                const hk_h2_tile t = hk_h2_s_pop(h2);
                for (int p = 0; p < HK_PP; p++)
                    for (int ng = 0; ng < HK_NP / HK_GROUP; ng++) {
                        HK_PRAGMA(HLS pipeline II=1)
                        const int c0 = g * N + nt * HK_NP + ng * HK_GROUP;
                        int32_t dot = 0;                     /* 8 products of 14 bits: 17 bits */
                        for (int i = 0; i < HK_GROUP; i++) dot += (int32_t)t.q[p][ng * HK_GROUP + i] * Cq[c0 + i];
                        acc[p] += (int64_t)dot * ((int64_t)1 << (t.s[p][ng] + Cs[c0 / HK_GROUP]));
                    }
            }
            for (int p = 0; p < HK_PP; p++) {
                HK_PRAGMA(HLS pipeline II=1)
                hk_wide_s_push(yc, hk_rescale(acc[p], L->F_y - L->F_h - L->F_u));
            }
        }
    }
}

/* Stage 4, per 8 channels of a head: y = sat32(yC + round(q_x qD 2^(s_x + eD - F_u + F_y))),
 * pot8, then the gate out = round(q_y q_z 2^(s_y + s_z - F_y - F_zs + F_g)) (wide at F_g). */
void hk_ssm_y(hk_wide_s *out, hk_wide_s *yc, hk_pot8_s *x, hk_pot8_s *z, const hk_layer *L) {
    for (int h = 0; h < L->H; h++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_H)
        const int hg = h / HK_GROUP;
        for (int pg = 0; pg < L->P / HK_GROUP; pg++) {
            HK_PRAGMA(HLS loop_tripcount max=HK_MAX_P/8)
            HK_PRAGMA(HLS pipeline II=1)
            const hk_pot8 xv = hk_pot8_s_pop(x), zv = hk_pot8_s_pop(z);
            int32_t Y[HK_GROUP];
            int8_t yq[HK_GROUP];
            for (int i = 0; i < HK_GROUP; i++) {
                const int32_t Dx = hk_rescale((int32_t)xv.q[i] * L->D_q[h], xv.s + L->D_e[hg] - L->F_u + L->F_y);
                Y[i] = hk_sat32((int64_t)hk_wide_s_pop(yc) + Dx);
            }
            const uint8_t ys = hk_pot_group(yq, Y, HK_GROUP, 8);
            for (int i = 0; i < HK_GROUP; i++)
                hk_wide_s_push(out, hk_rescale((int32_t)yq[i] * zv.q[i], ys + zv.s - L->F_y - L->F_zs + L->F_g));
        }
    }
}
