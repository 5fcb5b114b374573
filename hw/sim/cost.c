/* Resource, on-chip memory and energy models of the accelerator (hw/README.md explains each number).
 *
 * Logic: every unit's LUT/FF/DSP is a sum of its parts times their counts, the parts costed from
 * their bit widths (a 4b x 4b multiplier in LUTs, a w-bit adder = w LUTs, a register bit = 1 FF,
 * an INT8 x INT8 or INT16 x INT8 multiply = 1 DSP). What the paper's table has beyond these parts
 * (control, address generation, the NoC / AXI infrastructure, the host interface) is one fixed
 * term per resource, CALIBRATED on the paper's VCK190 W4A4 row (107k LUT, 130k FF, 228 DSP).
 * On-chip memory: every buffer is mapped to BRAM36 (best of its 7 aspect ratios) or URAM (4K x 72)
 * from its width and depth; FIFOs of at most 64 words go to LUTRAM/SRL (no block). */
#include <math.h>
#include <string.h>

#include "sim/sim.h"

/* Calibrated on the paper's VCK190 W4A4 resources (docs/paper.md section 3). */
#define FIXED_LUT 87832.0
#define FIXED_FF 113284.0
#define FIXED_DSP 128.0

/* Per-part costs (first-principles estimates, not fitted). */
#define LUT_MUL4 13.0      /* 4b x 4b signed multiplier in LUT6 fabric */
#define LUT_MUL8 52.0      /* 8b x 8b: four 4b x 4b partial products and their sum */
#define ACC_BITS 34.0      /* MMU accumulator (docs/accelerator.md section 2) */
#define LUT_AXI_PORT 2500.0 /* one 256-bit AXI4 master with its burst/DMA logic (scales with width) */
#define FF_AXI_PORT 4000.0

typedef struct { double lut, ff, dsp; } cost_t;

static void blocks(double width, double depth, double *bram, double *uram, int use_uram) {
    if (width <= 0 || depth <= 0) return;
    if (use_uram) { *uram += ceil(width / 72.0) * ceil(depth / 4096.0); return; }
    if (depth <= 64) return; /* LUTRAM / shift registers */
    static const double w[] = {72, 36, 18, 9, 4, 2, 1}, dp[] = {512, 1024, 2048, 4096, 8192, 16384, 32768};
    double best = INFINITY;
    for (int i = 0; i < 7; i++) {
        double b = ceil(width / w[i]) * ceil(depth / dp[i]);
        if (b < best) best = b;
    }
    *bram += best;
}

static void unit_costs(cost_t u[HW_N_UNITS], const lm_hw_design *d, const lm_config *c) {
    memset(u, 0, sizeof(cost_t) * HW_N_UNITS);
    double m = (double)d->cip * d->cop;
    /* MMU: CIP x COP 4-bit multipliers (at W8 they pair into CIP/2 x COP 8-bit ones), an adder tree per
     * output row, the accumulator, the 2^s1 + 2^s2 scale (two shifters and an adder), the activation
     * quantizer (PoT per 8 channels: max-abs and shift) on its CIP inputs. */
    if (d->wbits == 4) {
        double tree_bits = 8 + log2(d->cip) / 2;
        u[HW_U_MMU].lut = m * LUT_MUL4 + (d->cip - 1) * d->cop * tree_bits;
        u[HW_U_MMU].ff = m * 8 + (d->cip - 1) * d->cop * tree_bits / 2;
    } else {
        double tree_bits = 16 + log2(d->cip / 2.0) / 2;
        u[HW_U_MMU].lut = m / 2 * LUT_MUL8 + (d->cip / 2.0 - 1) * d->cop * tree_bits;
        u[HW_U_MMU].ff = m / 2 * 16 + (d->cip / 2.0 - 1) * d->cop * tree_bits / 2;
    }
    u[HW_U_MMU].lut += d->cop * (ACC_BITS + 3 * ACC_BITS) + d->cip * 40;
    u[HW_U_MMU].ff += d->cop * (ACC_BITS + 2 * ACC_BITS) + d->cip * 40;
    /* SSMU: per lane one INT8 multiply (DSP) and a PoT re-quantizing shifter per stage;
     * h*C adds an n_p-input adder tree; the y stage runs p_p/(tiles over N) elements per cycle. */
    double lanes = d->ssmu_lanes, ylanes = ceil(lanes / d->n_p);
    u[HW_U_SSM_DBX] = (cost_t){lanes * 40, lanes * 50, lanes};
    u[HW_U_SSM_UPD] = (cost_t){lanes * (40 + 18), lanes * 70, lanes};
    u[HW_U_SSM_HC] = (cost_t){lanes * (40 + 20), lanes * 70, lanes};
    u[HW_U_SSM_Y] = (cost_t){ylanes * 120, ylanes * 150, 2 * ylanes};
    u[HW_U_CONV] = (cost_t){d->conv_lanes * (c->d_conv * 20.0 + 40), d->conv_lanes * (c->d_conv * 24.0 + 40),
                            (double)d->conv_lanes * c->d_conv};
    u[HW_U_DT] = (cost_t){300, 300, 2};
    /* input RMSNorm and gated RMSNorm: square-sum and scale multipliers per lane, quantizer */
    u[HW_U_NORM] = (cost_t){d->norm_lanes * 120.0, d->norm_lanes * 140.0, 2.0 * d->norm_lanes};
    u[HW_U_GNORM] = (cost_t){d->norm_lanes * 160.0, d->norm_lanes * 180.0, 3.0 * d->norm_lanes};
    /* HTU: log2(blk) butterfly stages of htu_width 16-bit add/subs; the +-1 matrix: htu_width
     * outputs each an m-input add/sub tree (m = 12..40, the non-power-of-two factor) */
    int mm = 1;
    static const int ms[] = {40, 28, 20, 12, 1};
    for (int i = 0; i < 5; i++)
        if (c->d_inner % ms[i] == 0 && ((c->d_inner / ms[i]) & (c->d_inner / ms[i] - 1)) == 0) { mm = ms[i]; break; }
    int blk = c->d_inner / mm;
    u[HW_U_HTU_FWHT] = (cost_t){16.0 * log2(blk) * d->htu_width, 16.0 * log2(blk) * d->htu_width, 0};
    u[HW_U_HTU_MAT] = (cost_t){18.0 * (mm - 1) * d->htu_width, 18.0 * d->htu_width * 2, 0};
    double port_scale = d->port_bits / 256.0;
    u[HW_U_MEM_W] = (cost_t){LUT_AXI_PORT * port_scale * d->mem_channels, FF_AXI_PORT * port_scale * d->mem_channels, 0};
    u[HW_U_MEM_S] = (cost_t){LUT_AXI_PORT, FF_AXI_PORT, 0};
}

