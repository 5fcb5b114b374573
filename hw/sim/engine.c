/* The discrete-event engine of the simulator (sim.h explains the model): each unit starts its next
 * job when it is free and the job's inputs are there and its outputs have room; a job's outputs
 * arrive as events after its duration plus its latency. The memory units share one server, granted
 * round-robin; their durations are bytes at the achievable bandwidth. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "sim/engine.h"

const char *const lm_hw_unit_names[HW_N_UNITS] = {
    "mem weights", "mem state", "MMU", "conv", "dt", "SSM dB*x", "SSM h=dA*h+dBx", "SSM h*C", "SSM y (D,gate)",
    "gated norm", "HTU butterfly", "HTU +-1 matrix", "RMSNorm"};

/* the statistics row (HW_U_*) of each internal unit */
static const int iu_stat[N_IU] = {HW_U_MEM_W, HW_U_MEM_S, HW_U_MEM_S, HW_U_MEM_S, HW_U_MEM_S, HW_U_MEM_S, HW_U_MEM_S,
                                  HW_U_MMU, HW_U_CONV, HW_U_DT, HW_U_SSM_DBX, HW_U_SSM_UPD, HW_U_SSM_HC, HW_U_SSM_Y,
                                  HW_U_GNORM, HW_U_HTU_FWHT, HW_U_HTU_MAT, HW_U_NORM};
static const double iu_mem_latency[N_MEM_IU] = {1, 1, 0, 1, 0, 1, 0}; /* reads wait for the latency, writes are posted */

job_t *hw_add_job(sim_t *s, int iu, double dur, double lat, int layer, int phase) {
    unit_t *u = &s->u[iu];
    if (u->n == u->cap) {
        size_t nc = u->cap ? 2 * u->cap : 1024;
        job_t *nj = realloc(u->jobs, nc * sizeof *nj);
        if (!nj) { s->err = lm_fail(LM_ERR_NOMEM, "sim: out of memory for %zu jobs", nc); return NULL; }
        u->jobs = nj; u->cap = nc;
    }
    job_t *j = &u->jobs[u->n++];
    memset(j, 0, sizeof *j);
    j->dur = dur; j->lat = lat; j->layer = (int16_t)layer; j->phase = (int8_t)phase;
    return j;
}

static int heap_push(sim_t *s, double t, int ch, int64_t n) {
    if (s->n_heap == s->cap_heap) {
        size_t nc = s->cap_heap ? 2 * s->cap_heap : 256;
        event_t *nh = realloc(s->heap, nc * sizeof *nh);
        if (!nh) return 0;
        s->heap = nh; s->cap_heap = nc;
    }
    size_t i = s->n_heap++;
    while (i > 0 && s->heap[(i - 1) / 2].t > t) { s->heap[i] = s->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    s->heap[i] = (event_t){t, ch, n};
    return 1;
}
static event_t heap_pop(sim_t *s) {
    event_t top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap) break;
        if (c + 1 < s->n_heap && s->heap[c + 1].t < s->heap[c].t) c++;
        if (s->heap[c].t >= last.t) break;
        s->heap[i] = s->heap[c]; i = c;
    }
    if (s->n_heap) s->heap[i] = last;
    return top;
}

/* Why a job cannot start: 0 ready, 1 waiting for memory-fed data, 2 dependency, 3 output full. */
static int blocked(const sim_t *s, const job_t *j) {
    for (int i = 0; i < j->n_need; i++)
        if (s->ch[j->need[i].ch].prod < j->need[i].n) return s->ch[j->need[i].ch].mem_fed ? 1 : 2;
    for (int i = 0; i < j->n_cons; i++) {
        const chan_t *c = &s->ch[j->cons[i].ch];
        if (c->prod - c->cons < j->cons[i].n) return c->mem_fed ? 1 : 2;
    }
    for (int i = 0; i < j->n_prod; i++) {
        const chan_t *c = &s->ch[j->prod[i].ch];
        if (c->cap != CAP_INF && c->prod + c->resv - c->cons + j->prod[i].n > c->cap) return 3;
    }
    return 0;
}

static void trace_add(lm_hw_result *r, int unit, double t0, double t1, int phase) {
    int n = r->n_trace[unit];
    if (n > 0 && r->trace[unit][n - 1].phase == phase && t0 <= r->trace[unit][n - 1].t1 + 1e-6) {
        if (t1 > r->trace[unit][n - 1].t1) r->trace[unit][n - 1].t1 = t1;
        return;
    }
    if ((n & (n - 1)) == 0) { /* grow at powers of two */
        lm_hw_interval *ni = realloc(r->trace[unit], (size_t)(n ? 2 * n : 1) * sizeof *ni);
        if (!ni) return; /* a shorter timeline, not a failure */
        r->trace[unit] = ni;
    }
    r->trace[unit][n] = (lm_hw_interval){t0, t1, phase};
    r->n_trace[unit] = n + 1;
}

