/* The integer datapath of LightMamba* (docs/integer-datapath.md is the contract; this is its
 * bit-exact golden model). Every unit below is plain integer C: shifts, adds, small multiplies
 * and table lookups; no float touches a unit's integer path (floats appear only in the
 * builders that turn float weights and calibration ranges into the static integer parameters).
 *
 * Number formats
 *   wide     int32 fixed point at a "site" with F fractional bits: value = X * 2^-F.
 *            F is static (per layer, from calibration or from the weights); every stage writes
 *            its wide result saturated to int32.
 *   pot      the PoT group format: int8 q in [-qmax, qmax] (qmax = 2^(bits-1) - 1) and one
 *            4-bit exponent s in [0, 15] per group of 8 consecutive values (the last group of a
 *            vector may be shorter), relative to a site F: value = q * 2^(s - F).
 *   weights  static PoT: int8/int16 q with a signed exponent e per group: value = q * 2^e.
 *
 * Shape legend: D d_model, H heads, P head_dim, N d_state, G groups, W conv width,
 * C conv channels = d_inner + 2*G*N, E in_proj rows = 2*d_inner + 2*G*N + H. */
#ifndef LM_INTEGER_INTEGER_H
#define LM_INTEGER_INTEGER_H
#include <stdint.h>
#include "lightmamba.h"
#include "kernels/kernels.h"

#define LM_POT_GROUP 8
#define LM_POT_SMAX 15          /* 4-bit group exponent */
#define LM_SITE_TOP 21          /* a site's calibrated absmax maps to at most 2^21 LSBs */
#define LM_RES_F 10             /* residual stream: int32, 10 fractional bits */

static inline int lm_pot_groups(int n) { return (n + LM_POT_GROUP - 1) / LM_POT_GROUP; }

/* The datapath: 0 ours, or the release's choices LM_DP_* (lightmamba.h, docs/release-datapath.md).
 * A layer carries its choice (lm_int_layer.dp) and hands it to every unit. */

/* ---------------------------------------------------------------- primitives (pot.c) */
/* bitlength(m) = position of the highest set bit + 1 (0 for m = 0). */
int lm_bitlength(uint64_t m);
/* sat32(round_half_up(x * 2^L)): L >= 0 is a left shift (saturating), L < 0 a right shift by -L
 * that adds 2^(-L-1) first (round half up, ties toward +inf). The one re-scaling operation. */
static inline int32_t lm_sat32(int64_t x) {
    return x > INT32_MAX ? INT32_MAX : x < -INT32_MAX ? -INT32_MAX : (int32_t)x;   /* symmetric: no -2^31 */
}
/* The general case (any x, any L), out of line; lm_shift_sat32 is its inline fast path. */
int32_t lm_shift_sat32_general(int64_t x, int L);
static inline int32_t lm_shift_sat32(int64_t x, int L) {
    if (L < 0 && L >= -62) {
        const int64_t half = (int64_t)1 << (-L - 1);
        if (x <= INT64_MAX - half) return lm_sat32((x + half) >> -L);   /* the sum fits: floor by >> */
    } else if (L >= 0 && L < 31) {
        const int64_t lim = (int64_t)(INT32_MAX >> L);
        if (x >= -lim && x <= lim) return (int32_t)(x * ((int64_t)1 << L));   /* no saturation */
    }
    return lm_shift_sat32_general(x, L);
}

/* sat32(floor(x * 2^L)): the release's rescale (a plain arithmetic shift for L < 0). */
int32_t lm_floor_sat32(int64_t x, int L);
/* The rescale of datapath dp: lm_floor_sat32 under LM_DP_TRUNC, else lm_shift_sat32. */
static inline int32_t lm_rescale(int64_t x, int L, int dp) {
    return dp & LM_DP_TRUNC ? lm_floor_sat32(x, L) : lm_shift_sat32(x, L);
}

/* The PoT exponent of a group whose max |X| is m: s = max(0, bitlength(m) - (bits-1)), <= 15;
 * under LM_DP_QRULE bitlength(m - 1) (m = 0: 0), so a group max of exactly 2^(bits-1) keeps s. */
int lm_pot_exponent_dp(uint32_t m, int bits, int dp);
/* Quantizes wide integers X[n] (one site) in groups of 8:
 *   s_g = lm_pot_exponent_dp(max |X| over the group), q = clamp(round_half_up(X / 2^s_g), +-qmax).
 * q [n], s [ceil(n/8)]. bits in [2, 8]. The rounding is half up in both datapaths (the release's
 * ((X >> (s-1)) + 1) >> 1 is the same function); under LM_DP_QRULE the exponent rule above and
 * the clamp [-qmax - 1, qmax]. */
