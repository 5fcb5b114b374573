/* The in-memory model: configuration, per-layer weights and where they live.
 * Float tensors are float32; a checkpoint stored as float32 is used in place from its
 * memory map, float16/bfloat16 tensors are converted once at load into owned memory.
 * Quantized models (src/quant) fill the same structure with integer linear layers, and
 * keep their float16 embedding and lm_head as stored (in the file's map: half the bytes
 * of float32 to read per decode step; every half converts exactly to a float). */
#ifndef LM_MODEL_MODEL_H
#define LM_MODEL_MODEL_H
#include "lightmamba.h"
#include "common/file.h"
#include "kernels/kernels.h"
#include "integer/integer.h"
#include "kernels/hadamard.h"

typedef enum { LM_LINEAR_F32 = 0, LM_LINEAR_INT, LM_LINEAR_F16 } lm_linear_kind;

/* An integer lm_head (head_bits 8 or 4) quantizes its input to 8 bits per 8 channels, whatever the
 * blocks' abits: an 8-bit head has no 4-bit-input kernel (W8A4), and the input bits cost no bytes. */
#define LM_HEAD_ABITS 8

/* y = W x (+ bias): a linear layer in float32, IEEE float16 or the integer format of kernels.h. */
typedef struct {
    lm_linear_kind kind;
    int rows, cols;      /* O x K */
    const float *w;      /* F32: [rows, cols] */
    const uint16_t *w16; /* F16: [rows, cols] IEEE half bits */
    const float *bias;   /* [rows] or NULL */
    lm_qweight q;        /* INT: weights and scales */
    int abits;           /* INT: activation bits (4 or 8) */
} lm_linear;

typedef struct {
    const float *norm;       /* [d_model] block RMSNorm weight */
    lm_linear in_proj;       /* [2*d_inner + 2*G*N + H, d_model], rows ordered [z | x | B | C | dt] */
    const float *conv_w;     /* [conv_dim, d_conv], conv_dim = d_inner + 2*G*N */
    const float *conv_b;     /* [conv_dim] or NULL */
    const float *dt_bias;    /* [H] */
    const float *A;          /* [H], A = -exp(A_log), computed at load */
    const float *D;          /* [H] */
    const float *gnorm;      /* [d_inner] gated RMSNorm weight */
    lm_linear out_proj;      /* [d_model, d_inner] */
} lm_layer;

struct lm_model {
    lm_config cfg;
    /* [vocab_size, d_model], exactly one of the three: float32, IEEE half bits (quantized files),
     * or integer rows in the format of kernels.h (quantized files with head_bits 8 or 4: q.q set);
     * read a row with embedding_forward (model/ops.h) */
    const float *embedding;
    const uint16_t *embedding_f16;
    lm_qweight embedding_q;
    const float *norm_f;     /* [d_model] */
    /* [vocab_size, d_model]; tied: w == embedding (F32), w16 == embedding_f16 (F16) or q == embedding_q
     * (INT, abits LM_HEAD_ABITS) */
    lm_linear lm_head;
    lm_layer *layers;        /* [n_layer] */
    /* The tokenizer: embedded bytes (a quantized file's, in its map), else the file at tokenizer_path,
     * else (both NULL) the bundled one. tokenizer_path also names the source for `info`. */
    char *tokenizer_path;
    const char *tokenizer_json;
    size_t tokenizer_json_len;
    /* Storage and inspection (filled by the loaders, released by lm_model_free in model.c):
     * the tensor table for `info` (names owned), the open checkpoint whose memory map F32
     * tensors point into, and the float32 buffers the model owns (converted tensors, A). */
    lm_tensor_info *tensors;
    int n_tensors;
    const char *format;      /* lm_model_format: "safetensors", "pytorch", "gguf" or "quantized" */
    struct lm_safetensors *checkpoint;
    lm_mapping file;         /* a PyTorch or GGUF file's memory map (F32 tensors point into it) */
    void **owned;
    int n_owned;
    /* Quantized models (model/qfile.c): how the model was quantized (method LM_QUANT_NONE
     * for a float checkpoint), the online Hadamard applied to every out_proj input (NULL: none;
     * lightmamba), and the quantized file's memory map that tensors point into. */
    lm_quant_settings quant;
    lm_hadamard *rot_inner;
    lm_mapping qfile;
    /* SSM mode pot8: every block's integer parameters [n_layer] (NULL otherwise). Loaded models:
     * owned through `owned`, arrays in the file's map; the quantizer frees its own. */
    lm_int_layer *int_layers;
};

/* Memory the model owns (freed by lm_model_free): lm_model_own allocates `bytes` (64-byte aligned
 * for SIMD loads); lm_model_adopt takes over p, a malloc'd buffer (freed here if that fails). */
lm_status lm_model_own(lm_model *m, size_t bytes, void **out);
lm_status lm_model_adopt(lm_model *m, void *p);
/* Appends a row to the tensor table (`info`'s name is copied). */
lm_status lm_model_add_tensor_info(lm_model *m, const lm_tensor_info *info);

/* A copy of the model's tokenizer.json bytes (*json malloc'd, NUL-terminated; *len excludes the NUL),
 * for writing it into a quantized model file. */
lm_status lm_model_tokenizer_json(const lm_model *m, char **json, size_t *len);

#endif
