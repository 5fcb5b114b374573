/* One decode step of one layer: the units wired by streams (hk.h).
 *
 *  u -> hk_read_vec -> hk_rmsnorm -> hk_act_quant -> [act] -> hk_mmu (in_proj) <- hk_weight_reader
 *  hk_mmu -> hk_router -+-> dt  -> hk_dt_unit: dt -> hk_ssm_dbx, dA -> hk_ssm_update
 *                       +-> xbc -> hk_conv: B, C, x_h -> hk_ssm_dbx -> dBx -> hk_ssm_update -> h2 -> hk_ssm_hc
 *                       +-> z   -> hk_zpath: SiLU(z) -> hk_ssm_y <- yC (hk_ssm_hc), x_h (hk_ssm_dbx)
 *  state: hk_state_reader -> hk_ssm_update -> hk_state_writer;  C: hk_ssm_dbx -> hk_ssm_hc
 *  hk_ssm_y -> hk_rmsnorm (gated) -> hk_htu_fwht -> hk_htu_matrix -> hk_act_quant -> [act]
 *  [act] -> hk_mmu (out_proj) <- hk_weight_reader;  hk_mmu -> hk_residual -> u
 *
 * Two dataflow regions: the mixer (everything up to out_proj's input) and the output (out_proj and
 * the residual). out_proj's input needs all of y (the gated norm and the Hadamard mix every
 * channel), so the regions meet at a barrier, and the one MMU serves both (allocation limit 1). */
#include "hk.h"

void hk_read_vec(hk_wide_s *out, const int32_t *u, int n) {
    for (int i = 0; i < n; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_D)
        HK_PRAGMA(HLS pipeline II=1)
        hk_wide_s_push(out, u[i]);
    }
}

/* u = sat32(u + delta), Q10. */
void hk_residual(int32_t *u, hk_wide_s *delta, int n) {
    for (int i = 0; i < n; i++) {
        HK_PRAGMA(HLS loop_tripcount max=HK_MAX_D)
        HK_PRAGMA(HLS pipeline II=1)
        u[i] = hk_sat32((int64_t)u[i] + hk_wide_s_pop(delta));
    }
}

static int hk_pow2(int x) { return x > 0 && (x & (x - 1)) == 0; }

int hk_layer_check(const hk_layer *L) {
    const int ok =
        L->D >= 8 && L->D <= HK_MAX_D && L->D % HK_GROUP == 0 && L->P >= 8 && L->P <= HK_MAX_P &&
        L->P % HK_PP == 0 && L->N >= 8 && L->N <= HK_MAX_N && L->N % HK_NP == 0 && L->H >= 1 &&
        L->H <= HK_MAX_H && L->G >= 1 && L->G <= HK_MAX_G && L->H % L->G == 0 && L->di == L->H * L->P &&
        L->di <= HK_MAX_DI && L->W >= 1 && L->W <= HK_MAX_W && L->C == L->di + 2 * L->G * L->N &&
        L->E == L->di + L->C + L->H && (L->abits == 4 || L->abits == 8) && (L->wbits == 4 || L->wbits == 8) &&
        L->norm.n == L->D && L->norm.group == L->D && L->gnorm.n == L->di && L->gnorm.group * L->G == L->di &&
        (L->rot_m == 0 || (L->rot_m <= HK_HTU_MAX_BASE && L->di % L->rot_m == 0 && hk_pow2(L->di / L->rot_m)));
    return ok ? HK_OK : HK_ERR_SHAPE;
}

/* C simulation: every stream drained at the end of a region (a leftover is a design error). */
#ifndef __SYNTHESIS__
#define HK_DRAINED(type, s) if (!type##_empty(&(s))) hk_stream_faults++
#else
#define HK_DRAINED(type, s)
#endif

