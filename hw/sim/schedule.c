/* The job lists of one decode step of Mamba2 on the accelerator (sim.h): per layer the input
 * RMSNorm, in_proj on the MMU in emission order, conv, dt, the state traffic, the four SSMU stages,
 * the gated norm, the HTU and out_proj; then norm_f and the lm_head. lm_hw_simulate runs them on
 * the engine (engine.c) for a few layers and extrapolates the rest at the steady-state period. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "sim/engine.h"

/* Pipeline depths in cycles (fill latency from a job's last input to its last output). They
 * follow the datapath of docs/integer-datapath.md section 2: one register per multiplier, adder-tree level,
 * PoT shift and BRAM LUT read (2 cycles). They only matter at the layer's barriers. */
#define DEPTH_LUT 2
static double depth_mmu(int cip) { return 1 /* unpack */ + 1 /* 4b x 4b */ + ceil(log2(cip)) /* tree */ + 1 /* acc */ + 2 /* 2^s1 + 2^s2 */ + 1 /* int32 out */; }
#define DEPTH_CONV(k) ((k) + DEPTH_LUT + 1)       /* k-tap MAC chain, SiLU LUT, requant shift */
#define DEPTH_DT (DEPTH_LUT + 1 + DEPTH_LUT)       /* softplus LUT, dt*A, exp LUT */
#define DEPTH_SSM 3                                /* multiply, add, PoT shift */
#define DEPTH_NORM (2 + 8 + 2)                     /* square-sum tree tail, 1/sqrt LUT (piecewise), scale+quantize */

/* ---- the job lists ---- */
typedef struct {
    const lm_config *c;
    const lm_hw_design *d;
    double burst;
    int blk, m; /* Hadamard: d_inner = blk * m, blk a power of two, m in {1, 12, 20, 28, 40} */
} gen_t;

static int hadamard_split(int n, int *blk, int *m) {
    static const int ms[] = {1, 12, 20, 28, 40};
    for (int i = 0; i < 5; i++) {
        if (n % ms[i]) continue;
        int q = n / ms[i];
        if (q > 0 && (q & (q - 1)) == 0) { *blk = q; *m = ms[i]; return 1; }
    }
    return 0;
}

/* One matrix (rows x k) on the MMU, in row-groups of COP, each streamed in bursts. The last chunk
 * of each row-group puts its rows into channel out (and out2 unless it is -1). */
static void gen_matrix(sim_t *s, const gen_t *g, int layer, int phase, int64_t rows, int k,
                       int first_need_ch, int64_t first_need, int out, int out2) {
    const lm_hw_design *d = g->d;
    double group_cycles = ceil((double)k / d->cip) * d->wbits / 4.0; /* 8-bit weights take two 4-bit slices */
    for (int64_t r = 0; r < rows && s->err == LM_OK; r += d->cop) {
        int64_t nr = rows - r < d->cop ? rows - r : d->cop;
        double bytes = ceil((double)nr * k * d->wbits / 8.0 + hw_scale_bytes((double)nr, k));
        int nchunk = (int)ceil(bytes / g->burst);
        double done = 0;
        for (int i = 0; i < nchunk; i++) {
            double b = i == nchunk - 1 ? bytes - done : floor(bytes / nchunk);
            done += b;
            job_t *w = hw_add_job(s, IU_MEM_W, b, 0, layer, phase);
            j_prod(w, CH_WFIFO, (int64_t)b);
            job_t *j = hw_add_job(s, IU_MMU, group_cycles * b / bytes, depth_mmu(d->cip), layer, phase);
            j_cons(j, CH_WFIFO, (int64_t)b);
            if (r == 0 && i == 0 && first_need_ch >= 0) j_need(j, first_need_ch, first_need);
            if (i == nchunk - 1) {
                j_prod(j, out, nr);
                if (out2 >= 0) j_prod(j, out2, nr);
            }
        }
    }
}