static void start_job(sim_t *s, run_t *rn, int iu, double now, double *server_free) {
    unit_t *u = &s->u[iu];
    job_t *j = &u->jobs[u->next++];
    for (int i = 0; i < j->n_cons; i++) s->ch[j->cons[i].ch].cons += j->cons[i].n;
    double dur = j->dur, lat = j->lat;
    int tag = j->layer < 0 ? rn->n_layers : j->layer;
    if (iu < N_MEM_IU) {
        /* the weight stream is contiguous in memory; other accesses round up to the access granularity */
        double b = iu == IU_MEM_W ? j->dur : ceil(j->dur / rn->min_access) * rn->min_access;
        dur = b / rn->bw_per_cycle;
        lat = iu_mem_latency[iu] * rn->mem_latency;
        *server_free = now + dur;
        rn->bytes[tag] += j->dur;
    }
    u->busy_until = now + dur;
    rn->busy[tag * HW_N_UNITS + iu_stat[iu]] += dur;
    if (rn->res && j->layer == rn->trace_layer && dur > 0) trace_add(rn->res, iu_stat[iu], now, now + dur, j->phase);
    for (int i = 0; i < j->n_prod; i++) {
        s->ch[j->prod[i].ch].resv += j->prod[i].n;
        if (!heap_push(s, now + dur + lat, j->prod[i].ch, j->prod[i].n)) s->err = lm_fail(LM_ERR_NOMEM, "sim: out of memory for events");
    }
}

lm_status hw_run_engine(sim_t *s, run_t *rn) {
    double now = 0, server_free = 0;
    int rr = 0, window = 0, layers_done = 0;
    for (;;) {
        while (s->n_heap && s->heap[0].t <= now) {
            event_t e = heap_pop(s);
            chan_t *c = &s->ch[e.ch];
            c->resv -= e.n;
            c->prod += e.n;
            if (e.ch == CH_RES)
                while (layers_done < rn->n_layers && c->prod >= (int64_t)(layers_done + 1) * rn->res_per_layer)
                    rn->layer_end[layers_done++] = e.t;
            if (e.t > rn->t_end) rn->t_end = e.t;
        }
        window = layers_done;
        for (int progress = 1; progress && s->err == LM_OK;) {
            progress = 0;
            for (int iu = N_MEM_IU; iu < N_IU; iu++) {
                unit_t *u = &s->u[iu];
                while (u->busy_until <= now && u->next < u->n && !blocked(s, &u->jobs[u->next])) {
                    start_job(s, rn, iu, now, &server_free);
                    progress = 1;
                }
            }
            if (server_free <= now) {
                for (int k = 0; k < N_MEM_IU; k++) {
                    int iu = (rr + k) % N_MEM_IU;
                    unit_t *u = &s->u[iu];
                    if (u->busy_until <= now && u->next < u->n && !blocked(s, &u->jobs[u->next])) {
                        start_job(s, rn, iu, now, &server_free);
                        rr = (iu + 1) % N_MEM_IU;
                        progress = 1;
                        break;
                    }
                }
            }
        }
        if (s->err != LM_OK) return s->err;
        double next = INFINITY;
        if (s->n_heap) next = s->heap[0].t;
        if (server_free > now && server_free < next) next = server_free;
        for (int iu = 0; iu < N_IU; iu++)
            if (s->u[iu].busy_until > now && s->u[iu].busy_until < next) next = s->u[iu].busy_until;
        if (next == INFINITY) break;
        for (int iu = N_MEM_IU; iu < N_IU; iu++) {
            unit_t *u = &s->u[iu];
            if (u->busy_until > now || u->next >= u->n) continue;
            int why = blocked(s, &u->jobs[u->next]);
            if (why) rn->stall[(window * HW_N_UNITS + iu_stat[iu]) * 3 + why - 1] += next - now;
        }
        now = next;
    }
    for (int iu = 0; iu < N_IU; iu++)
        if (s->u[iu].next < s->u[iu].n)
            return lm_fail(LM_ERR_ARG, "sim: the dataflow deadlocked: unit %d stopped at job %zu of %zu (a buffer too small for this design)",
                           iu, s->u[iu].next, s->u[iu].n);
    return LM_OK;
}