/* Everything up to out_proj's input, for one token. */
static void hk_mixer(hk_act *a_out, const int32_t *u, int8_t *conv_q, uint8_t *conv_s, int8_t *h_q, uint8_t *h_s,
                     const hk_layer *L, const uint8_t *in_q, const uint8_t *in_scale, const int8_t *in_e0) {
    HK_PRAGMA(HLS dataflow)
    static hk_act a_in;
    static hk_wide_s s_u, s_n1, s_ip, s_dt, s_xbc, s_z, s_yc, s_g, s_n2, s_rot;
    static hk_long_s s_fw;
    static hk_wbeat_s s_wb;
    static hk_wscale_s s_wsc;
    static hk_we0_s s_we;
    static hk_pot8_s s_u8, s_z8, s_xf, s_cf;
    static hk_headc_s s_hc1, s_hc2;
    static hk_state_s s_st_in, s_st_out;
    static hk_dbx_s s_dbx;
    static hk_h2_s s_h2;
    HK_PRAGMA(HLS stream variable=s_u depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_n1 depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_ip depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_dt depth=HK_MAX_H)
    HK_PRAGMA(HLS stream variable=s_xbc depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_z depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_yc depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_g depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_n2 depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_rot depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_fw depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_wb depth=HK_DEPTH_WBEAT)
    HK_PRAGMA(HLS stream variable=s_wsc depth=HK_DEPTH_GROUPS)
    HK_PRAGMA(HLS stream variable=s_we depth=4)
    HK_PRAGMA(HLS stream variable=s_u8 depth=HK_DEPTH_GROUPS)
    HK_PRAGMA(HLS stream variable=s_z8 depth=HK_DEPTH_XZ)
    HK_PRAGMA(HLS stream variable=s_xf depth=HK_DEPTH_XZ)
    HK_PRAGMA(HLS stream variable=s_cf depth=HK_MAX_G*HK_MAX_N/8)
    HK_PRAGMA(HLS stream variable=s_hc1 depth=HK_MAX_H)
    HK_PRAGMA(HLS stream variable=s_hc2 depth=HK_MAX_H)
    HK_PRAGMA(HLS stream variable=s_st_in depth=HK_DEPTH_TILE)
    HK_PRAGMA(HLS stream variable=s_st_out depth=HK_DEPTH_TILE)
    HK_PRAGMA(HLS stream variable=s_dbx depth=HK_DEPTH_TILE)
    HK_PRAGMA(HLS stream variable=s_h2 depth=HK_DEPTH_TILE)

    hk_read_vec(&s_u, u, L->D);
    hk_rmsnorm(&s_n1, &s_u, &L->norm, L);
    hk_act_quant(&a_in, &s_n1, L->D, L->norm.F_out, L->abits);
    hk_weight_reader(&s_wb, &s_wsc, &s_we, in_q, in_scale, in_e0, L->E, L->D, L->wbits);
    hk_mmu(&s_ip, &a_in, &s_wb, &s_wsc, &s_we, L->E, L->D, L->wbits, L->F_ip);
    hk_router(&s_dt, &s_xbc, &s_z, &s_ip, L);
    hk_conv(&s_u8, &s_xbc, conv_q, conv_s, L);
    hk_zpath(&s_z8, &s_z, L);
    hk_dt_unit(&s_hc1, &s_hc2, &s_dt, L);
    hk_state_reader(&s_st_in, h_q, h_s, L);
    hk_ssm_dbx(&s_dbx, &s_xf, &s_cf, &s_u8, &s_hc1, L);
    hk_ssm_update(&s_st_out, &s_h2, &s_dbx, &s_st_in, &s_hc2, L);
    hk_state_writer(h_q, h_s, &s_st_out, L);
    hk_ssm_hc(&s_yc, &s_h2, &s_cf, L);
    hk_ssm_y(&s_g, &s_yc, &s_xf, &s_z8, L);
    hk_rmsnorm(&s_n2, &s_g, &L->gnorm, L);
    hk_htu_fwht(&s_fw, &s_n2, L);
    hk_htu_matrix(&s_rot, &s_fw, L);
    hk_act_quant(a_out, &s_rot, L->di, L->rot_m ? L->F_rot : L->gnorm.F_out, L->abits);

    HK_DRAINED(hk_wide_s, s_u); HK_DRAINED(hk_wide_s, s_n1); HK_DRAINED(hk_wide_s, s_ip); HK_DRAINED(hk_wide_s, s_dt);
    HK_DRAINED(hk_wide_s, s_xbc); HK_DRAINED(hk_wide_s, s_z); HK_DRAINED(hk_wide_s, s_yc); HK_DRAINED(hk_wide_s, s_g);
    HK_DRAINED(hk_wide_s, s_n2); HK_DRAINED(hk_wide_s, s_rot); HK_DRAINED(hk_long_s, s_fw); HK_DRAINED(hk_wbeat_s, s_wb);
    HK_DRAINED(hk_wscale_s, s_wsc); HK_DRAINED(hk_we0_s, s_we); HK_DRAINED(hk_pot8_s, s_u8);
    HK_DRAINED(hk_pot8_s, s_z8); HK_DRAINED(hk_pot8_s, s_xf); HK_DRAINED(hk_pot8_s, s_cf);
    HK_DRAINED(hk_headc_s, s_hc1); HK_DRAINED(hk_headc_s, s_hc2); HK_DRAINED(hk_state_s, s_st_in);
    HK_DRAINED(hk_state_s, s_st_out); HK_DRAINED(hk_dbx_s, s_dbx); HK_DRAINED(hk_h2_s, s_h2);
}