/* In_proj emission positions (rows emitted before and including a part), per layer. */
typedef struct { int64_t dt_end0, b_end, c_end, x_end0, z_end0, head_stride, dt_stride; } inpos_t;
static inpos_t in_positions(const lm_config *c, int reorder) {
    int64_t H = c->n_heads, P = c->head_dim, E = c->d_inner, GN = (int64_t)c->n_groups * c->d_state;
    if (reorder) /* [dt | B | C | x_0 z_0 | x_1 z_1 | ...] */
        return (inpos_t){1, H + GN, H + 2 * GN, H + 2 * GN + P, H + 2 * GN + 2 * P, 2 * P, 1};
    /* [z | x | B | C | dt] */
    return (inpos_t){2 * E + 2 * GN + 1, 2 * E + GN, 2 * E + 2 * GN, E + P, P, P, 1};
}
/* conv order follows emission: reordered [B | C | x_0 | x_1 ...], else [x | B | C] */
static int64_t conv_x_end(const lm_config *c, int reorder, int h) {
    int64_t GN = (int64_t)c->n_groups * c->d_state;
    return (reorder ? 2 * GN : 0) + (int64_t)(h + 1) * c->head_dim;
}
static int64_t conv_c_end(const lm_config *c, int reorder) {
    int64_t GN = (int64_t)c->n_groups * c->d_state;
    return (reorder ? 0 : c->d_inner) + 2 * GN;
}

static void gen_conv_rows(sim_t *s, const gen_t *g, int layer, int64_t in_pos0, int64_t rows, int64_t in_base,
                          int *first, int last_seg) {
    const lm_hw_design *d = g->d;
    for (int64_t r = 0; r < rows; r += d->cop) {
        int64_t nr = rows - r < d->cop ? rows - r : d->cop;
        job_t *j = hw_add_job(s, IU_CONV, ceil((double)nr / d->conv_lanes), DEPTH_CONV(g->c->d_conv), layer, 0);
        j_need(j, CH_INROWS, in_base + in_pos0 + r + nr);
        if (*first) { j_need(j, CH_CONVST, layer + 1); *first = 0; }
        if (last_seg && r + nr >= rows) j_cons(j, CH_CONVST, 1);
        j_prod(j, CH_CONV, nr);
    }
}