void lm_pot_quantize(int8_t *q, uint8_t *s, const int32_t *X, int n, int bits);
void lm_pot_quantize_dp(int8_t *q, uint8_t *s, const int32_t *X, int n, int bits, int dp);
/* The same over a strided set: element i is X[i * stride] (the state's per-8-states view). */
void lm_pot_quantize_strided(int8_t *q, uint8_t *s, const int32_t *X, int n, int stride, int bits, int dp);
/* Float side (calibration, references): X = sat32(round_half_up(x * 2^F)) then lm_pot_quantize,
 * so it gives exactly what the integer path gives for the same real values. */
void lm_pot_quantize_f32(int8_t *q, uint8_t *s, const float *x, int n, int bits, int F);
/* x = q * 2^(s - F). */
void lm_pot_dequantize(float *x, const int8_t *q, const uint8_t *s, int n, int F);
/* Re-quantization by shifts: pot at site F_in -> wide at site F_out, X = q << (s - F_in + F_out)
 * (a rounding right shift when negative); then lm_pot_quantize re-groups or narrows it. */
void lm_pot_to_wide(int32_t *X, const int8_t *q, const uint8_t *s, int n, int F_in, int F_out);

/* Static weights: the exponent of a group with max |w| = m (m > 0):
 *   e = floor(log2 m) - (bits - 2)   (the integer rule above applied to exact reals),
 * q = clamp(round_half_up(w / 2^e), +-qmax). m = 0 gives e = 0, q = 0. */
int lm_pot_weight_exponent(float m, int bits);
/* Quantizes w[n] in groups of `group` consecutive values with one exponent each:
 * q [n] (int16 so 16-bit A fits; int8 callers narrow), e [ceil(n/group)]. */
void lm_pot_weight_quantize(int16_t *q, int8_t *e, const float *w, int n, int group, int bits);

/* A site's fixed point from a calibrated (or bounded) absmax, for pot values of `bits`: the
 * largest F with absmax * 2^F <= 2^(LM_SITE_TOP - (8 - bits)), clamped to [-8, 30]. For 8 bits
 * the 4-bit exponent then covers group maxima from 2^7 to 2^22 LSBs (the largest it holds is
 * 127 * 2^15): one octave of headroom above absmax, 14 below at full precision (4 bits: 2^3 to
 * 2^18, likewise). */
int lm_site_F(double absmax, int bits);

/* --------------------------------------------------------------- the linear layers (linear.c)
 * The activation format of kernels.h from pot (q, s at site F): e_g = s_g - F,
 * eb = max_g e_g - SA_MAX (15 for 4-bit, 7 for 8-bit), sa_g = e_g - eb; a group with e_g < eb
 * is re-quantized to eb (q rounded right by eb - e_g, round half up) and gets sa_g = 0.
 * qa [n], sa [n/8]. n must be a multiple of 8. */
void lm_int_act_pack(int8_t *qa, uint8_t *sa, int *eb, const int8_t *q, const uint8_t *s, int F, int n, int abits);
/* The integer linear product of kernels.h for one token, output as wide integers at site F:
 *   y[o] = sat32(round_half_up(acc_o * 2^(eb + e0[o] + F)))        y [O], qa [K], sa [K/8]
 * (plain scalar reference; exact, so any kernel computing acc_o gives the same bits). */
void lm_int_linear_fixed(int32_t *y, const int8_t *qa, const uint8_t *sa, int eb, const lm_qweight *W, int F, int dp);
/* The rounding half of it, on the exact accumulators acc_o of kernels.h (lm_qlinear_acc gives
 * them for a batch of tokens, SIMD and threaded): y[o] = lm_rescale(acc[o], eb + e0[o] + F, dp)
 * (the release floors: IN_PROJ/OUT_PROJ::forward, acc >> Trunc_d).
 * lm_int_linear_fixed is the scalar accumulation followed by this, so both paths are one definition. */
void lm_int_linear_round(int32_t *y, const int64_t *acc, int eb, const lm_qweight *W, int F, int dp);

/* -------------------------------------------------------------------------- LUTs (lut.c)
 * f(X) for a wide input X at site F_in, output wide at site F_out:
 *   d = X - alpha;  idx = clamp(d >> k, 0, 4095)   (arithmetic shift: floor)
 *   out = value[idx] << shift[idx >> 7]              (32 segments of 128 entries)
 * Below the window (d < 0) the first entry holds. Above it (d >> k > 4095) the last entry
 * holds, except with tail_identity (SiLU, softplus: f(x) -> x) where
 *   out = lm_shift_sat32(X, F_out - F_in).
 * value: int16, entry i = round_half_up(f(x_i) * 2^(F_out - shift)), x_i the mean of the
 * integers in bin i: x_i = (alpha + i*2^k + (2^k - 1)/2) * 2^-F_in. shift (0..15) per segment:
 * the least that keeps the segment's entries in [-32767, 32767]. */
