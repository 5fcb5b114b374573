/* The tensors of a Mamba2 model, described once: every loader and writer (the Hugging Face
 * directory, the quantized model file, synthetic models) walks this table instead of spelling
 * the layout out again. Names are the Hugging Face ones; shapes come from the config.
 *
 * Shape legend: V vocab_size, D d_model, DI d_inner, H n_heads, CD conv_dim = DI + 2 G N,
 * E in_proj rows = 2 DI + 2 G N + H, W d_conv. */
#ifndef LM_MODEL_LAYOUT_H
#define LM_MODEL_LAYOUT_H
#include "model/model.h"

typedef enum {
    LM_T_EMBEDDING,    /* [V, D] */
    LM_T_NORM,         /* [D]     block RMSNorm weight */
    LM_T_IN_PROJ,      /* [E, D]  linear weight */
    LM_T_IN_PROJ_BIAS, /* [E]     when proj_bias */
    LM_T_CONV_W,       /* [CD, W] (stored [CD, 1, W] by Hugging Face) */
    LM_T_CONV_B,       /* [CD]    when conv_bias */
    LM_T_DT_BIAS,      /* [H] */
    LM_T_A_LOG,        /* [H]     the model holds A = -exp(A_log) */
    LM_T_D,            /* [H] */
    LM_T_GNORM,        /* [DI]    gated RMSNorm weight */
    LM_T_OUT_PROJ,     /* [D, DI] linear weight */
    LM_T_OUT_PROJ_BIAS,/* [D]     when proj_bias */
    LM_T_NORM_F,       /* [D] */
    LM_T_LM_HEAD,      /* [V, D]  when not tied */
} lm_tensor_role;

typedef struct {
    lm_tensor_role role;
    int layer;         /* -1 outside the blocks */
    char name[96];     /* Hugging Face name */
    int rows, cols;    /* [rows] when cols == 0, else [rows, cols] */
} lm_tensor_desc;

typedef lm_status (*lm_tensor_fn)(void *ctx, const lm_tensor_desc *t);

/* fn on every tensor of config c in checkpoint order: the embedding, each layer's, norm_f, lm_head.
 * Stops at the first failure and returns it. The three parts can be walked alone. */
lm_status lm_layout_walk(const lm_config *c, lm_tensor_fn fn, void *ctx);
lm_status lm_layout_head(const lm_config *c, lm_tensor_fn fn, void *ctx);           /* the embedding */
lm_status lm_layout_layer(const lm_config *c, int layer, lm_tensor_fn fn, void *ctx);
lm_status lm_layout_tail(const lm_config *c, lm_tensor_fn fn, void *ctx);           /* norm_f, lm_head */

/* Fills m (its config set) from a source of tensors: allocates m->layers, calls bind on every
 * tensor of the layout (lm_layout_walk), then points a tied lm_head at the embedding (a tied
 * checkpoint may still carry a copy of lm_head.weight, as state-spaces' do; it stays unused).
 * A file of n_tensors tensors (n_tensors < 0: not a file) is first checked to hold each layer's 8
 * mandatory tensors, the embedding and norm_f, else LM_ERR_FORMAT naming `what`: before the layers
 * are allocated, so a config claiming 2^24 layers costs nothing. */
lm_status lm_layout_bind(lm_model *m, int n_tensors, const char *what, lm_tensor_fn bind, void *ctx);

static inline size_t lm_tensor_numel(const lm_tensor_desc *t) { return (size_t)t->rows * (size_t)(t->cols ? t->cols : 1); }
static inline int lm_tensor_is_linear(lm_tensor_role r) { return r == LM_T_IN_PROJ || r == LM_T_OUT_PROJ || r == LM_T_LM_HEAD; }

/* Where tensor t lives in m: the float pointer of a vector or matrix role (A_LOG: the A field;
 * biases: the linear layer's bias), or NULL for a linear role (see lm_tensor_linear). */
const float **lm_tensor_slot(lm_model *m, const lm_tensor_desc *t);
/* The linear layer of a linear role (in_proj, out_proj, lm_head), else NULL. */
lm_linear *lm_tensor_linear(lm_model *m, const lm_tensor_desc *t);

#endif
