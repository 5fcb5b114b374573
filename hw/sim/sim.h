/* Cycle-level simulator of the LightMamba accelerator: one decode step (one token through every
 * layer and the lm_head) on a platform (clock, off-chip memory, resources).
 *
 * The simulation is a discrete-event dataflow simulation. Units (memory readers/writers, MMU, conv,
 * dt, the four SSMU stages, gated RMSNorm, HTU butterflies, HTU +-1 matrix, input RMSNorm) each run
 * a list of jobs in order; a job is a batch of identical cycles of one unit (one memory burst, one
 * MMU chunk of a row-group, one n_p x p_p SSM tile, one HTU block, ...). Jobs pass tokens through
 * channels: bounded FIFOs/buffers (a producer stalls when its output is full: back-pressure) or
 * monotonic counters (a consumer waits for a threshold: dependencies). All memory units share one
 * memory server (bursts served one at a time at the achievable bandwidth, data after a latency).
 *
 * Layers are identical: the simulator runs layers 0..k-1 (k = 3 by default) plus the lm_head as one
 * continuous job stream, checks that the last two layer periods are equal (steady state) and
 * extrapolates the remaining layers with that period; `exact` simulates every layer. */
#ifndef LM_HW_SIM_H
#define LM_HW_SIM_H
#include <stdint.h>
#include <stdio.h>
#include "lightmamba.h"

/* The accelerator's parallelism and structure (the paper's VCK190 design: 8, 8, 8, 8, 8, ...). */
typedef struct {
    int cip, cop;           /* MMU: CIP input channels x COP output rows of 4-bit multipliers per cycle */
    int ssmu_lanes;         /* elements per cycle of each SSMU stage (8 multiplies per cycle each) */
    int n_p, p_p;           /* SSM tile: n_p states x p_p head_dim channels */
    int conv_lanes;         /* conv1d channels per cycle */
    int norm_lanes;         /* RMSNorm elements per cycle */
    int htu_width;          /* HTU elements per cycle (butterfly stages and the +-1 matrix unit) */
    int mem_channels;       /* memory channels (HBM pseudo-channels, DDR channels) the design uses */
    int port_bits;          /* width of the design's AXI port to each channel, at the accelerator clock */
    int fifo_tiles;         /* depth of the tile FIFOs between SSMU stages (tiled mode) */
    int xz_buffer_heads;    /* heads of x, z the in_proj output buffer holds (reordered mode) */
    int state_buffers;      /* whole-layer INT8 state copies held on chip (URAM) */
    int weight_fifo_kib;    /* weight prefetch FIFO */
    int wbits, abits;       /* 4 or 8 */
    int reorder;            /* in_proj emits dt, B, C first, then x, z head by head */
    int tiling;             /* SSM intermediates stream in n_p x p_p tiles through FIFOs, stages fused */
} lm_hw_design;

typedef struct {
    char name[64];
    char mem_type[32];
    double clock_mhz;           /* accelerator clock */
    int mem_channels;           /* channels on the platform */
    int mem_channel_bits;       /* data width of one channel */
    double mem_mtps;            /* transfers per second of one channel, millions */
    double mem_efficiency;      /* achievable fraction of the peak for long sequential bursts */
    double mem_latency_ns;      /* first data after a request */
    int burst_bytes;            /* longest burst (AXI: 4 KiB boundary) */
    int min_access_bytes;       /* smallest access the memory performs (DDR4 BL8 x 64 bit = 64 B) */
    double mem_pj_per_byte;     /* DRAM access energy (literature value, see hw/README.md) */
    long lut, ff, dsp, bram, uram;  /* resources of the device */
    lm_hw_design design;        /* the paper's configuration on this platform */
} lm_hw_platform;

/* Units of the simulator (rows of the timeline). */
enum {
    HW_U_MEM_W, HW_U_MEM_S, HW_U_MMU, HW_U_CONV, HW_U_DT, HW_U_SSM_DBX, HW_U_SSM_UPD, HW_U_SSM_HC, HW_U_SSM_Y,
    HW_U_GNORM, HW_U_HTU_FWHT, HW_U_HTU_MAT, HW_U_NORM, HW_N_UNITS
};
extern const char *const lm_hw_unit_names[HW_N_UNITS];

typedef struct { double t0, t1; int phase; } lm_hw_interval;

typedef struct {
    double busy, stall_mem, stall_dep, stall_full; /* cycles over the whole token */
} lm_hw_unit_stats;