#define LM_LUT_ENTRIES 4096
#define LM_LUT_SEGMENTS 32
#define LM_LUT_SEG_SHIFT 7
typedef enum { LM_LUT_SILU = 0, LM_LUT_SOFTPLUS = 1, LM_LUT_EXP = 2 } lm_lut_fn;
typedef struct {
    int32_t alpha;          /* window start, in input LSBs */
    int32_t k;              /* bin width 2^k input LSBs: window [alpha, alpha + 4096 * 2^k) */
    int32_t F_in, F_out;
    int32_t tail_identity;  /* 1: identity above the window */
    int16_t value[LM_LUT_ENTRIES];
    uint8_t shift[LM_LUT_SEGMENTS];
} lm_lut;
/* Builds the table of fn over the real window [lo, hi] (lo < hi): k = the least k >= 0 with
 * floor(lo * 2^F_in) + 4096 * 2^k > hi * 2^F_in; alpha = floor(lo * 2^F_in) for SiLU and softplus
 * (window anchored at lo), alpha = floor(hi * 2^F_in) + 1 - 4096 * 2^k for exp (anchored at hi,
 * so no entry holds exp of an input above hi). LM_ERR_ARG on a bad window or unfit sites.
 * dp & LM_DP_LUT8 fills the entries the release's way (lm_lut_build_window). */
lm_status lm_lut_build(lm_lut *lut, lm_lut_fn fn, double lo, double hi, int F_in, int F_out, int dp);
/* The table of fn over the window [alpha, alpha + 4096 * 2^k) given in input LSBs. Entries:
 * ours (dp without LM_DP_LUT8) as above; the release's (docs/release-datapath.md section 3,
 * the procedure behind ref/tables/{silu,softplus,exp}_table*.txt): entry i = rint(f(x_i) *
 * 2^(F_out - shift)) at the bin's left edge x_i = (alpha + i*2^k) * 2^-F_in, rint half to even,
 * shift the least in [0, 15] keeping the segment within +-127, clamped to [-128, 127], softplus
 * = x above 20 (PyTorch's threshold), no identity tail. */
lm_status lm_lut_build_window(lm_lut *lut, lm_lut_fn fn, int64_t alpha, int k, int F_in, int F_out, int dp);
int32_t lm_lut_apply(const lm_lut *lut, int32_t X);
/* The function itself in double (the reference the tables are built from). */
double lm_lut_ref(lm_lut_fn fn, double x);

/* ---------------------------------------------------------------- RMSNorm (rmsnorm.c)
 * out[i] = x[i] / sqrt(mean_{group} x^2 + eps) * gamma[i] on wide input x (site F_in):
 *   k  = max(0, bitlength(max |x|) - 24);  S = sum (x >> k)^2 + (eps_term >> 2k)     uint64
 *   S = M * 4^j with M < 4096 (j = max(0, ceil((bitlength(S) - 12) / 2)), M = S >> 2j)
 *   R = rsqrt_table[M] ~ 2^rsqrt_shift[M >> 9] / sqrt(M)     (8 tables of 512 int16 entries)
 *   a[i] = sat(round(x[i] * R * 2^-(rsqrt_shift + j + k - 16)), +-2^16)   x / rms in Q16
 *   out[i] = sat32(round(a[i] * gq[i] * 2^(e_gamma - 16 + F_out)))            wide at F_out
 * gq: int16 gamma (13-bit, |gq| <= 4095) with one exponent e_gamma, holding
 * gamma * sqrt(group size) * extra_scale (the mean's 1/n and any fused constant). */
#define LM_RSQRT_TABLES 8
#define LM_RSQRT_ENTRIES 512
#define LM_GAMMA_BITS 13
/* The release's rsqrt tables of one norm (LM_DP_NORM8, docs/release-datapath.md section 3):
 * table t serves raw sums S >= alpha[t] (the last such t), entry
 *   R = value[t][clamp((S - alpha[t]) >> ld[t], 0, 511)] << off[t]  ~ 2^(12 + F_n) sqrt(group / S). */