void lm_hw_estimate_resources(lm_hw_resources *r, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c) {
    memset(r, 0, sizeof *r);
    cost_t u[HW_N_UNITS];
    unit_costs(u, d, c);
    double lut = FIXED_LUT, ff = FIXED_FF, dsp = FIXED_DSP;
    for (int i = 0; i < HW_N_UNITS; i++) { lut += u[i].lut; ff += u[i].ff; dsp += u[i].dsp; }

    double H = c->n_heads, P = c->head_dim, N = c->d_state, E = c->d_inner, D = c->d_model;
    double GN = (double)c->n_groups * N, lanes = d->ssmu_lanes, hpn = H * P * N;
    double bram = 0, uram = 0, bram_ssmu = 0, uram_ssmu = 0;
    /* SSMU: the INT8 state (8 bits + a 4-bit exponent per 8 channels = 8.5 bits per element) */
    if (d->state_buffers > 0)
        for (int i = 0; i < d->state_buffers; i++) blocks(lanes * 8.5, hpn / lanes, &bram_ssmu, &uram_ssmu, 1);
    else
        for (int i = 0; i < 4; i++) blocks(lanes * 8.5, P * N / lanes, &bram_ssmu, &uram_ssmu, 0); /* 2 heads in, 2 out */
    /* The SSM intermediates in the widths of the datapath (hw/kernels/hk_ssmu.c, bit-exact with the
     * golden model): dB*x and dA*h are int32, each product of two INT8 values shifted by its own
     * group exponents to the common site F_h so they can be added; h = dA*h + dB*x leaves the
     * update re-quantized twice: the stored state (in the state buffer above, in place) and h2,
     * INT8 with a 4-bit exponent per 8 states (8.5 bits), which is what h*C reads. */
    if (d->tiling) { /* tile FIFOs dB*x -> update (int32) and h2 -> h*C, fifo_tiles tiles deep */
        double tile = (double)d->n_p * d->p_p;
        blocks(lanes * 32, d->fifo_tiles * tile / lanes, &bram_ssmu, &uram_ssmu, 0);
        blocks(lanes * 8.5, d->fifo_tiles * tile / lanes, &bram_ssmu, &uram_ssmu, 0);
    } else { /* unfused: each op writes its whole H x P x N result before the next op reads it */
        blocks(lanes * 32, hpn / lanes, &bram_ssmu, &uram_ssmu, 1);   /* dB*x */
        blocks(lanes * 32, hpn / lanes, &bram_ssmu, &uram_ssmu, 1);   /* dA*h */
        blocks(lanes * 8.5, hpn / lanes, &bram_ssmu, &uram_ssmu, 1);  /* h2 */
    }
    double xz_heads = d->reorder ? d->xz_buffer_heads : H;
    blocks(lanes * 8, xz_heads * 2 * P / lanes, &bram_ssmu, &uram_ssmu, 0);    /* x, z of buffered heads */
    blocks(16, 2 * GN + 2 * H, &bram_ssmu, &uram_ssmu, 0);                      /* B, C, dt, dA */
    double ylanes = ceil(lanes / d->n_p);
    bram_ssmu += 2 * ceil(ylanes / 2);                                          /* SiLU(z) table per 2 lanes (dual port) */
    bram_ssmu += 2 * 2;                                                         /* softplus and exp tables */
    bram += bram_ssmu; uram += uram_ssmu;
    /* MMU: weight FIFO (the MMU's width), activation input buffer; conv state and SiLU tables */
    double wwidth = (double)d->cip * d->cop * 4;
    blocks(wwidth, d->weight_fifo_kib * 8192.0 / wwidth, &bram, &uram, 0);
    blocks(d->cip * 8.0, (E > D ? E : D) / d->cip, &bram, &uram, 0);
    blocks(d->conv_lanes * 8.0 * (c->d_conv - 1), (E + 2 * GN) / d->conv_lanes, &bram, &uram, 0);
    bram += 2 * ceil(d->conv_lanes / 2.0);                                     /* SiLU tables for conv */
    /* norms: residual (int32), y for the gated norm (needs all of y), rsqrt tables (8 x 512) */
    blocks(d->norm_lanes * 32.0, D / d->norm_lanes, &bram, &uram, 0);
    blocks(d->norm_lanes * 16.0, E / d->norm_lanes, &bram, &uram, 0);
    bram += 2 * 2;
    /* HTU: butterfly output and +-1 matrix input (ping-pong, 16-bit) */
    blocks(d->htu_width * 16.0, 2 * E / d->htu_width, &bram, &uram, 0);

    r->lut = lround(lut); r->ff = lround(ff); r->dsp = lround(dsp);
    r->bram = lround(bram); r->uram = lround(uram);
    r->bram_ssmu = lround(bram_ssmu); r->uram_ssmu = lround(uram_ssmu);
    (void)p;
}

