/* The LightMamba accelerator as synthesizable HLS-style C (hw/README.md, "Kernels").
 *
 * Units (each a function that loops over its work and talks to the others through stream
 * FIFOs, hk_stream.h; the same units as the simulator's, hw/sim/sim.h):
 *   hk_rmsnorm        RMSNorm (block input and gated norm): 3 passes over a group buffer
 *   hk_act_quant      PoT activation quantizer + kernels.h packing (eb, sa) -> activation buffer
 *   hk_weight_reader  packed weights (4/8-bit), 2^s1+2^s2 scales, e0 -> beats of COP x CIP 4-bit slices
 *   hk_mmu            CIP x COP tree of 4-bit-weight multipliers (8-bit weights: two slices),
 *                     per-8-channel activation shifts, per-(row,128)
 *                     scale as two shifts and an add; time-shared by in_proj and out_proj
 *   hk_router         splits the reordered in_proj output [dt | B | C | x_0 z_0 | x_1 z_1 ...]
 *   hk_conv           pot8 input, causal depthwise conv + bias, SiLU LUT, pot8 (state in DRAM)
 *   hk_zpath          SiLU(z) LUT, pot8
 *   hk_dt_unit        dt = clamp(softplus(dt_raw + dt_bias)), dA = exp(dt A) (LUTs), pot8 per 8 heads
 *   hk_ssm_dbx        SSMU stage 1: dB = dt B (pot8 per 8 states), dB x per n_p x p_p tile
 *   hk_ssm_update     SSMU stage 2: h = dA h + dB x, stored state (pot8 per 8 head_dim) and h2
 *                     (pot8 per 8 states)
 *   hk_ssm_hc         SSMU stage 3: h2 . C, exact int64 over the n tiles
 *   hk_ssm_y          SSMU stage 4: y = h.C + D x, pot8, gate y * SiLU(z)
 *   hk_htu_fwht       HTU: radix-2 butterflies over each 2^k block as the blocks stream in
 *   hk_htu_matrix     HTU: the +-1 m x m matrix across the blocks, one rounding
 *   hk_layer_step     one decode step of one layer: two dataflow regions around the MMU.
 * Bit for bit the golden model (src/integer, docs/integer-datapath.md). */
#ifndef HK_H
#define HK_H
#include <stdint.h>
#include "hk_config.h"
#include "hk_prim.h"
#include "hk_stream.h"

#define HK_RES_F 10              /* residual stream: Q10 */
#define HK_RSQRT_TABLES 8
#define HK_RSQRT_ENTRIES 512
#define HK_NORM8_TRUNC1 12       /* the release's norm: ((x R) >> 12) gamma >> 8 */
#define HK_NORM8_TRUNC2 8

/* ---- static parameters of one layer (on-chip ROM/BRAM, loaded per layer) ---- */
typedef struct {
    int n, group, F_in, F_out, e_gamma;
    uint64_t eps_term;
    int16_t gq[HK_MAX_NORM];     /* 13-bit gamma */
#if HK_DATAPATH & HK_DP_NORM8
    /* the release's rsqrt tables (Rmsnorm1/2): table t for raw sums >= alpha[t] */
    int64_t alpha[HK_RSQRT_TABLES];
    uint8_t ld[HK_RSQRT_TABLES], off[HK_RSQRT_TABLES];
    uint8_t r8[HK_RSQRT_TABLES * HK_RSQRT_ENTRIES];
#endif
} hk_norm;

