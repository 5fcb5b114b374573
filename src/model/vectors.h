/* lightmamba vectors: test vectors for the accelerator's kernels from the integer model
 * (docs/integer-datapath.md section 8). For one decode step of one layer, after the prompt's
 * prefill, every unit's inputs and outputs as the golden model computes them
 * (lm_int_block_trace), plus the layer's parameters, as raw little-endian integer arrays with
 * a manifest.json. */
#ifndef LM_MODEL_VECTORS_H
#define LM_MODEL_VECTORS_H
#include "model/model.h"

typedef struct {
    int32_t token;     /* the decode step's input: the greedy next token after the prompt */
    int n_arrays;
} lm_vectors_result;

/* ids [n_ids] the prompt (>= 1 token); the greedy next token is chosen among ids [0, n_candidates)
 * (lm_token_candidates: the tokenizer's ids, not a padded vocabulary's extra rows), 1 <= n_candidates
 * <= vocab_size; layer in [0, n_layer); m quantized with SSM mode pot8.
 * Writes dir/manifest.json and one file per array into a fresh dir.tmp.XXXXXX beside dir, then
 * renames it to dir: dir appears whole or not at all. dir must not exist. */
lm_status lm_vectors_dump(const lm_model *m, const int32_t *ids, size_t n_ids, int n_candidates, int layer,
                          const char *dir, int n_threads, lm_vectors_result *result);

#endif