typedef struct {
    int64_t alpha[LM_RSQRT_TABLES];
    uint8_t ld[LM_RSQRT_TABLES], off[LM_RSQRT_TABLES];
    uint8_t value[LM_RSQRT_TABLES * LM_RSQRT_ENTRIES];
} lm_rsqrt8;
#define LM_NORM8_TRUNC1 12     /* x * R >> 12 (Rmsnorm1/2::forward, RSQRT_TRUNC_MUL1) */
#define LM_NORM8_TRUNC2 8      /* ... * LNW >> 8 (RSQRT_TRUNC_MUL2) */
typedef struct {
    int n, group;              /* channels, channels per normalization group */
    int F_in, F_out;
    int e_gamma;
    uint64_t eps_term;         /* round(group * eps * 2^(2 F_in)) */
    const int16_t *gq;         /* [n] */
    /* LM_DP_NORM8 (rsqrt8 != NULL): out = ((x * R) >> 12) * gq >> 8, R from rsqrt8 for the
     * group's raw sum of squares; F_out = F_n + (-e_gamma) - 8 (F_n the normalised value's site) */
    const lm_rsqrt8 *rsqrt8;
} lm_int_norm;
/* The rsqrt tables (the same for every norm): value [8 * 512], shift [8]. */
const int16_t *lm_rsqrt_table(void);
const uint8_t *lm_rsqrt_shift(void);
/* The parameters from a float gamma (NULL: all ones) over groups of `group` channels:
 * gq = round(gamma * sqrt(group) * extra_scale * 2^-e_gamma), e_gamma from the largest |entry|
 * (lm_pot_weight_exponent with 13 bits); eps_term = round(group * eps * 2^(2 F_in));
 * F_out = lm_site_F(max|gamma * sqrt(group) * extra| * sqrt(n / group), out_bits), a bound on
 * every output entry even after an orthogonal rotation, for pot outputs of out_bits.
 * gq [n] is the caller's storage. */
lm_status lm_int_norm_build(lm_int_norm *p, int16_t *gq, const float *gamma, int n, int group, float eps,
                            int F_in, double extra_scale, int out_bits);
/* The release's norm (LM_DP_NORM8): gq = round(gamma * extra_scale * 2^-e_gamma) clamped to
 * gamma_bits (11 for the block norm, 13 for the gated one: LNW1_T, LNW2_T); the normalised values
 * at F_n, so F_out = F_n - e_gamma - 8; tables for raw sums of squares over [lo, lo + span] in
 * input LSBs^2 (lm_rsqrt8_build). tab is the caller's storage. */
lm_status lm_int_norm8_build(lm_int_norm *p, int16_t *gq, lm_rsqrt8 *tab, const float *gamma, int n, int group,
                             int F_in, int F_n, double extra_scale, int gamma_bits, int e_gamma, double lo, double span);
/* The exponent e_gamma of that gamma: the least >= e_min with max |gamma * extra_scale| 2^-e
 * within gamma_bits (the pot weight rule, lm_pot_weight_exponent). */
int lm_norm8_gamma_exponent(const float *gamma, int n, double extra_scale, int gamma_bits, int e_min);
/* The release's tables (docs/release-datapath.md section 3) for raw sums in [lo, lo + span]:
 * breakpoints b_0 = lo, b_t = lo + span 8^(t-8); alpha[t] = floor(b_t); ld[t] the least k with
 * 512 2^k > b_(t+1) - b_t; entry i = rint(2^(12 + F_n) sqrt(group / (b_t + i 2^k)) 2^-off[t]),
 * off[t] the least keeping entry 0 <= 255. LM_ERR_ARG unless lo > 0, span > 0, lo + span < 2^62. */
lm_status lm_rsqrt8_build(lm_rsqrt8 *t, int group, int F_n, double lo, double span);
/* out [n] wide at F_out, x [n] wide at F_in. */
void lm_int_rmsnorm(int32_t *out, const int32_t *x, const lm_int_norm *p);

/* ------------------------------------------------------------------ SSM units (ssm.c)
 * Static parameters of one layer's conv and SSM (docs/integer-datapath.md, section "block"). */
typedef struct {
    int C, W;
    int F_in, F_out;           /* conv input (pot, = in_proj site) and output (wide) sites */
    int dp;                    /* LM_DP_TRUNC: the taps and the bias summed exactly, one floor (Conv::forward) */
    const int8_t *w;           /* [C, W] */
    const int8_t *ew;          /* [C/8, W] exponent per (8-channel tile, tap) */
    const int8_t *b;           /* [C] or NULL */
    const int8_t *eb;          /* [C/8] */
} lm_int_conv;
/* Causal depthwise conv over the W-1 state rows (oldest first) and this input, + bias:
 *   out[c] = sat32( sum_k shift(w[c][k] * q_k[c], s_k + ew[c/8][k] - F_in + F_out)
 *                 + shift(b[c], eb[c/8] + F_out) )           each term rounded on its own
 * then the state advances (drops its oldest row, appends the input).
 * out [C]; q [C], s [C/8]: this token's input; state_q [W-1, C], state_s [W-1, C/8]. */
void lm_int_conv_forward(int32_t *out, int8_t *state_q, uint8_t *state_s, const int8_t *q,
                         const uint8_t *s, const lm_int_conv *p);
/* The same for channels [c0, c1) only (multiples of 8): their outputs and their state. Channels
 * are independent, so disjoint ranges may run in parallel; [0, C) is lm_int_conv_forward. */
