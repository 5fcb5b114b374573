/* The simulator's insides (hw/sim), shared by its three parts and not part of sim.h:
 *   traffic.c   the off-chip bytes of the model's weights, scales and state
 *   engine.c    the discrete-event engine: units run jobs in order, jobs pass tokens through channels
 *   schedule.c  the job lists of one Mamba2 decode step, and the run over the layers
 * See sim.h for the model of the accelerator. */
#ifndef LM_HW_SIM_ENGINE_H
#define LM_HW_SIM_ENGINE_H
#include <stddef.h>
#include <stdint.h>
#include "sim/sim.h"

/* ---- sizes (traffic.c) ---- */
double hw_scale_bytes(double rows, double k);    /* the 2^s1 + 2^s2 scales of a rows x k matrix */
double hw_state_head_bytes(const lm_config *c);  /* one head's INT8 SSM state with its exponents */
double hw_conv_state_bytes(const lm_config *c);  /* one layer's conv state */
int hw_conv_channels(const lm_config *c);        /* x, B, C */
int hw_in_rows(const lm_config *c);              /* in_proj output rows: z, x, B, C, dt */

/* ---- engine (engine.c) ---- */
typedef struct { int32_t ch; int64_t n; } io_t;
typedef struct {
    double dur;   /* cycles (compute units) or bytes (memory units) */
    double lat;   /* cycles from the end of the job to its outputs */
    io_t need[3], cons[2], prod[2];
    uint8_t n_need, n_cons, n_prod;
    int8_t phase;
    int16_t layer; /* -1: embedding / lm_head */
} job_t;

/* the channels of the Mamba2 schedule; the engine reads layer ends off CH_RES (the residual stream) */
enum { CH_WFIFO, CH_EMB, CH_NORM, CH_INROWS, CH_XZBUF, CH_CONV, CH_CONVST, CH_DT, CH_STATE_IN, CH_DBX, CH_HNEW,
       CH_STOUT, CH_YP, CH_Y, CH_SSMSEQ, CH_GN, CH_FWHT, CH_HTU, CH_RES, CH_LOGITS, N_CH };
#define CAP_INF INT64_MAX
typedef struct { int64_t prod, resv, cons, cap; int mem_fed; } chan_t;

/* internal units: the memory side has several requesters sharing one server */
enum { IU_MEM_W, IU_MEM_SR, IU_MEM_SW, IU_MEM_CR, IU_MEM_CW, IU_MEM_E, IU_MEM_L, IU_MMU, IU_CONV, IU_DT, IU_DBX,
       IU_UPD, IU_HC, IU_Y, IU_GNORM, IU_FWHT, IU_MAT, IU_NORM, N_IU };
#define N_MEM_IU 7

typedef struct { job_t *jobs; size_t n, cap, next; double busy_until; } unit_t;
typedef struct { double t; int32_t ch; int64_t n; } event_t;

typedef struct {
    unit_t u[N_IU];
    chan_t ch[N_CH];
    event_t *heap; size_t n_heap, cap_heap;
    lm_status err;
} sim_t;

job_t *hw_add_job(sim_t *s, int iu, double dur, double lat, int layer, int phase);
/* A job's inputs and outputs (j NULL after a failed hw_add_job: nothing, s->err says why):
 * need: wait until channel ch has had n tokens produced in all; cons: take n tokens; prod: put n tokens. */
static inline void j_need(job_t *j, int ch, int64_t n) { if (j) j->need[j->n_need++] = (io_t){ch, n}; }
static inline void j_cons(job_t *j, int ch, int64_t n) { if (j) j->cons[j->n_cons++] = (io_t){ch, n}; }
static inline void j_prod(job_t *j, int ch, int64_t n) { if (j) j->prod[j->n_prod++] = (io_t){ch, n}; }

typedef struct {
    double bw_per_cycle, mem_latency, min_access;
    int n_layers;         /* layers in the job stream */
    double *layer_end;    /* time CH_RES reaches (l+1)*d_model */
    int64_t res_per_layer;
    /* statistics: per layer tag (n_layers = lm_head and embedding) */
    double *busy, *bytes; /* [(n_layers+1) * HW_N_UNITS], [(n_layers+1)] */
    double *stall;        /* [(n_layers+1) * HW_N_UNITS * 3], by window between layer ends */
    int trace_layer;
    lm_hw_result *res;
    double t_end;
} run_t;

/* Runs every unit's jobs to the end, filling rn's statistics; a deadlock -> LM_ERR_ARG. */
lm_status hw_run_engine(sim_t *s, run_t *rn);
#endif