typedef struct {
    int D, di, H, P, N, G, W, C, E, abits, wbits;
    int F_ip, F_conv, F_u, F_zs, F_dt, F_dA, F_dB, F_h, F_y, F_g;
    hk_norm norm, gnorm;
    int16_t rsqrt[HK_RSQRT_TABLES * HK_RSQRT_ENTRIES];
    uint8_t rsqrt_shift[HK_RSQRT_TABLES];
    int conv_bias;
    int8_t conv_w[HK_MAX_C][HK_MAX_W], conv_ew[HK_MAX_C / HK_GROUP][HK_MAX_W];
    int8_t conv_b[HK_MAX_C], conv_eb[HK_MAX_C / HK_GROUP];
    hk_lut silu_xbc, silu_z, softplus, exp;
    int16_t dt_bq[HK_MAX_H], A_q[HK_MAX_H], D_q[HK_MAX_H];
    int8_t dt_be[HK_MAX_HG], A_e[HK_MAX_HG], D_e[HK_MAX_HG];
    int32_t dt_lo, dt_hi;
    /* online Hadamard of out_proj's input: rot_m = 0 off; else H_m (x) H_{di/rot_m}, output
     * rounded by 2^rot_L to the site F_rot of out_proj's input */
    int rot_m, rot_L, F_rot;
    int8_t rot_base[HK_HTU_MAX_BASE][HK_HTU_MAX_BASE];
} hk_layer;

/* ---- stream element types ---- */
typedef struct { int8_t w[HK_COP][HK_CIP]; } hk_wbeat;      /* one beat: 4-bit slices of COP rows x CIP inputs */
typedef struct { uint8_t sc[HK_COP]; } hk_wscale;            /* s1 | s2 << 4 of COP rows, one 128-group */
typedef struct { int8_t e0[HK_COP]; } hk_we0;                /* e0 of COP rows */
typedef struct { int8_t q[HK_GROUP]; uint8_t s; } hk_pot8;   /* one PoT group */
typedef struct { int8_t q_dt, q_dA; uint8_t s_dt, s_dA; } hk_headc;   /* dt, dA of one head */
typedef struct { int32_t v[HK_PP][HK_NP]; } hk_dbx_tile;
typedef struct { int8_t q[HK_PP][HK_NP]; uint8_t s[HK_PP / HK_GROUP][HK_NP]; } hk_state_tile;  /* stored h */
typedef struct { int8_t q[HK_PP][HK_NP]; uint8_t s[HK_PP][HK_NP / HK_GROUP]; } hk_h2_tile;    /* h for h.C */

/* activation buffer of a linear layer (kernels.h format), read once per MMU row group */
typedef struct {
    int8_t q[HK_MAX_K];
    uint8_t sa[HK_MAX_K / HK_GROUP];
    int eb;
} hk_act;

/* C-simulation capacities (hk_stream.h: one invocation's traffic) */
#define HK_ROW_GROUPS ((HK_MAX_E + HK_COP - 1) / HK_COP)
#define HK_CAP_WIDE HK_MAX_E
#define HK_CAP_POT8 (HK_MAX_C / HK_GROUP)
#define HK_CAP_HEAD HK_MAX_H
#define HK_CAP_TILE (HK_MAX_H * (HK_MAX_P / HK_PP) * (HK_MAX_N / HK_NP))
#define HK_CAP_WBEAT (HK_ROW_GROUPS * 2 * ((HK_MAX_K + HK_CIP - 1) / HK_CIP))
#define HK_CAP_WSCALE (HK_ROW_GROUPS * (HK_MAX_K / HK_WGROUP))

HK_STREAM(hk_wide_s, int32_t, HK_CAP_WIDE)
HK_STREAM(hk_long_s, int64_t, HK_CAP_WIDE)     /* HTU butterfly outputs (up to 2^43) */
HK_STREAM(hk_pot8_s, hk_pot8, HK_CAP_POT8)
HK_STREAM(hk_headc_s, hk_headc, HK_CAP_HEAD)
HK_STREAM(hk_dbx_s, hk_dbx_tile, HK_CAP_TILE)
HK_STREAM(hk_state_s, hk_state_tile, HK_CAP_TILE)
HK_STREAM(hk_h2_s, hk_h2_tile, HK_CAP_TILE)
HK_STREAM(hk_wbeat_s, hk_wbeat, HK_CAP_WBEAT)
HK_STREAM(hk_wscale_s, hk_wscale, HK_CAP_WSCALE)
HK_STREAM(hk_we0_s, hk_we0, HK_ROW_GROUPS)

/* Hardware FIFO depths (#pragma HLS stream depth): what decouples producer and consumer when
 * they run concurrently (the simulator's channels, hw/sim). */