void lm_int_conv_channels(int32_t *out, int8_t *state_q, uint8_t *state_s, const int8_t *q, const uint8_t *s,
                          const lm_int_conv *p, int c0, int c1);

/* Below, shift(x, L) is lm_rescale(x, L, dp): rounding half up in ours, floor in the release,
 * and the group quantizer is lm_pot_quantize_dp. */

/* out = pot(bits) of LUT(X) over n wide inputs: the LUT then the group quantizer. */
void lm_int_lut_quantize(int8_t *q, uint8_t *s, const int32_t *X, int n, const lm_lut *lut, int bits, int dp);

/* dt = clamp(softplus(dt_raw + dt_bias), dt_lo, dt_hi) as pot8 per 8 heads at the LUT's F_out:
 *   v = sat32(dt_raw[h] + shift(bq[h], be[h/8] + F_in))    (F_in = the softplus LUT's input)
 * dt_raw [H] wide, bq int16 [H], be [H/8]; dt_lo/dt_hi wide at F_out. q, s [H], [H/8]. */
void lm_int_dt(int8_t *q, uint8_t *s, const int32_t *dt_raw, const int16_t *bq, const int8_t *be,
               int32_t dt_lo, int32_t dt_hi, const lm_lut *softplus, int H, int dp);
/* dA = exp(dt * A) as pot8 per 8 heads: X = shift(q_dt * qA, s_dt - F_dt + eA + F_x), F_x the
 * exp LUT's input site; A int16 [H] with exponent eA per 8 heads. */
void lm_int_dA(int8_t *q, uint8_t *s, const int8_t *q_dt, const uint8_t *s_dt, int F_dt,
               const int16_t *qA, const int8_t *eA, const lm_lut *exp_lut, int H, int dp);
/* dB[h][n] = dt[h] * B[g(h)][n] as pot8 at F_dB:
 *   X = shift(q_dt * q_B, s_dt + s_B - F_dt - F_B + F_dB).      q [H, N]
 * Exponents, s: ours per 8 states of each head, s [H, N/8]; under LM_DP_DB_HEADS per 8 heads
 * of each state (the release's dB_quant over dB laid out [N, H]), s [N, ceil(H/8)].
 * lm_int_dB_exps gives head h's exponent of each state either way. */
void lm_int_dB(int8_t *q, uint8_t *s, const int8_t *q_dt, const uint8_t *s_dt, int F_dt,
               const int8_t *q_B, const uint8_t *s_B, int F_B, int F_dB, int H, int G, int N, int dp);
/* e [N]: the exponent of dB[h][n] for every n, from lm_int_dB's s. */
void lm_int_dB_exps(uint8_t *e, const uint8_t *s, int h, int H, int N, int dp);
/* The size of lm_int_dB's s. */
static inline int lm_int_dB_exp_count(int H, int N, int dp) {
    return dp & LM_DP_DB_HEADS ? N * lm_pot_groups(H) : H * (N / LM_POT_GROUP);
}

/* One head's state step at the state site F_h, the state h [P, N] in pot8 groups of 8 head_dim
 * channels (h_q [P, N], h_s [P/8, N]); shift and the quantizer of the datapath f->dp:
 *   dAh[p][n] = shift(q_dA * h_q[p][n], s_dA + h_s[p/8][n] - F_dA)             wide at F_h
 *   dBx[p][n] = shift(q_dB[n] * q_x[p], s_dB[n] + s_x[p/8] - F_dB - F_x + F_h)  (s_dB [N]: one per state)
 *   h = sat32(dAh + dBx)  -> re-quantized in place per 8 head_dim channels (the stored state)
 *                         -> and per 8 states into h2 (q [P, N], s [P, N/8]) for the C contraction
 *   yC[p] = shift(sum_{n/8} (sum_8 h2_q * q_C) << (h2_s + s_C), -(F_h + F_C) + F_y)
 *   Dx[p] = shift(q_x[p] * qD, s_x[p/8] + eD - F_x + F_y)
 *   y[p]  = sat32(yC + Dx)                                                       wide at F_y
 * The C contraction accumulates exactly in int64 (8 products of 14 bits: 17 bits, shifted by
 * up to 30, summed over N/8 groups: 47 + log2(N/8) bits). hw [P, N] int32 scratch.
 * Runs at the SIMD level of lm_simd_level_get() (ssm_head.c: AVX2, AVX-512; the scalar level is
 * the golden code alone); every level gives the same bits. Operands in their formats' ranges
 * (pot exponents 0..15). */
