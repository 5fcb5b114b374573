/* Bytes moved by one decode step (what is counted, and why: traffic.h). */
#include "model/traffic.h"

/* A linear layer as the kernels read it. */
static uint64_t linear_bytes(const lm_linear *L) {
    uint64_t rows = (uint64_t)L->rows, bytes;
    if (L->kind == LM_LINEAR_INT) /* packed rows, one scale byte per 128 inputs, one e0 byte per row */
        bytes = rows * (uint64_t)L->q.row_stride + rows * (uint64_t)((L->cols + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP) + rows;
    else /* float32 or float16 weights */
        bytes = rows * (uint64_t)L->cols * (L->kind == LM_LINEAR_F16 ? 2 : sizeof(float));
    return bytes + (L->bias ? rows * sizeof(float) : 0);
}

void lm_decode_traffic_count(const lm_model *m, lm_decode_traffic *t) {
    const lm_config *c = &m->cfg;
    const uint64_t f = sizeof(float), D = (uint64_t)c->d_model, DI = (uint64_t)c->d_inner, H = (uint64_t)c->n_heads,
                   CD = DI + 2 * (uint64_t)c->n_groups * c->d_state;
    uint64_t w = 0;
    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        w += D * f + linear_bytes(&L->in_proj) + CD * (uint64_t)c->d_conv * f + (L->conv_b ? CD * f : 0) + 3 * H * f +
             DI * f + linear_bytes(&L->out_proj);
    }
    t->lm_head = linear_bytes(&m->lm_head);
    const uint64_t embedding_row = m->embedding_q.q ? m->embedding_q.row_stride + (uint64_t)lm_wgroups(c->d_model) + 1
                                   : D * (m->embedding_f16 ? 2 : f);
    t->weights = w + D * f /* norm_f */ + t->lm_head + embedding_row;
    const uint64_t conv = (uint64_t)c->n_layer * (uint64_t)(c->d_conv - 1) * CD,
                   ssm = (uint64_t)c->n_layer * H * c->head_dim * c->d_state;
    /* SSM mode pot8: int8 values and one exponent byte per 8 (model/int_forward.c) */
    t->state = m->int_layers ? conv + conv / 8 + ssm + ssm / 8 : (conv + ssm) * f;
    t->total = t->weights + 2 * t->state;
}