/* out_proj on the MMU and the residual. */
static void hk_output(int32_t *u, const hk_act *a, const hk_layer *L, const uint8_t *out_q, const uint8_t *out_scale,
                      const int8_t *out_e0) {
    HK_PRAGMA(HLS dataflow)
    static hk_wide_s s_o;
    static hk_wbeat_s s_wb;
    static hk_wscale_s s_wsc;
    static hk_we0_s s_we;
    HK_PRAGMA(HLS stream variable=s_o depth=HK_DEPTH_WIDE)
    HK_PRAGMA(HLS stream variable=s_wb depth=HK_DEPTH_WBEAT)
    HK_PRAGMA(HLS stream variable=s_wsc depth=HK_DEPTH_GROUPS)
    HK_PRAGMA(HLS stream variable=s_we depth=4)
    hk_weight_reader(&s_wb, &s_wsc, &s_we, out_q, out_scale, out_e0, L->D, L->di, L->wbits);
    hk_mmu(&s_o, a, &s_wb, &s_wsc, &s_we, L->D, L->di, L->wbits, HK_RES_F);
    hk_residual(u, &s_o, L->D);
    HK_DRAINED(hk_wide_s, s_o); HK_DRAINED(hk_wbeat_s, s_wb); HK_DRAINED(hk_wscale_s, s_wsc); HK_DRAINED(hk_we0_s, s_we);
}

int hk_layer_step(int32_t *u, int8_t *conv_q, uint8_t *conv_s, int8_t *h_q, uint8_t *h_s, const hk_layer *L,
                  const uint8_t *in_q, const uint8_t *in_scale, const int8_t *in_e0,
                  const uint8_t *out_q, const uint8_t *out_scale, const int8_t *out_e0) {
    HK_PRAGMA(HLS interface m_axi port=u bundle=act)
    HK_PRAGMA(HLS interface m_axi port=conv_q bundle=state)
    HK_PRAGMA(HLS interface m_axi port=conv_s bundle=state)
    HK_PRAGMA(HLS interface m_axi port=h_q bundle=state)
    HK_PRAGMA(HLS interface m_axi port=h_s bundle=state)
    HK_PRAGMA(HLS interface m_axi port=in_q bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=in_scale bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=in_e0 bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=out_q bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=out_scale bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=out_e0 bundle=weights)
    HK_PRAGMA(HLS interface m_axi port=L bundle=params)
    HK_PRAGMA(HLS allocation function instances=hk_mmu limit=1)
    static hk_act a_out;
    if (hk_layer_check(L) != HK_OK) return HK_ERR_SHAPE;
#ifndef __SYNTHESIS__
    const int faults = hk_stream_faults;
#endif
    hk_mixer(&a_out, u, conv_q, conv_s, h_q, h_s, L, in_q, in_scale, in_e0);
    hk_output(u, &a_out, L, out_q, out_scale, out_e0);
#ifndef __SYNTHESIS__
    if (hk_stream_faults != faults) return HK_ERR_STREAM;
#endif
    return HK_OK;
}