typedef struct {
    int P, N;
    int F_x, F_dA, F_dB, F_h, F_C, F_y;
    int dp;
} lm_int_head_sites;
void lm_int_ssm_head(int32_t *y, int8_t *h_q, uint8_t *h_s, int8_t *h2_q, uint8_t *h2_s, int32_t *hw,
                     int8_t q_dA, uint8_t s_dA, const int8_t *q_dB, const uint8_t *s_dB,
                     const int8_t *q_x, const uint8_t *s_x, const int8_t *q_C, const uint8_t *s_C,
                     int16_t qD, int eD, const lm_int_head_sites *f);

/* The gate y * SiLU(z): out[i] = shift(q_y * q_z, s_y + s_z - F_y - F_z + F_out). n values. */
void lm_int_gate(int32_t *out, const int8_t *q_y, const uint8_t *s_y, int F_y, const int8_t *q_z,
                 const uint8_t *s_z, int F_z, int F_out, int n, int dp);

/* The online Hadamard before out_proj (docs/integer-datapath.md section 7), on wide integers:
 *   out = sat32(round_half_up((H_m (x) H_p) x * 2^L))          n = m * p, p a power of two
 * H_m the m x m +-1 factor (lm_hadamard_base_matrix), H_p the Walsh-Hadamard matrix, entry
 * i = b * p + a as in kernels/hadamard.h: p-point butterflies over each block, then H_m across
 * the blocks. The +-1 sums are exact in int64 (|x| < 2^31, n <= 2^15: < 2^46); the one
 * rounding is the shift L. out and x may not alias; scratch [n]. */
#define LM_INT_HADAMARD_MAX_BASE 40
void lm_int_hadamard(int32_t *out, const int32_t *x, const int8_t *Hm, int m, int n, int L, int64_t *scratch);

/* Residual: u (Q10) += delta (Q10), saturating (the release adds in 64 bits and asserts 32).
 * Embedding rows enter as round(x * 2^10); under LM_DP_TRUNC as (int)(x * 2^10), truncated
 * toward zero (main.cpp: Embedding). */
void lm_int_residual_add(int32_t *u, const int32_t *delta, int n);
void lm_int_residual_from_f32(int32_t *u, const float *x, int n, int dp);
void lm_int_residual_to_f32(float *x, const int32_t *u, int n);

/* ------------------------------------------------------------ the whole block (block.c)
 * Calibration sites: the float ranges the static fixed points and LUT windows come from. */
typedef enum {
    LM_SITE_IP = 0,   /* in_proj output (z, xBC, dt_raw): wide, and the pot site of the conv input */
    LM_SITE_CONV,     /* conv output + bias: SiLU input */
    LM_SITE_U,        /* SiLU(conv): x, B, C */
    LM_SITE_ZS,       /* SiLU(z) */
    LM_SITE_DT_IN,    /* dt_raw + dt_bias: softplus input */
    LM_SITE_DT,       /* dt */
    LM_SITE_DTA,      /* dt * A: exp input */
    LM_SITE_DB,       /* dt * B */
    LM_SITE_H,        /* the state h */
    LM_SITE_Y,        /* h . C + D x */
    LM_SITE_G,        /* y * SiLU(z): gated norm input */
    LM_SITE_Z,        /* z alone (SiLU input; its range sets the z table's window) */
    LM_SITE_SS_NORM,  /* the block norm's sum of squares over d_model (the release's norm tables) */
    LM_SITE_SS_GNORM, /* the gated norm's sum of squares over a group */
    LM_SITE_COUNT
} lm_int_site;
typedef struct { double lo[LM_SITE_COUNT], hi[LM_SITE_COUNT]; } lm_int_calib;
void lm_int_calib_init(lm_int_calib *cal);
/* Records the block norm's input x [n] (its sum of squares; lm_int_calib_mixer records the rest). */
void lm_int_calib_norm_input(lm_int_calib *cal, const float *x, int n);

