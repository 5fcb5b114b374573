/* Design-space exploration: a grid over the parallelism (CIP, COP, SSMU lanes, tile n_p x p_p,
 * the width of the conv/norm/HTU units, memory channels) and the on-chip state buffering, for
 * designs that fit the platform's resources. Each point has a lower bound on its cycles per token
 * (the largest of: MMU compute, memory traffic at the achievable bandwidth, one SSMU stage's work),
 * which the simulation can only exceed; points are simulated best bound first (branch and bound)
 * until no unsimulated point's bound can beat the n_best-th simulated one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "sim/sim.h"

typedef struct {
    lm_hw_design d;
    lm_hw_resources r;
    double bound_cycles, mmu_cycles, mem_cycles, ssm_cycles, cost;
} cand_t;

/* MMU cycles of in_proj, out_proj (one layer) and the lm_head: row-groups of COP rows, each
 * ceil(K / CIP) cycles (x2 at 8 bits), the same grouping as the simulator's job lists. */
static void mmu_cycles(const lm_hw_design *d, const lm_config *c, double *in, double *out, double *head) {
    double w = d->wbits / 4.0, H = c->n_heads, GN = (double)c->n_groups * c->d_state, E = c->d_inner;
    double groups = d->reorder ? ceil(H / d->cop) + 2 * ceil(GN / d->cop) + 2 * H * ceil((double)c->head_dim / d->cop)
                               : ceil(2 * E / d->cop) + ceil((2 * GN + H) / d->cop);
    *in = w * groups * ceil((double)c->d_model / d->cip);
    *out = w * ceil((double)c->d_model / d->cop) * ceil(E / d->cip);
    *head = w * ceil((double)c->vocab_size / d->cop) * ceil((double)c->d_model / d->cip);
}

static double res_fraction(const lm_hw_resources *r, const lm_hw_platform *p, const char **which) {
    double f[5] = {(double)r->lut / p->lut, (double)r->ff / p->ff, p->dsp ? (double)r->dsp / p->dsp : 0,
                   p->bram ? (double)r->bram / p->bram : 0, p->uram ? (double)r->uram / p->uram : 0};
    static const char *names[5] = {"LUT", "FF", "DSP", "BRAM", "URAM"};
    int k = 0;
    for (int i = 1; i < 5; i++) if (f[i] > f[k]) k = i;
    if (which) *which = names[k];
    return f[k];
}

static int cmp_bound(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->bound_cycles != y->bound_cycles) return x->bound_cycles < y->bound_cycles ? -1 : 1;
    return x->cost < y->cost ? -1 : x->cost > y->cost;
}

/* Points whose bound is within BOUND_SLACK of the n_best-th simulated speed are not simulated
 * (they could beat it by at most that much); at most MAX_SIMULATED simulations. */
#define BOUND_SLACK 0.005
#define MAX_SIMULATED 300

