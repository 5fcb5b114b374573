/* The LightMamba* forward over chunks of tokens (int_forward.h). */
#include "model/int_forward.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

struct lm_int_session {
    const lm_model *m;
    lm_pool *pool;
    int max_T, n_workers;
    lm_int_session_arrays all;   /* the state of every layer, one block each */
    lm_int_state *st;            /* [n_layer] views */
    lm_int_scratch **ws;         /* [n_workers] */
    lm_int_token *tok;           /* [max_T] */
    int32_t *u;                  /* [T, D]  residual stream, Q10 */
    int32_t *zx;                 /* [T, E]  in_proj output at F_ip */
    int8_t *xbc_q;               /* [T, C]  the conv input, pot8 at F_ip */
    uint8_t *xbc_s;              /* [T, C/8] */
    int32_t *conv;               /* [T, C]  conv output at F_conv */
    int32_t *y;                  /* [T, di] SSM output at F_y */
    int32_t *delta;              /* [T, D]  out_proj output, Q10 */
    int64_t *acc;                /* [T, max(E, D)] exact linear accumulators */
    lm_qact act_in, act_out;     /* packed in_proj / out_proj inputs */
};

void lm_int_session_free(lm_int_session *is) {
    if (!is) return;
    free(is->all.conv_q); free(is->all.conv_s); free(is->all.h_q); free(is->all.h_s);
    free(is->st);
    for (int i = 0; is->ws && i < is->n_workers; i++) lm_int_scratch_free(is->ws[i]);
    free(is->ws);
    lm_int_tokens_free(is->tok);
    free(is->u); free(is->zx); free(is->xbc_q); free(is->xbc_s); free(is->conv); free(is->y); free(is->delta);
    free(is->acc);
    lm_qact_free(&is->act_in);
    lm_qact_free(&is->act_out);
    free(is);
}

lm_status lm_int_session_init(lm_int_session **out, const lm_model *m, lm_pool *pool, int max_T) {
    *out = NULL;
    const lm_int_layer *L0 = &m->int_layers[0];
    const int nl = m->cfg.n_layer, D = L0->D, E = L0->E, di = L0->d_inner, W = L0->W > 1 ? L0->W - 1 : 1;
    lm_int_session *is;
    LM_TRY(lm_calloc(&is, 1, sizeof *is, "integer session"));
    is->m = m;
    is->pool = pool;
    is->max_T = max_T;
    is->n_workers = lm_pool_size(pool);
    is->all.conv_n = (size_t)nl * W * L0->C;
    is->all.h_n = (size_t)nl * L0->H * L0->P * L0->N;
    const size_t T = (size_t)max_T, acc_w = (size_t)(E > D ? E : D);
    lm_status st = LM_OK;
#define ALLOC(ptr, n, what) if (st == LM_OK) st = lm_calloc(&(ptr), (size_t)(n), sizeof *(ptr), what)
    ALLOC(is->all.conv_q, is->all.conv_n, "conv state"); ALLOC(is->all.conv_s, is->all.conv_n / 8, "conv state");
    ALLOC(is->all.h_q, is->all.h_n, "SSM state"); ALLOC(is->all.h_s, is->all.h_n / 8, "SSM state");
    ALLOC(is->st, nl, "integer session"); ALLOC(is->ws, is->n_workers, "integer session");
    ALLOC(is->u, T * D, "integer session"); ALLOC(is->zx, T * E, "integer session");
    ALLOC(is->xbc_q, T * L0->C, "integer session"); ALLOC(is->xbc_s, T * L0->C / 8, "integer session");
    ALLOC(is->conv, T * L0->C, "integer session");
    ALLOC(is->y, T * di, "integer session"); ALLOC(is->delta, T * D, "integer session");
    ALLOC(is->acc, T * acc_w, "integer session");
#undef ALLOC
    for (int i = 0; st == LM_OK && i < is->n_workers; i++) st = lm_int_scratch_init(&is->ws[i], L0);
    if (st == LM_OK) st = lm_int_tokens_init(&is->tok, max_T, L0);
    if (st == LM_OK) st = lm_qact_init(&is->act_in, max_T, D, L0->abits, L0->in_proj->wbits);
    if (st == LM_OK) st = lm_qact_init(&is->act_out, max_T, di, L0->abits, L0->out_proj->wbits);
    if (st != LM_OK) {
        lm_int_session_free(is);
        return st;
    }
    for (int l = 0; l < nl; l++) {
        const size_t c = (size_t)l * W * L0->C, h = (size_t)l * L0->H * L0->P * L0->N;
        is->st[l] = (lm_int_state){is->all.conv_q + c, is->all.conv_s + c / 8, is->all.h_q + h, is->all.h_s + h / 8};
    }
    *out = is;
    return LM_OK;
}

void lm_int_session_reset(lm_int_session *is) {
    memset(is->all.conv_q, 0, is->all.conv_n);
    memset(is->all.conv_s, 0, is->all.conv_n / 8);
    memset(is->all.h_q, 0, is->all.h_n);
    memset(is->all.h_s, 0, is->all.h_n / 8);
}