/* One layer of the integer block: static parameters, owned (lm_int_layer_free). */
typedef struct {
    int D, d_inner, H, P, N, G, W, C, E, abits;
    int dp;                           /* the datapath: 0 ours, LM_DP_* flags, LM_DP_RELEASE */
    float eps;
    lm_int_norm norm, gnorm;          /* gnorm over groups of d_inner / G */
    const lm_qweight *in_proj, *out_proj;
    int F_ip, F_u, F_zs, F_dt, F_dA, F_dB, F_h, F_y, F_g;
    lm_int_conv conv;                 /* F_in = F_ip */
    lm_lut silu_xbc, silu_z, softplus, exp;
    int16_t *dt_bq; int8_t *dt_be;    /* dt_bias: 16-bit, PoT per 8 heads */
    int32_t dt_lo, dt_hi;             /* time_step_limit at F_dt */
    int16_t *A_q; int8_t *A_e;        /* A = -exp(A_log): 16-bit, PoT per 8 heads */
    int16_t *D_q; int8_t *D_e;        /* D: 8-bit, PoT per 8 heads */
    int16_t *norm_gq, *gnorm_gq;
    lm_rsqrt8 *norm_rsqrt8, *gnorm_rsqrt8;   /* LM_DP_NORM8: the two norms' tables, else NULL */
    double gnorm_ss_max;                     /* LM_DP_NORM8: the gated norm's calibrated largest sum of
                                              * squares (real), kept for lm_int_layer_set_rotation */
    int8_t *conv_w, *conv_ew, *conv_b, *conv_eb;
    /* The online Hadamard before out_proj (rotated models; rot_m == 0: none): the gated norm's
     * gamma holds 1/sqrt(d_inner) and its output is wide at gnorm.F_out (8-bit headroom), then
     * lm_int_hadamard(Hm, rot_m, L = F_rot - gnorm.F_out) gives out_proj's input at F_rot. */
    int rot_m, F_rot;
    const int8_t *rot_Hm;             /* [rot_m, rot_m] +-1, not owned */
} lm_int_layer;
/* From the float layer (conv, dt_bias, A, D, norm weights; `norm` may be NULL when folded into
 * in_proj), the quantized in_proj/out_proj (kept by pointer), the calibrated ranges, the
 * activation bits of the linear layers (4 or 8) and the datapath dp (0: ours). */
lm_status lm_int_layer_build(lm_int_layer *out, const float *norm, const float *conv_w, const float *conv_b,
                             const float *dt_bias, const float *A, const float *D, const float *gnorm,
                             const lm_qweight *in_proj, const lm_qweight *out_proj, const lm_config *cfg,
                             const lm_int_calib *cal, int abits, int dp);
void lm_int_layer_free(lm_int_layer *L);
/* Turns on the online Hadamard for a model whose out_proj holds its transpose (LightMamba):
 * rebuilds the gated norm with extra_scale 1/sqrt(d_inner) (the orthonormal H / sqrt(n)) and
 * 8-bit output headroom, and sets F_rot = lm_site_F(the rotated entries' bound, abits): the
 * same 2-norm bound as section 3 of the document, which every rotated entry obeys.
 * Hm [m, m] (lm_hadamard_base_matrix of the d_inner transform) is kept by pointer. */
lm_status lm_int_layer_set_rotation(lm_int_layer *L, const float *gnorm, const int8_t *Hm, int m);

/* The layer's scalar parameters as one int32 vector, indexed by name (the model file's and the
 * vectors dump's order). F_CONV and F_DTA are conv.F_out and the exp table's F_in; each eps_term
 * is stored as its low and high 32 bits; the LUTs carry their own (alpha, k, F_in, F_out,
 * tail_identity). */
typedef enum {
    LM_SC_F_IP, LM_SC_F_CONV, LM_SC_F_U, LM_SC_F_ZS, LM_SC_F_DT, LM_SC_F_DTA, LM_SC_F_DA, LM_SC_F_DB, LM_SC_F_H,
    LM_SC_F_Y, LM_SC_F_G, LM_SC_DT_LO, LM_SC_DT_HI,
    LM_SC_NORM_F_OUT, LM_SC_NORM_E_GAMMA, LM_SC_NORM_EPS_LO, LM_SC_NORM_EPS_HI,
    LM_SC_GNORM_F_OUT, LM_SC_GNORM_E_GAMMA, LM_SC_GNORM_EPS_LO, LM_SC_GNORM_EPS_HI,
    LM_SC_ABITS, LM_SC_ROT_M, LM_SC_F_ROT,
    LM_INT_SCALARS
} lm_int_scalar;
void lm_int_layer_scalars(const lm_int_layer *L, int32_t out[LM_INT_SCALARS]);

/* The recurrent state of one layer: conv rows and h, both pot8. Zeroed = a new sequence. */
typedef struct {
    int8_t *conv_q; uint8_t *conv_s;  /* [W-1, C], [W-1, C/8] */
    int8_t *h_q; uint8_t *h_s;        /* [H, P, N], [H, P/8, N] */
} lm_int_state;
lm_status lm_int_state_init(lm_int_state *st, const lm_int_layer *L);
void lm_int_state_free(lm_int_state *st);

typedef struct lm_int_scratch lm_int_scratch;
lm_status lm_int_scratch_init(lm_int_scratch **ws, const lm_int_layer *L);
void lm_int_scratch_free(lm_int_scratch *ws);

/* Tracing (lightmamba vectors): every unit's operands and results as they are computed.
 * name "unit.role" (e.g. "conv.in.q", "conv.out"); data [n0] or [n0, n1] (n1 = 0: one dimension);
 * F the fixed point of a wide array or of the pot values an exponent array goes with, or
 * LM_INT_NO_SITE. NULL tracer: nothing is reported. */