lm_status lm_hw_explore(lm_hw_point *best, int n_best, int *n_found, long *n_evaluated, long *n_simulated,
                        const lm_hw_platform *p, const lm_config *c, int wbits) {
    static const int cips[] = {8, 16, 32, 64, 128}, cops[] = {8, 16, 32, 40, 64, 80, 128};
    static const int lanes_v[] = {8, 16, 32, 64, 128}, widths[] = {8, 16, 32, 64}, states[] = {0, 3}, ports[] = {256, 512};
    static const int tiles[][2] = {{8, 8}, {16, 8}, {16, 16}, {32, 16}};
    int chans[64], n_ch = 0;
    for (int ch = 1; ch <= p->mem_channels && n_ch < 64; ch = ch < 4 ? ch * 2 : ch + 4) chans[n_ch++] = ch;
    if (chans[n_ch - 1] != p->mem_channels && n_ch < 64) chans[n_ch++] = p->mem_channels;

    size_t cap = 4096, n = 0;
    cand_t *cs = malloc(cap * sizeof *cs);
    if (!cs) return lm_fail(LM_ERR_NOMEM, "explore: out of memory");
    *n_evaluated = 0;
    double f = p->clock_mhz * 1e6;
    for (size_t a = 0; a < sizeof cips / sizeof *cips; a++)
    for (size_t b = 0; b < sizeof cops / sizeof *cops; b++)
    for (int k = 0; k < n_ch; k++)
    for (size_t l = 0; l < sizeof lanes_v / sizeof *lanes_v; l++)
    for (size_t t = 0; t < sizeof tiles / sizeof *tiles; t++)
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
    for (size_t s = 0; s < sizeof states / sizeof *states; s++)
    for (size_t q = 0; q < sizeof ports / sizeof *ports; q++) {
        lm_hw_design d = p->design;
        d.cip = cips[a]; d.cop = cops[b]; d.mem_channels = chans[k]; d.ssmu_lanes = lanes_v[l];
        d.n_p = tiles[t][0]; d.p_p = tiles[t][1];
        d.conv_lanes = d.norm_lanes = d.htu_width = widths[w];
        d.state_buffers = states[s];
        d.port_bits = ports[q];
        d.wbits = d.abits = wbits;
        d.reorder = d.tiling = 1;
        d.weight_fifo_kib = 32 * d.mem_channels;
        if (c->d_state % d.n_p || c->head_dim % d.p_p) continue;
        (*n_evaluated)++;
        cand_t cd = {.d = d};
        lm_hw_estimate_resources(&cd.r, p, &d, c);
        if (*lm_hw_resource_violation(&cd.r, p)) continue;
        double bytes = c->n_layer * (lm_hw_bytes_layer_weights(c, wbits) + lm_hw_bytes_layer_state(c)) + lm_hw_bytes_lm_head(c, wbits);
        cd.mem_cycles = bytes / lm_hw_bandwidth(p, &d) * f;
        /* per layer: the SSM overlaps in_proj but out_proj waits for all of y (gated norm, HTU);
         * the next layer's in_proj waits for out_proj (RMSNorm over the residual) */
        double in, out, head;
        mmu_cycles(&d, c, &in, &out, &head);
        double ssm = ceil((double)d.n_p * d.p_p / d.ssmu_lanes) * (c->d_state / d.n_p) * (c->head_dim / d.p_p) * c->n_heads;
        cd.mmu_cycles = c->n_layer * (in + out) + head;
        cd.ssm_cycles = c->n_layer * (ssm > in ? ssm - in : 0);
        cd.bound_cycles = fmax(cd.mem_cycles, c->n_layer * (fmax(in, ssm) + out) + head);
        cd.cost = res_fraction(&cd.r, p, NULL);
        if (n == cap) {
            cand_t *nc = realloc(cs, 2 * cap * sizeof *nc);
            if (!nc) { free(cs); return lm_fail(LM_ERR_NOMEM, "explore: out of memory"); }
            cs = nc; cap *= 2;
        }
        cs[n++] = cd;
    }
    qsort(cs, n, sizeof *cs, cmp_bound);

    int found = 0;
    *n_simulated = 0;
    for (size_t i = 0; i < n && *n_simulated < MAX_SIMULATED; i++) {
        double bound_tps = f / cs[i].bound_cycles;
        if (found == n_best && bound_tps <= best[found - 1].tokens_per_s * (1 + BOUND_SLACK)) break;
        lm_hw_result res;
        lm_status st = lm_hw_simulate(&res, p, &cs[i].d, c, 0, 0);
        if (st != LM_OK) continue; /* a design the dataflow cannot run (reported by sim, skipped here) */
        (*n_simulated)++;
        lm_hw_point pt = {cs[i].d, cs[i].r, res.tokens_per_s, bound_tps, ""};
        const char *which;
        double frac = res_fraction(&cs[i].r, p, &which);
        char bn[96];
        const lm_hw_design *d = &cs[i].d;
        double dram = d->mem_channels * p->mem_channel_bits / 8.0 * p->mem_mtps * 1e6 * p->mem_efficiency;
        double port = d->mem_channels * d->port_bits / 8.0 * f;
        if (cs[i].mem_cycles >= cs[i].bound_cycles && port < dram)
            snprintf(bn, sizeof bn, "%d AXI ports x %d bit at %.0f MHz = %.0f GB/s", d->mem_channels, d->port_bits,
                     p->clock_mhz, port / 1e9);
        else if (cs[i].mem_cycles >= cs[i].bound_cycles)
            snprintf(bn, sizeof bn, "%d memory channels = %.0f GB/s achievable", d->mem_channels, dram / 1e9);
        else
            snprintf(bn, sizeof bn, "%s", cs[i].ssm_cycles > 0 ? "SSMU compute" : "MMU compute");
        snprintf(pt.limit, sizeof pt.limit, "%s; sim %.0f%% of bound; fullest %s %.0f%%", bn,
                 100.0 * res.tokens_per_s / bound_tps, which, 100 * frac);
        int pos = found;
        while (pos > 0 && best[pos - 1].tokens_per_s < pt.tokens_per_s) pos--;
        if (pos < n_best) {
            int last = found < n_best ? found : n_best - 1;
            memmove(&best[pos + 1], &best[pos], (size_t)(last - pos) * sizeof *best);
            best[pos] = pt;
            if (found < n_best) found++;
        }
    }
    free(cs);
    *n_found = found;
    if (!found) return lm_fail(LM_ERR_ARG, "explore: no design fits %s", p->name);
    return LM_OK;
}