static void gen_layer(sim_t *s, const gen_t *g, int l) {
    const lm_config *c = g->c;
    const lm_hw_design *d = g->d;
    int64_t H = c->n_heads, P = c->head_dim, N = c->d_state, E = c->d_inner, D = c->d_model;
    int64_t GN = (int64_t)c->n_groups * N, rows_in = hw_in_rows(c), conv_ch = hw_conv_channels(c);
    int64_t in_base = l * rows_in, conv_base = l * conv_ch;
    inpos_t ip = in_positions(c, d->reorder);

    /* input RMSNorm (pass 2 after the residual is complete; pass 1 runs as the residual streams in) */
    job_t *jn = hw_add_job(s, IU_NORM, ceil((double)D / d->norm_lanes), DEPTH_NORM, l, 0);
    if (l == 0) j_need(jn, CH_EMB, 1); else j_need(jn, CH_RES, l * D);
    j_prod(jn, CH_NORM, 1);

    /* conv state */
    job_t *jc = hw_add_job(s, IU_MEM_CR, hw_conv_state_bytes(c), 0, l, 0);
    j_prod(jc, CH_CONVST, 1);
    job_t *jw = hw_add_job(s, IU_MEM_CW, hw_conv_state_bytes(c), 0, l, 0);
    j_need(jw, CH_CONV, conv_base + conv_ch);

    /* in_proj on the MMU, in emission order; conv follows the x, B, C rows */
    int first_conv = 1;
    if (d->reorder) {
        gen_matrix(s, g, l, 0, H, c->d_model, CH_NORM, l + 1, CH_INROWS, -1);
        gen_matrix(s, g, l, 0, 2 * GN, c->d_model, -1, 0, CH_INROWS, -1);
        gen_conv_rows(s, g, l, H, 2 * GN, in_base, &first_conv, 0);
        for (int64_t h = 0; h < H; h++) {
            int64_t x0 = H + 2 * GN + h * 2 * P;
            gen_matrix(s, g, l, 0, P, c->d_model, -1, 0, CH_INROWS, CH_XZBUF); /* x_h */
            gen_matrix(s, g, l, 0, P, c->d_model, -1, 0, CH_INROWS, CH_XZBUF); /* z_h */
            gen_conv_rows(s, g, l, x0, P, in_base, &first_conv, h == H - 1);
        }
    } else {
        gen_matrix(s, g, l, 0, 2 * E, c->d_model, CH_NORM, l + 1, CH_INROWS, CH_XZBUF);
        gen_matrix(s, g, l, 0, 2 * GN + H, c->d_model, -1, 0, CH_INROWS, -1);
        gen_conv_rows(s, g, l, E, E, in_base, &first_conv, 0);
        gen_conv_rows(s, g, l, 2 * E, 2 * GN, in_base, &first_conv, 1);
    }

    /* dt: softplus, dA = exp(dt * A), per head */
    for (int64_t h = 0; h < H; h++) {
        job_t *j = hw_add_job(s, IU_DT, 1, DEPTH_DT, l, 0);
        j_need(j, CH_INROWS, in_base + ip.dt_end0 + h * ip.dt_stride);
        j_prod(j, CH_DT, 1);
    }

    /* state read / write (per head, in bursts) */
    double sb = hw_state_head_bytes(c);
    int nb = (int)ceil(sb / g->burst);
    int64_t tiles_p = (P + d->p_p - 1) / d->p_p, tiles_n = (N + d->n_p - 1) / d->n_p, tiles = tiles_p * tiles_n;
    int64_t out_per_head = d->tiling ? tiles : 1;
    for (int64_t h = 0; h < H; h++) {
        for (int i = 0; i < nb; i++) {
            job_t *j = hw_add_job(s, IU_MEM_SR, i == nb - 1 ? sb - (nb - 1) * floor(sb / nb) : floor(sb / nb), 0, l, 0);
            if (i == nb - 1) j_prod(j, CH_STATE_IN, 1);
        }
        for (int i = 0; i < nb; i++) {
            job_t *j = hw_add_job(s, IU_MEM_SW, i == nb - 1 ? sb - (nb - 1) * floor(sb / nb) : floor(sb / nb), 0, l, 0);
            if (i == 0) j_cons(j, CH_STOUT, out_per_head);
        }
    }

    /* SSMU */
    double tile_cyc = ceil((double)(d->n_p * d->p_p) / d->ssmu_lanes);
    double y_cyc = ceil((double)d->p_p / d->ssmu_lanes);
    for (int64_t h = 0; h < H; h++) {
        int64_t hh = l * H + h;
        int64_t x_ready = conv_base + conv_x_end(c, d->reorder, (int)h), bc_ready = conv_base + conv_c_end(c, d->reorder);
        int64_t z_ready = in_base + ip.z_end0 + h * ip.head_stride;
        if (d->tiling) { /* fused: tiles stream through FIFOs between the stages */
            for (int64_t tp = 0; tp < tiles_p; tp++) {
                for (int64_t tn = 0; tn < tiles_n; tn++) {
                    int first = tp == 0 && tn == 0, last = tp == tiles_p - 1 && tn == tiles_n - 1;
                    job_t *a = hw_add_job(s, IU_DBX, tile_cyc, DEPTH_SSM, l, 0);
                    if (first) { j_need(a, CH_CONV, x_ready > bc_ready ? x_ready : bc_ready); j_need(a, CH_DT, hh + 1); }
                    j_prod(a, CH_DBX, 1);
                    job_t *b = hw_add_job(s, IU_UPD, tile_cyc, DEPTH_SSM, l, 0);
                    j_cons(b, CH_DBX, 1);
                    if (first) j_need(b, CH_STATE_IN, hh + 1);
                    if (last) j_cons(b, CH_STATE_IN, 1);
                    j_prod(b, CH_HNEW, 1);
                    j_prod(b, CH_STOUT, 1);
                    job_t *hc = hw_add_job(s, IU_HC, tile_cyc, DEPTH_SSM + ceil(log2(d->n_p)), l, 0);
                    j_cons(hc, CH_HNEW, 1);
                    if (tn == tiles_n - 1) j_prod(hc, CH_YP, 1);
                }
                job_t *y = hw_add_job(s, IU_Y, y_cyc, DEPTH_SSM + DEPTH_LUT + 1, l, 0);
                j_cons(y, CH_YP, 1);
                if (tp == 0) j_need(y, CH_INROWS, z_ready);
                if (tp == tiles_p - 1) j_cons(y, CH_XZBUF, 2 * P);
                j_prod(y, CH_Y, d->p_p);
            }
        } else { /* unfused: each op runs over the head's whole P x N slice, one op after another */
            double pass = tiles * tile_cyc;
            job_t *a = hw_add_job(s, IU_DBX, pass, DEPTH_SSM, l, 0);
            j_need(a, CH_CONV, x_ready > bc_ready ? x_ready : bc_ready);
            j_need(a, CH_SSMSEQ, hh);
            j_need(a, CH_DT, hh + 1);
            j_prod(a, CH_DBX, 1);
            job_t *b = hw_add_job(s, IU_UPD, 2 * pass, DEPTH_SSM, l, 0); /* dA*h to a tensor, then h = dA*h + dB*x */
            j_cons(b, CH_DBX, 1);
            j_cons(b, CH_STATE_IN, 1);
            j_prod(b, CH_HNEW, 1);
            j_prod(b, CH_STOUT, 1);
            job_t *hc = hw_add_job(s, IU_HC, pass, DEPTH_SSM + ceil(log2(d->n_p)), l, 0);
            j_cons(hc, CH_HNEW, 1);
            j_prod(hc, CH_YP, 1);
            job_t *y = hw_add_job(s, IU_Y, tiles_p * y_cyc, DEPTH_SSM + DEPTH_LUT + 1, l, 0);
            j_cons(y, CH_YP, 1);
            j_need(y, CH_INROWS, z_ready);
            j_cons(y, CH_XZBUF, 2 * P);
            j_prod(y, CH_Y, P);
            j_prod(y, CH_SSMSEQ, 1);
        }
    }
    /* gated RMSNorm pass 2 (needs all of y), HTU butterflies per block, +-1 matrix, then out_proj */
    for (int b = 0; b < g->m; b++) {
        job_t *j = hw_add_job(s, IU_GNORM, ceil((double)g->blk / d->norm_lanes), DEPTH_NORM, l, 0);
        j_need(j, CH_Y, (l + 1) * E);
        j_prod(j, CH_GN, 1);
        job_t *f = hw_add_job(s, IU_FWHT, ceil((double)g->blk / d->htu_width), ceil(log2(g->blk)), l, 0);
        j_need(f, CH_GN, (int64_t)l * g->m + b + 1);
        j_prod(f, CH_FWHT, 1);
    }
    job_t *mt = hw_add_job(s, IU_MAT, g->m > 1 ? ceil((double)E / d->htu_width) : 0, g->m > 1 ? ceil(log2(g->m)) + 1 : 0, l, 0);
    j_need(mt, CH_FWHT, (int64_t)(l + 1) * g->m);
    j_prod(mt, CH_HTU, 1);
    gen_matrix(s, g, l, 1, D, c->d_inner, CH_HTU, l + 1, CH_RES, -1);
}