typedef enum { LM_INT_I8 = 0, LM_INT_U8, LM_INT_I16, LM_INT_I32, LM_INT_I64 } lm_int_dtype;
#define LM_INT_NO_SITE (-1000)
typedef struct {
    void (*array)(void *ctx, const char *name, lm_int_dtype dtype, const void *data, int n0, int n1, int F);
    void *ctx;
} lm_int_tracer;

/* The block in stages (lm_int_block_forward runs them in order for one token; the session runs
 * them over a chunk of tokens with the linear layers batched and the heads in parallel, which
 * gives the same bits: every stage is per token, and the heads are independent).
 *
 * 1. lm_int_block_in: u (Q10) [D] -> block RMSNorm -> pot(abits) -> the packed in_proj input
 *    qa [D], sa [D/8], *eb (lm_int_act_pack).
 * 2. in_proj: lm_int_linear_fixed, or lm_qlinear_acc + lm_int_linear_round, at F_ip: zxbcdt [E].
 * 3. lm_int_mixer_in: zxbcdt -> xBC pot8 -> conv (conv state advanced), then lm_int_mixer_act:
 *    conv out -> SiLU -> x | B | C pot8; SiLU(z) pot8; dt; dA; dB: the operands of the state step
 *    and the gate, in tok. (The session quantizes xBC per token, runs the conv by channels in
 *    token order, then lm_int_mixer_act per token.)
 * 4. lm_int_heads: heads [h0, h1) of the state step (lm_int_ssm_head): y [d_inner] wide at F_y.
 * 5. lm_int_mixer_out: y -> pot8 -> gate -> gated RMSNorm -> (Hadamard) -> pot(abits) -> the
 *    packed out_proj input qa [d_inner], sa, *eb.
 * 6. out_proj at Q10 (as 2), u += it (lm_int_residual_add). */
typedef struct {
    int8_t *u_q; uint8_t *u_s;        /* [C], [C/8]: x | B | C after SiLU */
    int8_t *z_q; uint8_t *z_s;        /* [d_inner]: SiLU(z) */
    int8_t *dA_q; uint8_t *dA_s;      /* [H], [ceil(H/8)] */
    int8_t *dB_q; uint8_t *dB_s;      /* [H, N], lm_int_dB's s (lm_int_dB_exp_count) */
} lm_int_token;
/* n tokens' operands in one allocation (*toks [n], lm_int_tokens_free). */
lm_status lm_int_tokens_init(lm_int_token **toks, int n, const lm_int_layer *L);
void lm_int_tokens_free(lm_int_token *toks);

void lm_int_block_in(int8_t *qa, uint8_t *sa, int *eb, const int32_t *u, const lm_int_layer *L, lm_int_scratch *ws,
                     const lm_int_tracer *tr);
void lm_int_mixer_in(lm_int_token *tok, const int32_t *zxbcdt, lm_int_state *st, const lm_int_layer *L,
                     lm_int_scratch *ws, const lm_int_tracer *tr);
/* conv_out [C] wide at F_conv: the conv's output for the token whose in_proj output is zxbcdt. */
void lm_int_mixer_act(lm_int_token *tok, const int32_t *zxbcdt, const int32_t *conv_out, const lm_int_layer *L,
                      lm_int_scratch *ws, const lm_int_tracer *tr);
/* ws: its head scratch only (one scratch per concurrent caller). */
void lm_int_heads(int32_t *y, const lm_int_token *tok, lm_int_state *st, const lm_int_layer *L, int h0, int h1,
                  lm_int_scratch *ws);
void lm_int_mixer_out(int8_t *qa, uint8_t *sa, int *eb, const int32_t *y, const lm_int_token *tok,
                      const lm_int_layer *L, lm_int_scratch *ws, const lm_int_tracer *tr);

/* One token through one block, every step in integers: u [D] the residual stream (Q10),
 * updated in place; st the layer's state, advanced. */
void lm_int_block_forward(int32_t *u, lm_int_state *st, const lm_int_layer *L, lm_int_scratch *ws);
/* The same, reporting every unit's inputs and outputs to tr (and the layer's parameters first,
 * as "param.*"). */
void lm_int_block_trace(int32_t *u, lm_int_state *st, const lm_int_layer *L, lm_int_scratch *ws,
                        const lm_int_tracer *tr);

/* The float block step the integer one stands for, recording every site's range into cal
 * (NULL: no recording). From the in_proj output zxbcdt [E] to the gated norm input v [d_inner]
 * (= y * SiLU(z)); conv_state [W-1, C] and ssm_state [H, P, N] float, advanced. The weights are
 * the float ones (A = -exp(A_log)). */
void lm_int_calib_mixer(lm_int_calib *cal, float *v, float *conv_state, float *ssm_state, const float *zxbcdt,
                        const float *conv_w, const float *conv_b, const float *dt_bias, const float *A,
                        const float *D, const lm_config *cfg);

#endif