typedef struct {
    double cycles_token;        /* accelerator cycles for one token (all layers + lm_head) */
    double cycles_layer;        /* steady-state period of one layer */
    double cycles_layer0;       /* the first layer (cold weight FIFO) */
    double cycles_head;         /* lm_head (norm_f + matrix + logits), after the last layer */
    double seconds_token, tokens_per_s;
    double bytes_token;         /* off-chip bytes read + written per token */
    double bytes_layer_weights, bytes_layer_state, bytes_lm_head;
    double bw_peak, bw_achievable; /* bytes/s */
    double mmu_macs_token;
    lm_hw_unit_stats unit[HW_N_UNITS];
    int layers_simulated;
    /* timeline of one steady-state layer (cycles relative to its start), when requested */
    lm_hw_interval *trace[HW_N_UNITS];
    int n_trace[HW_N_UNITS];
    double trace_t0, trace_t1;
} lm_hw_result;

typedef struct {
    long lut, ff, dsp, bram, uram;
    long uram_ssmu, bram_ssmu;
} lm_hw_resources;

typedef struct {
    double static_w, logic_j, dram_j, total_j, tokens_per_j, watts;
    double ops;      /* operations per token (MACs, element ops) */
} lm_hw_energy;

/* Platform: "vck190" or "u280" (hw/platforms/NAME.json, found with the bundled data as
 * platforms/NAME.json: common/datadir.h) or a path to a JSON file with the same keys. */
lm_status lm_hw_platform_load(lm_hw_platform *p, const char *name_or_path);
/* A platform from the len bytes of its JSON in memory (path names it in errors). */
lm_status lm_hw_platform_parse(lm_hw_platform *p, const char *text, size_t len, const char *path);
/* Model: a built-in "mamba2-130m" ... "mamba2-2.7b" or a model directory / config.json. */
lm_status lm_hw_model_load(lm_config *c, const char *name_or_path);
/* Checks a design against a model (divisibility, ranges); LM_ERR_ARG naming the field. */
lm_status lm_hw_design_check(const lm_hw_design *d, const lm_config *c);

/* Simulates one token. exact: every layer (else steady-state extrapolation). flags:
 * LM_HW_TRACE records the timeline of one steady-state layer (res->trace, freed by
 * lm_hw_result_free); LM_HW_IDEAL_MEMORY makes every off-chip access take no time, so the token
 * takes its compute time: the units' work and their dependencies only (the paper's "compute
 * time" of the reordering ablation, hw/README.md). */
enum { LM_HW_TRACE = 1, LM_HW_IDEAL_MEMORY = 2 };
lm_status lm_hw_simulate(lm_hw_result *res, const lm_hw_platform *p, const lm_hw_design *d,
                         const lm_config *c, int exact, int flags);
void lm_hw_result_free(lm_hw_result *res);

/* Off-chip bytes of one layer's weights+scales, one layer's state traffic (read + write) and the lm_head. */
double lm_hw_bytes_layer_weights(const lm_config *c, int wbits);
double lm_hw_bytes_layer_state(const lm_config *c);
double lm_hw_bytes_lm_head(const lm_config *c, int wbits);
/* Achievable bandwidth in bytes/s of the channels a design uses (min of DRAM and AXI ports). */
double lm_hw_bandwidth(const lm_hw_platform *p, const lm_hw_design *d);

/* Resource estimate (per-unit cost model, hw/sim/cost.c) and on-chip memory accounting. */
void lm_hw_estimate_resources(lm_hw_resources *r, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c);
/* Energy per token (power model, hw/sim/cost.c). */
void lm_hw_estimate_energy(lm_hw_energy *e, const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c,
                           const lm_hw_result *res);
/* Which resource exceeds the platform ("" when the design fits). */
const char *lm_hw_resource_violation(const lm_hw_resources *r, const lm_hw_platform *p);

/* Design-space exploration: the n_best fastest designs that fit (best first). */
typedef struct {
    lm_hw_design design;
    lm_hw_resources res;
    double tokens_per_s, bound_tokens_per_s;
    char limit[160];  /* what limits it */
} lm_hw_point;
lm_status lm_hw_explore(lm_hw_point *best, int n_best, int *n_found, long *n_evaluated, long *n_simulated,
                        const lm_hw_platform *p, const lm_config *c, int wbits);

/* SVG timeline of one steady-state layer (written atomically). */
lm_status lm_hw_write_svg(const char *path, const lm_hw_result *res, const lm_hw_platform *p, const lm_hw_design *d,
                          const lm_config *c);
#endif