#define HK_DEPTH_WIDE 64          /* wide values between units */
#define HK_DEPTH_GROUPS 16        /* pot8 groups (x/B/C, z, C forward) */
#define HK_DEPTH_XZ (2 * HK_MAX_P / HK_GROUP)   /* x, z: two heads (the sim's xz_buffer_heads) */
#define HK_DEPTH_TILE 2           /* SSMU tile FIFOs (the sim's fifo_tiles) */
#define HK_DEPTH_WBEAT 512        /* weight prefetch FIFO: 512 beats of COP x CIP weights */

/* ---- the units ---- */
void hk_read_vec(hk_wide_s *out, const int32_t *u, int n);
void hk_residual(int32_t *u, hk_wide_s *delta, int n);
void hk_rmsnorm(hk_wide_s *out, hk_wide_s *in, const hk_norm *p, const hk_layer *L);
void hk_act_quant(hk_act *a, hk_wide_s *in, int n, int F, int abits);
void hk_weight_reader(hk_wbeat_s *wb, hk_wscale_s *wsc, hk_we0_s *we, const uint8_t *q, const uint8_t *scale,
                      const int8_t *e0, int O, int K, int wbits);
void hk_mmu(hk_wide_s *out, const hk_act *a, hk_wbeat_s *wb, hk_wscale_s *wsc, hk_we0_s *we, int O, int K, int wbits,
            int F);
void hk_router(hk_wide_s *dt, hk_wide_s *xbc, hk_wide_s *z, hk_wide_s *in, const hk_layer *L);
void hk_conv(hk_pot8_s *out, hk_wide_s *xbc, int8_t *conv_q, uint8_t *conv_s, const hk_layer *L);
void hk_zpath(hk_pot8_s *out, hk_wide_s *z, const hk_layer *L);
void hk_dt_unit(hk_headc_s *out_dbx, hk_headc_s *out_upd, hk_wide_s *dt, const hk_layer *L);
void hk_state_reader(hk_state_s *out, const int8_t *h_q, const uint8_t *h_s, const hk_layer *L);
void hk_state_writer(int8_t *h_q, uint8_t *h_s, hk_state_s *in, const hk_layer *L);
void hk_ssm_dbx(hk_dbx_s *out, hk_pot8_s *x_fwd, hk_pot8_s *c_fwd, hk_pot8_s *xbc, hk_headc_s *dt, const hk_layer *L);
void hk_ssm_update(hk_state_s *st_out, hk_h2_s *h2_out, hk_dbx_s *dbx, hk_state_s *st_in, hk_headc_s *dA,
                   const hk_layer *L);
void hk_ssm_hc(hk_wide_s *yc, hk_h2_s *h2, hk_pot8_s *c_in, const hk_layer *L);
void hk_ssm_y(hk_wide_s *out, hk_wide_s *yc, hk_pot8_s *x, hk_pot8_s *z, const hk_layer *L);
void hk_htu_fwht(hk_long_s *out, hk_wide_s *in, const hk_layer *L);
void hk_htu_matrix(hk_wide_s *out, hk_long_s *in, const hk_layer *L);

/* One decode step of one layer: u [D] (Q10) updated in place; conv state conv_q [W-1, C],
 * conv_s [W-1, C/8] and SSM state h_q [H, P, N], h_s [H, P/8, N] (the golden model's layouts)
 * advanced in place; in_proj with rows in the reordered order (hk_inproj_order), out_proj as
 * is; packed per kernels.h. Returns HK_OK, HK_ERR_SHAPE (sizes past the HK_MAX_* bounds or not
 * dividing the tiles) or HK_ERR_STREAM (C simulation: a FIFO misused, a design error). */
enum { HK_OK = 0, HK_ERR_SHAPE = 1, HK_ERR_STREAM = 2 };
int hk_layer_check(const hk_layer *L);
int hk_layer_step(int32_t *u, int8_t *conv_q, uint8_t *conv_s, int8_t *h_q, uint8_t *h_s, const hk_layer *L,
                  const uint8_t *in_q, const uint8_t *in_scale, const int8_t *in_e0,
                  const uint8_t *out_q, const uint8_t *out_scale, const int8_t *out_e0);
#endif