const char *lm_hw_resource_violation(const lm_hw_resources *r, const lm_hw_platform *p) {
    if (r->lut > p->lut) return "LUT";
    if (r->ff > p->ff) return "FF";
    if (r->dsp > p->dsp) return "DSP";
    if (r->bram > p->bram) return "BRAM";
    if (r->uram > p->uram) return "URAM";
    return "";
}

/* Energy per token = P_static * T + e_dram * bytes + e_op * operations.
 * Operations are what the units did: the MMU's MACs (a W8 MAC counts as one, like a W4 MAC), one
 * per element for each SSMU stage, conv tap, norm and HTU butterfly/add. The paper's two points
 * (2.25 tokens/J at 7.21 tokens/s W4A4, 1.45 tokens/J at 3.61 W8A8) take as long per byte (both are
 * memory-bound) but differ 2x in time per token with the same work, which fixes the split into a
 * time-proportional and a work-proportional part: P_STATIC_W and E_OP_J are CALIBRATED on them
 * (hw/README.md), e_dram is the platform's literature value. */
#define P_STATIC_W 0.648   /* W */
#define E_OP_J 63.5e-12    /* J per operation */

static void unit_ops_per_cycle(double o[HW_N_UNITS], const lm_hw_design *d, const lm_config *c) {
    memset(o, 0, sizeof(double) * HW_N_UNITS);
    o[HW_U_MMU] = (double)d->cip * d->cop * 4 / d->wbits;
    o[HW_U_SSM_DBX] = o[HW_U_SSM_UPD] = o[HW_U_SSM_HC] = d->ssmu_lanes;
    o[HW_U_SSM_Y] = ceil((double)d->ssmu_lanes / d->n_p);
    o[HW_U_CONV] = (double)d->conv_lanes * c->d_conv;
    o[HW_U_DT] = 1;
    o[HW_U_NORM] = o[HW_U_GNORM] = d->norm_lanes;
    o[HW_U_HTU_FWHT] = o[HW_U_HTU_MAT] = d->htu_width;
}

void lm_hw_estimate_energy(lm_hw_energy *e, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c,
                           const lm_hw_result *res) {
    double o[HW_N_UNITS], ops = 0;
    unit_ops_per_cycle(o, d, c);
    for (int i = 0; i < HW_N_UNITS; i++) ops += res->unit[i].busy * o[i];
    e->ops = ops;
    e->static_w = P_STATIC_W;
    e->logic_j = E_OP_J * ops;
    e->dram_j = p->mem_pj_per_byte * 1e-12 * res->bytes_token;
    e->total_j = P_STATIC_W * res->seconds_token + e->logic_j + e->dram_j;
    e->tokens_per_j = e->total_j > 0 ? 1.0 / e->total_j : 0;
    e->watts = e->total_j / res->seconds_token;
}