lm_int_state *lm_int_session_state(lm_int_session *is, int l) { return &is->st[l]; }
lm_int_session_arrays lm_int_session_all(lm_int_session *is) { return is->all; }

/* ---- one layer over a chunk ---- */

typedef struct {
    lm_int_session *is;
    const lm_int_layer *L;
    int l, T;
} layer_task;

/* Stage 1 for tokens of part i: RMSNorm -> pot -> packed in_proj input. */
static void block_in_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    const int D = a->L->D;
    int t0, t1, eb;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        lm_int_block_in(is->act_in.q + (size_t)t * D, is->act_in.sa + (size_t)t * (D / 8), &eb, is->u + (size_t)t * D,
                        a->L, is->ws[i], NULL);
        is->act_in.eb[t] = eb;
    }
}

/* Stage 3a for tokens of part i: xBC -> pot8, the conv input. */
static void xbc_quant_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    const int C = a->L->C;
    int t0, t1;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    for (int t = t0; t < t1; t++)
        lm_pot_quantize_dp(is->xbc_q + (size_t)t * C, is->xbc_s + (size_t)t * (C / 8),
                           is->zx + (size_t)t * a->L->E + a->L->d_inner, C, 8, a->L->dp);
}

/* Stage 3b for the channel tiles of part i, every token in order (each channel's conv state is its own). */
static void conv_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    const int C = a->L->C;
    lm_int_state *st = &is->st[a->l];
    int g0, g1;
    lm_pool_split(C / 8, i, n, 1, &g0, &g1);
    if (g0 >= g1) return;
    for (int t = 0; t < a->T; t++)
        lm_int_conv_channels(is->conv + (size_t)t * C, st->conv_q, st->conv_s, is->xbc_q + (size_t)t * C,
                             is->xbc_s + (size_t)t * (C / 8), &a->L->conv, g0 * 8, g1 * 8);
}

/* Stage 3c for tokens of part i: SiLU, dt, dA, dB from the conv output. */
static void mixer_act_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    int t0, t1;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    for (int t = t0; t < t1; t++)
        lm_int_mixer_act(&is->tok[t], is->zx + (size_t)t * a->L->E, is->conv + (size_t)t * a->L->C, a->L, is->ws[i],
                         NULL);
}

/* Stage 4 for heads of part i, every token in order (each head's recurrence is its own). */
static void heads_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    int h0, h1;
    lm_pool_split(a->L->H, i, n, 1, &h0, &h1);
    if (h0 >= h1) return;
    for (int t = 0; t < a->T; t++)
        lm_int_heads(is->y + (size_t)t * a->L->d_inner, &is->tok[t], &is->st[a->l], a->L, h0, h1, is->ws[i]);
}

/* Stage 5 for tokens of part i: y -> gate -> gated norm -> (Hadamard) -> packed out_proj input. */
static void mixer_out_part(void *p, int i, int n) {
    layer_task *a = p;
    lm_int_session *is = a->is;
    const int di = a->L->d_inner;
    int t0, t1, eb;
    lm_pool_split(a->T, i, n, 1, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        lm_int_mixer_out(is->act_out.q + (size_t)t * di, is->act_out.sa + (size_t)t * (di / 8), &eb,
                         is->y + (size_t)t * di, &is->tok[t], a->L, is->ws[i], NULL);
        is->act_out.eb[t] = eb;
    }
}

/* The kernels cannot fail here: the session sized every buffer for these layers. */
static void linear(int32_t *out, int64_t *acc, lm_qact *act, const lm_qweight *W, int F, int T, int dp, lm_pool *pool) {
    lm_status s = lm_qact_pack(act, T);
    if (s == LM_OK) s = lm_qlinear_acc(acc, act, W, pool);
    (void)s;
    for (int t = 0; t < T; t++)
        lm_int_linear_round(out + (size_t)t * W->rows, acc + (size_t)t * W->rows, act->eb[t], W, F, dp);
}

static void layer_forward(lm_int_session *is, int l, int T) {
    const lm_int_layer *L = &is->m->int_layers[l];
    layer_task task = {is, L, l, T};
    lm_pool_run(is->pool, block_in_part, &task);
    linear(is->zx, is->acc, &is->act_in, L->in_proj, L->F_ip, T, L->dp, is->pool);
    lm_pool_run(is->pool, xbc_quant_part, &task);   /* lm_int_mixer_in, in three passes */
    lm_pool_run(is->pool, conv_part, &task);
    lm_pool_run(is->pool, mixer_act_part, &task);
    lm_pool_run(is->pool, heads_part, &task);
    lm_pool_run(is->pool, mixer_out_part, &task);
    linear(is->delta, is->acc, &is->act_out, L->out_proj, LM_RES_F, T, L->dp, is->pool);
    lm_int_residual_add(is->u, is->delta, T * L->D);
}

void lm_int_session_forward(lm_int_session *is, float *x, int T) {
    const int D = is->m->cfg.d_model;
    lm_int_residual_from_f32(is->u, x, T * D, is->m->int_layers[0].dp);
    for (int l = 0; l < is->m->cfg.n_layer; l++) layer_forward(is, l, T);
    lm_int_residual_to_f32(x, is->u, T * D);
}
