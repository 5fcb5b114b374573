/* Shared by the checkpoint readers of lm_model_init (src/io/model_load.c: safetensors and
 * PyTorch; model_gguf.c: GGUF): each turns its file into named tensors in the Hugging Face
 * layout (backbone.layers.N.mixer.in_proj.weight, ...) and hands them over here. */
#ifndef LM_MODEL_MODEL_LOAD_H
#define LM_MODEL_MODEL_LOAD_H
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/model.h"

/* Fills m's weights from the tensors (sorted here by name) for the config already in m->cfg:
 * every tensor's shape checked, F32 used in place when aligned, the others converted into
 * memory m owns. backbone.layers.N.mixer.A, when present, is A itself (else -exp(A_log) of
 * mixer.A_log). The tensor table gets a row for each tensor, unused ones marked. `where` names
 * the checkpoint in errors. */
lm_status lm_model_take_weights(lm_model *m, lm_st_tensor *tensors, int n, const char *where);
/* A GGUF file in llama.cpp's mamba2 layout (model_gguf.c), with a tokenizer.json beside it, else
 * the file's own tokenizer, else the bundled one. */
lm_status lm_model_load_gguf(lm_model *m, const char *path);
/* The same from size bytes in memory (which must outlive m); the tokenizer is the GGUF's own when
 * embedded_tokenizer is set and it has one, else m's tokenizer_path is left as it is. `what`
 * names the file in errors. */
lm_status lm_model_load_gguf_memory(lm_model *m, const unsigned char *data, size_t size, int embedded_tokenizer,
                                    const char *what);

/* The tokenizer.json equivalent to a GGUF's tokenizer.ggml.* (gguf_tokenizer.c; *json malloc'd);
 * LM_ERR_UNSUPPORTED when it is not a GPT-2 style BPE with GPT-2's pre-tokenizer (GPT-NeoX's). */
lm_status lm_gguf_tokenizer_json(const lm_gguf *g, const char *what, char **json, size_t *len);
/* Adds tokenizer.ggml.* for t to a GGUF being written, padded with unused tokens to n_rows
 * (the model's embedding rows, which llama.cpp requires the token list to match). */
lm_status lm_gguf_add_tokenizer(lm_gguf_writer *w, const lm_tokenizer *t, int n_rows);

#endif
