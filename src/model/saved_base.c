/* The saved base model (model/saved_base.h), a file in the container of format/container.h
 * (docs/evaluation.md):
 *   header fields  [40] ctx u32, [44] CRC-32C of the text's ids u32, [48] n_ids u64
 *   arrays         lm_head.weight [vocab_size, d_model] F32 or F16 (IEEE half bits), as the base used it
 *                  hidden [n_ids, d_model] F32: lm_head's input at every position, streamed last */
#include "model/saved_base.h"
#include "common/crc32c.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BASE_MAGIC "LMBASE\0" /* 7 characters + NUL: 8 bytes */
#define BASE_VERSION 1
enum { H_CTX = 40, H_IDS_CRC = 44, H_N_IDS = 48 };

uint32_t lm_ids_crc(const int32_t *ids, uint64_t n_ids) { return lm_crc32c(0, ids, (size_t)n_ids * sizeof *ids); }

lm_status lm_base_writer_open(lm_base_writer *w, const char *path, const lm_linear *head, int ctx,
                              const int32_t *ids, uint64_t n_ids) {
    memset(w, 0, sizeof *w);
    if ((head->kind != LM_LINEAR_F32 && head->kind != LM_LINEAR_F16) || head->bias)
        return lm_fail(LM_ERR_UNSUPPORTED, "saving a base model: its lm_head is not a plain float32 or float16 matrix");
    const uint64_t V = (uint64_t)head->rows, D = (uint64_t)head->cols;
    lm_ct_array arrays[2];
    lm_ct_writer cw = {.arrays = arrays, .n = 2};
    if (head->kind == LM_LINEAR_F16)
        LM_TRY(lm_ct_array_set(&arrays[0], "lm_head.weight", LM_CT_F16, 2, (const uint64_t[]){V, D}, head->w16));
    else
        LM_TRY(lm_ct_array_set(&arrays[0], "lm_head.weight", LM_CT_F32, 2, (const uint64_t[]){V, D}, head->w));
    LM_TRY(lm_ct_array_set(&arrays[1], "hidden", LM_CT_F32, 2, (const uint64_t[]){n_ids, D}, NULL));
    lm_ct_layout(&cw);
    lm_put_u32(cw.header + H_CTX, (uint32_t)ctx);
    lm_put_u32(cw.header + H_IDS_CRC, lm_ids_crc(ids, n_ids));
    lm_put_u64(cw.header + H_N_IDS, n_ids);
    LM_TRY(lm_ct_write_begin(&cw, BASE_MAGIC, BASE_VERSION, path, &w->st));
    w->d_model = (int)D;
    return LM_OK;
}

lm_status lm_base_writer_rows(lm_base_writer *w, const float *hidden, int T) {
    return lm_ct_stream_put(&w->st, hidden, (uint64_t)T * (uint64_t)w->d_model * sizeof(float));
}

lm_status lm_base_writer_close(lm_base_writer *w, lm_status st) {
    if (st == LM_OK) return lm_ct_stream_commit(&w->st);
    lm_ct_stream_abort(&w->st);
    return st;
}

/* The container's checks, then the two arrays by name, dtype and shape, then every value finite. */
static lm_status check_file(lm_saved_base *b, const char *path, const unsigned char *d, uint64_t size) {
    lm_ct_reader r;
    LM_TRY(lm_ct_open(&r, d, size, BASE_MAGIC, BASE_VERSION, BASE_VERSION, "saved base file", path));
    lm_ct_array head, hidden;
    if (r.n != 2) return lm_fail(LM_ERR_FORMAT, "%s: %u arrays, a saved base has 2", path, (unsigned)r.n);
    LM_TRY(lm_ct_entry(&r, 0, &head));
    LM_TRY(lm_ct_entry(&r, 1, &hidden));
    const uint32_t ctx = lm_get_u32(d + H_CTX);
    const uint64_t n_ids = lm_get_u64(d + H_N_IDS), V = head.shape[0], D = head.shape[1];
    if (strcmp(head.name, "lm_head.weight") || (head.dtype != LM_CT_F32 && head.dtype != LM_CT_F16) || head.ndim != 2 ||
        strcmp(hidden.name, "hidden") || hidden.dtype != LM_CT_F32 || hidden.ndim != 2 || hidden.shape[0] != n_ids ||
        hidden.shape[1] != D || V < 2 || V > (1u << 30) || D > (1u << 20) || ctx < 2 || ctx > (1u << 30) || n_ids < 2)
        return lm_fail(LM_ERR_FORMAT, "%s: not the arrays of a saved base (lm_head.weight [vocab, d_model] F32/F16, "
                       "hidden [n_ids, d_model] F32) or header fields out of range", path);
    for (uint64_t i = 0; i < V * D; i++) {
        int bad = head.dtype == LM_CT_F16 ? (((const uint16_t *)head.data)[i] & 0x7C00) == 0x7C00 /* Inf, NaN */
                                          : !isfinite(((const float *)head.data)[i]);
        if (bad) return lm_fail(LM_ERR_FORMAT, "%s: lm_head row %llu is not finite", path, (unsigned long long)(i / D));
    }
    const float *h = hidden.data;
    for (uint64_t i = 0; i < n_ids * D; i++)
        if (!isfinite(h[i]))
            return lm_fail(LM_ERR_FORMAT, "%s: hidden state of position %llu is not finite", path, (unsigned long long)(i / D));
    b->ctx = (int)ctx;
    b->n_ids = n_ids;
    b->ids_crc = lm_get_u32(d + H_IDS_CRC);
    b->head = (lm_linear){.kind = head.dtype == LM_CT_F16 ? LM_LINEAR_F16 : LM_LINEAR_F32, .rows = (int)V, .cols = (int)D};
    if (head.dtype == LM_CT_F16)
        b->head.w16 = head.data;
    else
        b->head.w = head.data;
    b->hidden = h;
    return LM_OK;
}

lm_status lm_saved_base_load(lm_saved_base **out, const char *path) {
    *out = NULL;
    lm_saved_base *b;
    LM_TRY(lm_calloc(&b, 1, sizeof *b, "saved base"));
    lm_status st = lm_map_file(path, &b->map);
    if (st == LM_OK) st = check_file(b, path, b->map.data, b->map.size);
    if (st != LM_OK) {
        lm_saved_base_free(b);
        return st;
    }
    *out = b;
    return LM_OK;
}

void lm_saved_base_free(lm_saved_base *b) {
    if (!b) return;
    lm_unmap_file(&b->map);
    free(b);
}
