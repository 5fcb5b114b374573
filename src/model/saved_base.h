/* The base model saved for comparisons (struct lm_saved_base; API in lightmamba.h, file layout in
 * docs/evaluation.md): its lm_head and, for every position of one text, the hidden state that
 * lm_head reads (after norm_f), from which its logits are recomputed exactly. Written while
 * lm_kl_divergence runs the base (model/perplexity.c), one chunk of positions at a time, so memory
 * does not grow with the text. */
#ifndef LM_MODEL_SAVED_BASE_H
#define LM_MODEL_SAVED_BASE_H
#include <stdint.h>
#include "format/container.h"
#include "model/model.h"

struct lm_saved_base {
    /* what it was computed on: the chunk length and the text's ids (their count and CRC-32C as
     * int32 little-endian) */
    int ctx;
    uint64_t n_ids;
    uint32_t ids_crc;
    lm_linear head;          /* [vocab_size, d_model], F32 or F16, in the file's map */
    const float *hidden;     /* [n_ids, d_model] lm_head's input at every position, in the map */
    lm_mapping map;
};

/* CRC-32C of ids as int32 little-endian (the host's order: x86-64), which identifies a text. */
uint32_t lm_ids_crc(const int32_t *ids, uint64_t n_ids);

/* Writing a saved base: open (header and head), then every position's hidden rows in order, then
 * close with the run's status: LM_OK commits the file (atomically), anything else removes it and is
 * returned (a failure leaves no file). */
typedef struct {
    lm_ct_stream st;
    int d_model;
} lm_base_writer;

lm_status lm_base_writer_open(lm_base_writer *w, const char *path, const lm_linear *head, int ctx,
                              const int32_t *ids, uint64_t n_ids);
lm_status lm_base_writer_rows(lm_base_writer *w, const float *hidden, int T);   /* hidden [T, d_model] */
lm_status lm_base_writer_close(lm_base_writer *w, lm_status st);

#endif