static void gen_head(sim_t *s, const gen_t *g, int n_layers) {
    const lm_config *c = g->c;
    job_t *jn = hw_add_job(s, IU_NORM, ceil((double)c->d_model / g->d->norm_lanes), DEPTH_NORM, -1, 2);
    j_need(jn, CH_RES, (int64_t)n_layers * c->d_model);
    j_prod(jn, CH_NORM, 1);
    gen_matrix(s, g, -1, 2, c->vocab_size, c->d_model, CH_NORM, n_layers + 1, CH_LOGITS, -1);
    for (int64_t r = 0; r < c->vocab_size; r += 1024) { /* int32 logits out in 4 KiB bursts */
        int64_t n = c->vocab_size - r < 1024 ? c->vocab_size - r : 1024;
        job_t *j = hw_add_job(s, IU_MEM_L, 4.0 * n, 0, -1, 2);
        j_need(j, CH_LOGITS, r + n);
    }
}

lm_status lm_hw_design_check(const lm_hw_design *d, const lm_config *c) {
    struct { const char *name; int v, lo, hi; } f[] = {
        {"cip", d->cip, 1, 4096}, {"cop", d->cop, 1, 4096}, {"ssmu_lanes", d->ssmu_lanes, 1, 4096},
        {"n_p", d->n_p, 1, 4096}, {"p_p", d->p_p, 1, 4096}, {"conv_lanes", d->conv_lanes, 1, 4096},
        {"norm_lanes", d->norm_lanes, 1, 4096}, {"htu_width", d->htu_width, 1, 4096},
        {"mem_channels", d->mem_channels, 1, 256}, {"port_bits", d->port_bits, 32, 4096}, {"fifo_tiles", d->fifo_tiles, 1, 1 << 20},
        {"xz_buffer_heads", d->xz_buffer_heads, 1, 1 << 20}, {"state_buffers", d->state_buffers, 0, 4},
        {"weight_fifo_kib", d->weight_fifo_kib, 4, 1 << 20}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return lm_fail(LM_ERR_ARG, "design: %s = %d is out of range [%d, %d]", f[i].name, f[i].v, f[i].lo, f[i].hi);
    if (d->wbits != 4 && d->wbits != 8) return lm_fail(LM_ERR_ARG, "design: wbits = %d (4 or 8)", d->wbits);
    if (d->abits != 4 && d->abits != 8) return lm_fail(LM_ERR_ARG, "design: abits = %d (4 or 8)", d->abits);
    if (c->head_dim % d->p_p || c->d_state % d->n_p)
        return lm_fail(LM_ERR_ARG, "design: tile %d states x %d head_dim does not divide d_state %d x head_dim %d",
                       d->n_p, d->p_p, c->d_state, c->head_dim);
    int blk, m;
    if (!hadamard_split(c->d_inner, &blk, &m))
        return lm_fail(LM_ERR_UNSUPPORTED, "d_inner %d is not 2^k times 1, 12, 20, 28 or 40 (no Hadamard size for the HTU)", c->d_inner);
    if (c->n_layer < 1 || c->n_layer > 10000 || c->n_heads < 1 || c->n_heads > 1 << 16 || c->d_model < 1 || c->vocab_size < 1)
        return lm_fail(LM_ERR_ARG, "model: sizes out of range for the simulator");
    return LM_OK;
}

static lm_status simulate_layers(lm_hw_result *res, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c,
                                 int n_layers, int trace_layer, int ideal_memory, run_t *rn) {
    sim_t s;
    memset(&s, 0, sizeof s);
    gen_t g = {c, d, p->burst_bytes, 0, 0};
    hadamard_split(c->d_inner, &g.blk, &g.m);
    double wfifo = (double)d->weight_fifo_kib * 1024;
    if (wfifo < g.burst) g.burst = wfifo; /* a burst never exceeds the FIFO that receives it */
    int64_t H = c->n_heads, tiles = (int64_t)(c->head_dim / d->p_p) * (c->d_state / d->n_p);
    int64_t read_heads = d->state_buffers >= 2 ? (int64_t)(d->state_buffers - 1) * H : 2;
    int64_t write_heads = d->state_buffers >= 1 ? H : 2;
    for (int i = 0; i < N_CH; i++) s.ch[i].cap = CAP_INF;
    s.ch[CH_WFIFO].cap = (int64_t)wfifo; s.ch[CH_WFIFO].mem_fed = 1;
    s.ch[CH_STATE_IN].cap = read_heads; s.ch[CH_STATE_IN].mem_fed = 1;
    s.ch[CH_EMB].mem_fed = 1;
    s.ch[CH_CONVST].cap = 2; s.ch[CH_CONVST].mem_fed = 1;
    s.ch[CH_XZBUF].cap = d->reorder ? (int64_t)d->xz_buffer_heads * 2 * c->head_dim : 2 * (int64_t)c->d_inner;
    if (d->tiling) {
        /* A job reserves its output slot when it starts; the tiles still in the producer's pipeline
         * registers (depth / cycles per tile of them) do not occupy the FIFO, so they add to its capacity. */
        int64_t in_flight = (int64_t)ceil((DEPTH_SSM + ceil(log2(d->n_p))) / ceil((double)(d->n_p * d->p_p) / d->ssmu_lanes));
        s.ch[CH_DBX].cap = d->fifo_tiles + in_flight; s.ch[CH_HNEW].cap = d->fifo_tiles + in_flight;
        s.ch[CH_YP].cap = 2 + in_flight;
        s.ch[CH_STOUT].cap = write_heads * tiles;
    } else {
        s.ch[CH_STOUT].cap = write_heads;
    }

    job_t *je = hw_add_job(&s, IU_MEM_E, 2.0 * c->d_model, 0, -1, 0);
    j_prod(je, CH_EMB, 1);
    for (int l = 0; l < n_layers && s.err == LM_OK; l++) gen_layer(&s, &g, l);
    if (s.err == LM_OK) gen_head(&s, &g, n_layers);

    memset(rn, 0, sizeof *rn);
    double bw = lm_hw_bandwidth(p, d);
    rn->bw_per_cycle = ideal_memory ? INFINITY : bw / (p->clock_mhz * 1e6); /* ideal: a burst takes 0 cycles */
    rn->mem_latency = ideal_memory ? 0 : p->mem_latency_ns * p->clock_mhz / 1000.0;
    rn->min_access = p->min_access_bytes;
    rn->n_layers = n_layers;
    rn->res_per_layer = c->d_model;
    rn->trace_layer = trace_layer;
    rn->res = res;
    rn->layer_end = calloc((size_t)n_layers, sizeof(double));
    rn->busy = calloc((size_t)(n_layers + 1) * HW_N_UNITS, sizeof(double));
    rn->bytes = calloc((size_t)(n_layers + 1), sizeof(double));
    rn->stall = calloc((size_t)(n_layers + 1) * HW_N_UNITS * 3, sizeof(double));
    lm_status st = s.err;
    if (st == LM_OK && (!rn->layer_end || !rn->busy || !rn->bytes || !rn->stall))
        st = lm_fail(LM_ERR_NOMEM, "sim: out of memory for statistics");
    if (st == LM_OK) st = hw_run_engine(&s, rn);
    for (int i = 0; i < N_IU; i++) free(s.u[i].jobs);
    free(s.heap);
    return st;
}

static void free_run(run_t *rn) {
    free(rn->layer_end); free(rn->busy); free(rn->bytes); free(rn->stall);
}

void lm_hw_result_free(lm_hw_result *res) {
    if (!res) return;
    for (int u = 0; u < HW_N_UNITS; u++) { free(res->trace[u]); res->trace[u] = NULL; res->n_trace[u] = 0; }
}

lm_status lm_hw_simulate(lm_hw_result *res, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c,
                         int exact, int flags) {
    const int trace = flags & LM_HW_TRACE, ideal_memory = (flags & LM_HW_IDEAL_MEMORY) != 0;
    memset(res, 0, sizeof *res);
    LM_TRY(lm_hw_design_check(d, c));
    if (d->mem_channels > p->mem_channels)
        return lm_fail(LM_ERR_ARG, "design uses %d memory channels, %s has %d", d->mem_channels, p->name, p->mem_channels);
    /* Units read ahead across layers (the state reader up to state_buffers - 1 layers, the conv state
     * and weight prefetchers one), so a layer is in steady state only with LOOKAHEAD layers after it:
     * the period is measured on layer n-1-LOOKAHEAD and must equal the one before it. The simulated
     * stream ends like the real one (its last layers have nothing to prefetch), so the remaining
     * L - n layers are inserted at the steady period. */
    enum { LOOKAHEAD = 4 };
    int L = c->n_layer;
    int n = exact ? L : (L < 3 + LOOKAHEAD ? L : 3 + LOOKAHEAD);
    run_t rn;
    int steady;
    for (;;) {
        lm_hw_result_free(res);
        steady = n - 1 - LOOKAHEAD;
        lm_status st = simulate_layers(res, p, d, c, n, trace ? (steady >= 1 ? steady : n - 1) : -2, ideal_memory, &rn);
        if (st != LM_OK) { free_run(&rn); lm_hw_result_free(res); return st; }
        if (n == L) break;
        double p1 = rn.layer_end[steady - 1] - rn.layer_end[steady - 2], p2 = rn.layer_end[steady] - rn.layer_end[steady - 1];
        if (fabs(p2 - p1) <= 1e-9 * p2) break;
        free_run(&rn);
        n = n + 3 > L ? L : n + 3; /* not yet periodic: run more layers */
    }
    if (n == L) steady = L >= 2 + LOOKAHEAD ? L - 1 - LOOKAHEAD : L - 1;
    int extra = L - n;
    double period = steady >= 1 ? rn.layer_end[steady] - rn.layer_end[steady - 1] : rn.layer_end[0];
    res->layers_simulated = n;
    res->cycles_layer0 = rn.layer_end[0];
    res->cycles_layer = period;
    res->cycles_head = rn.t_end - rn.layer_end[n - 1];
    res->cycles_token = rn.t_end + extra * period;
    res->seconds_token = res->cycles_token / (p->clock_mhz * 1e6);
    res->tokens_per_s = 1.0 / res->seconds_token;
    for (int u = 0; u < HW_N_UNITS; u++) {
        lm_hw_unit_stats *us = &res->unit[u];
        for (int t = 0; t <= n; t++) {
            us->busy += rn.busy[t * HW_N_UNITS + u];
            us->stall_mem += rn.stall[(t * HW_N_UNITS + u) * 3 + 0];
            us->stall_dep += rn.stall[(t * HW_N_UNITS + u) * 3 + 1];
            us->stall_full += rn.stall[(t * HW_N_UNITS + u) * 3 + 2];
        }
        us->busy += extra * rn.busy[steady * HW_N_UNITS + u];
        us->stall_mem += extra * rn.stall[(steady * HW_N_UNITS + u) * 3 + 0];
        us->stall_dep += extra * rn.stall[(steady * HW_N_UNITS + u) * 3 + 1];
        us->stall_full += extra * rn.stall[(steady * HW_N_UNITS + u) * 3 + 2];
    }
    for (int t = 0; t <= n; t++) res->bytes_token += rn.bytes[t];
    res->bytes_token += extra * rn.bytes[steady];
    res->bytes_layer_weights = lm_hw_bytes_layer_weights(c, d->wbits);
    res->bytes_layer_state = lm_hw_bytes_layer_state(c);
    res->bytes_lm_head = lm_hw_bytes_lm_head(c, d->wbits);
    res->bw_achievable = lm_hw_bandwidth(p, d);
    res->bw_peak = d->mem_channels * p->mem_channel_bits / 8.0 * p->mem_mtps * 1e6;
    res->mmu_macs_token = (double)L * ((double)hw_in_rows(c) * c->d_model + (double)c->d_model * c->d_inner) +
                          (double)c->vocab_size * c->d_model;
    if (trace) {
        int tl = rn.trace_layer;
        res->trace_t0 = tl >= 1 ? rn.layer_end[tl - 1] : 0;
        res->trace_t1 = rn.layer_end[tl];
    }
    free_run(&rn);
    return LM_OK;
}
