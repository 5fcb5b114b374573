/* Sessions: the Mamba2 forward pass over chunks of tokens, with the recurrent state.
 *
 * Per chunk of T <= LM_SESSION_CHUNK tokens, each block runs
 *   xn = RMSNorm(x)                                  (tokens in parallel)
 *   zxbcdt = in_proj xn                              (GEMM over the chunk)
 *   xbc = SiLU(conv1d([conv state ; xBC]) + b)      (causal, depthwise; channels in parallel)
 *   y = selective scan(x, B, C, dt) * SiLU(z)        (heads in parallel; token by token, or chunked
 *                                                     for a prefill chunk: ssm_chunked_pays)
 *   y = group RMSNorm(y) (, Hadamard y)              (tokens in parallel)
 *   x += out_proj y                                  (GEMM over the chunk)
 * then norm_f and lm_head for the rows whose logits are wanted. Decode is T = 1.
 * Memory is fixed by LM_SESSION_CHUNK, whatever the input length. */
#include "model/session.h"
#include "model/ops.h"
#include "model/int_forward.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static size_t conv_dim(const lm_config *c) { return (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state; }
static size_t in_proj_width(const lm_config *c) { return 2 * (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state + c->n_heads; }
static size_t ssm_state_size(const lm_config *c) { return (size_t)c->n_heads * c->head_dim * c->d_state; }
static size_t conv_state_size(const lm_config *c) { return (size_t)(c->d_conv - 1) * conv_dim(c); }

lm_session_params lm_session_default_params(void) {
    return (lm_session_params){.n_threads = 0, .abort = NULL, .abort_ctx = NULL};
}

lm_status lm_session_init(lm_session **out, const lm_model *m, const lm_session_params *params) {
    *out = NULL;
    if (!m) return lm_fail(LM_ERR_ARG, "lm_session_init: no model");
    const lm_session_params p = params ? *params : lm_session_default_params();
    const lm_config *c = &m->cfg;
    const size_t T = LM_SESSION_CHUNK;
    lm_session *s;
    LM_TRY(lm_calloc(&s, 1, sizeof *s, "session"));
    s->m = m;
    s->abort = p.abort;
    s->abort_ctx = p.abort_ctx;
    lm_status st = lm_pool_init(&s->pool, p.n_threads);
    if (st == LM_OK) st = lm_calloc(&s->conv_state, (size_t)c->n_layer, conv_state_size(c) * sizeof(float), "conv state");
    if (st == LM_OK) st = lm_calloc(&s->ssm_state, (size_t)c->n_layer, ssm_state_size(c) * sizeof(float), "SSM state");
    if (st == LM_OK) st = lm_calloc(&s->last_hidden, (size_t)c->d_model, sizeof(float), "session state");
    if (st == LM_OK) st = lm_calloc(&s->x, T * c->d_model, sizeof(float), "session scratch");
    if (st == LM_OK) st = lm_calloc(&s->xn, T * c->d_model, sizeof(float), "session scratch");
    if (st == LM_OK) st = lm_calloc(&s->zxbcdt, T * in_proj_width(c), sizeof(float), "session scratch");
    if (st == LM_OK) st = lm_calloc(&s->xbc, T * conv_dim(c), sizeof(float), "session scratch");
    if (st == LM_OK) st = lm_calloc(&s->y, T * c->d_inner, sizeof(float), "session scratch");
    if (st == LM_OK) st = lm_calloc(&s->out, T * c->d_model, sizeof(float), "session scratch");
    if (st == LM_OK)
        st = lm_calloc(&s->ssd_scratch, (size_t)lm_pool_size(s->pool) * ssm_chunked_scratch_floats(c), sizeof(float),
                       "session scratch");
    /* A quantized model's integer layers (the same kind in every block) quantize their inputs here. */
    const lm_linear *in0 = &m->layers[0].in_proj, *out0 = &m->layers[0].out_proj;
    if (st == LM_OK && in0->kind == LM_LINEAR_INT)
        st = lm_qact_init(&s->act_in, (int)T, c->d_model, in0->abits, in0->q.wbits);
    if (st == LM_OK && in0->kind == LM_LINEAR_INT) st = lm_qact_set_format(&s->act_in, m->quant.act_group, m->quant.act_scale);
    if (st == LM_OK && out0->kind == LM_LINEAR_INT)
        st = lm_qact_init(&s->act_out, (int)T, c->d_inner, out0->abits, out0->q.wbits);
    if (st == LM_OK && out0->kind == LM_LINEAR_INT) st = lm_qact_set_format(&s->act_out, m->quant.act_group, m->quant.act_scale);
    if (st == LM_OK && m->lm_head.kind == LM_LINEAR_INT)
        st = lm_qact_init(&s->act_head, (int)T, c->d_model, m->lm_head.abits, m->lm_head.q.wbits);
    if (st == LM_OK && m->int_layers) st = lm_int_session_init(&s->int_s, m, s->pool, (int)T);
    if (st != LM_OK) {
        lm_session_free(s);
        return st;
    }
    *out = s;
    return LM_OK;
}

void lm_session_free(lm_session *s) {
    if (!s) return;
    lm_pool_free(s->pool);
    free(s->conv_state);
    free(s->ssm_state);
    free(s->last_hidden);
    free(s->x);
    free(s->xn);
    free(s->zxbcdt);
    free(s->xbc);
    free(s->y);
    free(s->out);
    free(s->ssd_scratch);
    lm_qact_free(&s->act_in);
    lm_qact_free(&s->act_out);
    lm_qact_free(&s->act_head);
    lm_int_session_free(s->int_s);
    free(s);
}

void lm_session_reset(lm_session *s) {
    const lm_config *c = &s->m->cfg;
    memset(s->conv_state, 0, (size_t)c->n_layer * conv_state_size(c) * sizeof(float));
    memset(s->ssm_state, 0, (size_t)c->n_layer * ssm_state_size(c) * sizeof(float));
    memset(s->last_hidden, 0, (size_t)c->d_model * sizeof(float));
    if (s->int_s) lm_int_session_reset(s->int_s);
    s->n_tokens = 0;
}

uint64_t lm_session_n_tokens(const lm_session *s) { return s->n_tokens; }

int lm_session_vocab_size(const lm_session *s) { return s->m->cfg.vocab_size; }

void lm_session_set_observer(lm_session *s, lm_observer_fn fn, void *ctx) {
    s->observer = fn;
    s->observer_ctx = ctx;
}

void lm_session_set_profile(lm_session *s, lm_stage_profile *p) {
    s->profile = p;
    if (p) p->mark = lm_now_seconds();
}

const char *lm_stage_name(lm_stage stage) {
    static const char *const names[LM_STAGE_COUNT] = {"norms", "linear", "conv", "ssm", "hadamard", "lm_head",
                                                      "integer blocks", "other"};
    return stage >= 0 && stage < LM_STAGE_COUNT ? names[stage] : "?";
}

/* Charges the time since the previous mark to `stage`. */
static inline void stage_done(lm_session *s, lm_stage stage) {
    if (!s->profile) return;
    double t = lm_now_seconds();
    s->profile->seconds[stage] += t - s->profile->mark;
    s->profile->mark = t;
}

/* The parallel steps of one block. Each part's share is fixed by its index (heads, channels in
 * whole cache lines, or tokens), and each element is computed the same way whichever part holds
 * it, so the results do not depend on the number of threads. */
typedef struct {
    lm_session *s;
    int layer, T;
} block_task;

/* the block's RMSNorm, tokens split over the parts */
static void norm_task_run(void *arg, int i, int n) {
    block_task *a = arg;
    const lm_config *c = &a->s->m->cfg;
    const size_t D = (size_t)c->d_model;
    int t0, t1;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    rmsnorm_forward(a->s->xn + t0 * D, a->s->x + t0 * D, a->s->m->layers[a->layer].norm, t1 - t0, (int)D, c->eps);
}

/* conv1d + SiLU, channels split over the parts */
static void conv_task_run(void *arg, int i, int n) {
    block_task *a = arg;
    const lm_config *c = &a->s->m->cfg;
    const lm_layer *L = &a->s->m->layers[a->layer];
    const int C = (int)conv_dim(c);
    int c0, c1;
    lm_pool_split(C, i, n, 16, &c0, &c1);
    conv1d_silu_forward(a->s->xbc, a->s->conv_state + (size_t)a->layer * conv_state_size(c), a->s->zxbcdt + c->d_inner,
                        (int)in_proj_width(c), L->conv_w, L->conv_b, a->T, C, c->d_conv, c0, c1);
}

/* the scan (token by token, or chunked where that is faster: ssm_chunked_pays), then the SiLU(z)
 * gate, of the part's heads */
static void ssm_task_run(void *arg, int i, int n) {
    block_task *a = arg;
    const lm_config *c = &a->s->m->cfg;
    int h0, h1;
    lm_pool_split(c->n_heads, i, n, 1, &h0, &h1);
    float *state = a->s->ssm_state + (size_t)a->layer * ssm_state_size(c);
    const float *dt_raw = a->s->zxbcdt + 2 * (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state;
    const lm_layer *L = &a->s->m->layers[a->layer];
    if (ssm_chunked_pays(c, a->T))
        ssm_chunked_forward(a->s->y, state, a->s->xbc, dt_raw, (int)in_proj_width(c), L, c, a->T, h0, h1,
                            a->s->ssd_scratch + (size_t)i * ssm_chunked_scratch_floats(c));
    else
        ssm_forward(a->s->y, state, a->s->xbc, dt_raw, (int)in_proj_width(c), L, c, a->T, h0, h1);
    silu_gate_forward(a->s->y, a->s->zxbcdt /* z */, (int)in_proj_width(c), a->T, c->d_inner, h0 * c->head_dim,
                      h1 * c->head_dim);
}

/* the group RMSNorm of the gated RMSNorm, tokens split over the parts */
static void gnorm_task_run(void *arg, int i, int n) {
    block_task *a = arg;
    const lm_config *c = &a->s->m->cfg;
    int t0, t1;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    group_rmsnorm_forward(a->s->y + (size_t)t0 * c->d_inner, a->s->m->layers[a->layer].gnorm, t1 - t0, c->d_inner,
                          c->n_groups, c->eps);
}

/* LightMamba's online Hadamard rotation, tokens split over the parts */
static void rotate_task_run(void *arg, int i, int n) {
    block_task *a = arg;
    int t0, t1;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    lm_hadamard_rotate(a->s->m->rot_inner, a->s->y + (size_t)t0 * a->s->m->cfg.d_inner, t1 - t0);
}

/* A step whose work grows with the chunk: split over the pool for a chunk, run on the caller
 * for one token, where it is a few microseconds, no more than a hand-off may cost on a busy
 * machine (the conv at T = 1 measured no faster split). */
static void chunk_step(lm_session *s, lm_task_fn fn, block_task *task) {
    if (task->T > 1)
        lm_pool_run(s->pool, fn, task);
    else
        fn(task, 0, 1);
}

static void observe(lm_session *s, int layer, lm_site site, const float *x, int T, int K) {
    if (s->observer) s->observer(s->observer_ctx, layer, site, x, T, K);
}

/* One Mamba2 block over the chunk in s->x [T, d_model], in place. */
static void block_forward(lm_session *s, int l, int T) {
    const lm_config *c = &s->m->cfg;
    const lm_layer *L = &s->m->layers[l];
    const int D = c->d_model;

    block_task task = {s, l, T};
    chunk_step(s, norm_task_run, &task);
    stage_done(s, LM_STAGE_NORM);
    observe(s, l, LM_SITE_IN_PROJ, s->xn, T, D);
    linear_forward(s->zxbcdt, s->xn, &L->in_proj, T, s->pool, &s->act_in);
    stage_done(s, LM_STAGE_LINEAR);

    chunk_step(s, conv_task_run, &task);
    stage_done(s, LM_STAGE_CONV);
    lm_pool_run(s->pool, ssm_task_run, &task); /* with the gate of the gated RMSNorm */
    stage_done(s, LM_STAGE_SSM);
    chunk_step(s, gnorm_task_run, &task);
    stage_done(s, LM_STAGE_NORM);
    /* LightMamba: the online Hadamard rotation of out_proj's input (its transpose is fused into out_proj). */
    if (s->m->rot_inner) {
        chunk_step(s, rotate_task_run, &task);
        stage_done(s, LM_STAGE_HADAMARD);
    }

    observe(s, l, LM_SITE_OUT_PROJ, s->y, T, c->d_inner);
    linear_forward(s->out, s->y, &L->out_proj, T, s->pool, &s->act_out);
    stage_done(s, LM_STAGE_LINEAR);
    for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->out[i];
    stage_done(s, LM_STAGE_OTHER);
}

/* norm_f then lm_head for rows [r0, r0 + n) of the chunk: logits [n, vocab]. */
static void head_forward(lm_session *s, int r0, int n, float *logits) {
    const lm_config *c = &s->m->cfg;
    rmsnorm_forward(s->xn, s->x + (size_t)r0 * c->d_model, s->m->norm_f, n, c->d_model, c->eps);
    stage_done(s, LM_STAGE_NORM);
    linear_forward(logits, s->xn, &s->m->lm_head, n, s->pool, &s->act_head);
    stage_done(s, LM_STAGE_HEAD);
}

lm_status lm_session_forward(lm_session *s, const int32_t *tokens, size_t n, float *logits, float *last_logits) {
    const lm_config *c = &s->m->cfg;
    const size_t V = (size_t)c->vocab_size, D = (size_t)c->d_model;
    if (n == 0 && last_logits) return lm_fail(LM_ERR_ARG, "no tokens to compute logits for");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return lm_fail(LM_ERR_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)",
                           (int)tokens[i], i, c->vocab_size);
    if (s->profile) s->profile->mark = lm_now_seconds();

    for (size_t done = 0; done < n;) {
        /* stopped: the state, token count and last hidden vector are those after `done` tokens */
        if (s->abort && s->abort(s->abort_ctx)) return lm_fail(LM_ERR_ABORTED, "aborted after %zu of %zu tokens", done, n);
        int T = (int)(n - done < LM_SESSION_CHUNK ? n - done : LM_SESSION_CHUNK);
        embedding_forward(s->x, s->m, tokens + done, T);
        stage_done(s, LM_STAGE_OTHER);
        if (s->int_s) {
            lm_int_session_forward(s->int_s, s->x, T);   /* LightMamba*: the blocks in integers */
            stage_done(s, LM_STAGE_INT_BLOCKS);
        } else {
            for (int l = 0; l < c->n_layer; l++) block_forward(s, l, T);
        }
        memcpy(s->last_hidden, s->x + (size_t)(T - 1) * D, D * sizeof(float));
        stage_done(s, LM_STAGE_OTHER);
        if (logits)
            head_forward(s, 0, T, logits + done * V);
        else if (last_logits && done + T == n)
            head_forward(s, T - 1, 1, last_logits);
        done += T;
        s->n_tokens += (uint64_t)T;
    }
    if (logits && last_logits) memcpy(last_logits, logits + (n - 1) * V, V * sizeof(float));
    stage_done(s, LM_STAGE_OTHER);
    return LM_OK;
}

lm_status lm_session_last_logits(lm_session *s, float *logits) {
    if (s->n_tokens == 0) return lm_fail(LM_ERR_ARG, "no token has been fed yet: there are no logits to give");
    if (s->profile) s->profile->mark = lm_now_seconds();
    memcpy(s->x, s->last_hidden, (size_t)s->m->cfg.d_model * sizeof(float));
    head_forward(s, 0, 1, logits);
    return LM_OK;
}
