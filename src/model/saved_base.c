/* The saved base model (model/saved_base.h), a file of docs/evaluation.md:
 *   [0, 64)        header: magic, version, sizes, CRC-32C, head dtype, vocabulary, d_model, ctx,
 *                  the text's token count and ids CRC
 *   (64-aligned)   head [vocab_size, d_model], F32 or F16 (IEEE half bits), as the base used it
 *   (64-aligned)   hidden [n_ids, d_model] float32: lm_head's input at every position
 * All integers and floats little-endian (the host's order: x86-64). The CRC covers every byte of
 * the file, its own field read as zero; the writer streams the rows and patches the CRC in last. */
#include "model/saved_base.h"
#include "common/crc32c.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BASE_MAGIC "LMBASE\0" /* 7 characters + NUL: 8 bytes */
#define BASE_VERSION 1

enum {
    HEADER_BYTES = 64,
    ALIGN = 64,
    DT_F32 = 0, DT_F16 = 1, /* numbered as in the quantized model file */
    /* header field offsets */
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_FILE_BYTES = 16, H_CRC = 24, H_HEAD_DTYPE = 28,
    H_VOCAB = 32, H_D_MODEL = 36, H_CTX = 40, H_IDS_CRC = 44, H_N_IDS = 48, H_RESERVED = 56,
};

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

uint32_t lm_ids_crc(const int32_t *ids, uint64_t n_ids) { return lm_crc32c(0, ids, (size_t)n_ids * sizeof *ids); }

/* Where the two arrays lie, and the file's end. */
typedef struct {
    uint64_t head, hidden, end;
} base_layout;

static base_layout layout(uint64_t V, uint64_t D, uint32_t head_dtype, uint64_t n_ids) {
    base_layout l;
    l.head = HEADER_BYTES; /* already aligned */
    l.hidden = align_up(l.head + V * D * (head_dtype == DT_F16 ? 2 : 4));
    l.end = l.hidden + n_ids * D * 4;
    return l;
}

static lm_status writer_put(lm_base_writer *w, const void *p, uint64_t n) {
    w->crc = lm_crc32c(w->crc, p, (size_t)n);
    return lm_atomic_write(&w->af, p, (size_t)n);
}

lm_status lm_base_writer_open(lm_base_writer *w, const char *path, const lm_linear *head, int ctx,
                              const int32_t *ids, uint64_t n_ids) {
    memset(w, 0, sizeof *w);
    if ((head->kind != LM_LINEAR_F32 && head->kind != LM_LINEAR_F16) || head->bias)
        return lm_fail(LM_ERR_UNSUPPORTED, "saving a base model: its lm_head is not a plain float32 or float16 matrix");
    const uint32_t dtype = head->kind == LM_LINEAR_F16 ? DT_F16 : DT_F32;
    const uint64_t V = (uint64_t)head->rows, D = (uint64_t)head->cols;
    const base_layout l = layout(V, D, dtype, n_ids);
    unsigned char h[HEADER_BYTES] = {0};
    memcpy(h + H_MAGIC, BASE_MAGIC, 8);
    put_u32(h + H_VERSION, BASE_VERSION);
    put_u32(h + H_HEADER_BYTES, HEADER_BYTES);
    put_u64(h + H_FILE_BYTES, l.end);
    put_u32(h + H_HEAD_DTYPE, dtype);
    put_u32(h + H_VOCAB, (uint32_t)V);
    put_u32(h + H_D_MODEL, (uint32_t)D);
    put_u32(h + H_CTX, (uint32_t)ctx);
    put_u32(h + H_IDS_CRC, lm_ids_crc(ids, n_ids));
    put_u64(h + H_N_IDS, n_ids);
    static const unsigned char zeros[ALIGN];
    const uint64_t head_bytes = l.hidden - l.head;
    LM_TRY(lm_atomic_open(&w->af, path));
    lm_status st = writer_put(w, h, HEADER_BYTES);
    if (st == LM_OK) st = writer_put(w, dtype == DT_F16 ? (const void *)head->w16 : (const void *)head->w,
                                     V * D * (dtype == DT_F16 ? 2 : 4));
    if (st == LM_OK) st = writer_put(w, zeros, head_bytes - V * D * (dtype == DT_F16 ? 2 : 4));
    if (st != LM_OK) {
        lm_atomic_abort(&w->af);
        return st;
    }
    w->rows_left = n_ids;
    w->d_model = (int)D;
    return LM_OK;
}

lm_status lm_base_writer_rows(lm_base_writer *w, const float *hidden, int T) {
    if ((uint64_t)T > w->rows_left) return lm_fail(LM_ERR_ARG, "saving a base model: more positions than the text has");
    w->rows_left -= (uint64_t)T;
    return writer_put(w, hidden, (uint64_t)T * (uint64_t)w->d_model * sizeof(float));
}

lm_status lm_base_writer_commit(lm_base_writer *w) {
    lm_status st = LM_OK;
    if (w->rows_left) st = lm_fail(LM_ERR_ARG, "saving a base model: %llu positions missing", (unsigned long long)w->rows_left);
    unsigned char crc[4];
    put_u32(crc, w->crc);
    if (st == LM_OK && (fseek(w->af.f, H_CRC, SEEK_SET) != 0 || fwrite(crc, 1, 4, w->af.f) != 4))
        st = lm_fail(LM_ERR_IO, "%s: cannot write the checksum", w->af.final_path);
    if (st == LM_OK) return lm_atomic_commit(&w->af);
    lm_atomic_abort(&w->af);
    return st;
}

void lm_base_writer_abort(lm_base_writer *w) { lm_atomic_abort(&w->af); }

/* Every header field, the size and the checksum of the mapped file d[0, size), then the values. */
static lm_status check_file(lm_saved_base *b, const char *path, const unsigned char *d, uint64_t size) {
    if (size < HEADER_BYTES || memcmp(d + H_MAGIC, BASE_MAGIC, 8) != 0)
        return lm_fail(LM_ERR_FORMAT, "%s: not a saved base file (no LMBASE header)", path);
    const uint32_t version = get_u32(d + H_VERSION);
    if (version != BASE_VERSION)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: saved base version %u, this build reads version %d", path, version,
                       BASE_VERSION);
    if (get_u32(d + H_HEADER_BYTES) != HEADER_BYTES || get_u64(d + H_RESERVED) != 0)
        return lm_fail(LM_ERR_FORMAT, "%s: malformed header", path);
    const uint64_t file_bytes = get_u64(d + H_FILE_BYTES);
    if (file_bytes != size)
        return lm_fail(LM_ERR_FORMAT, "%s: the header says %llu bytes, the file has %llu (truncated?)", path,
                       (unsigned long long)file_bytes, (unsigned long long)size);
    const uint32_t dtype = get_u32(d + H_HEAD_DTYPE), V = get_u32(d + H_VOCAB), D = get_u32(d + H_D_MODEL);
    const uint32_t ctx = get_u32(d + H_CTX);
    const uint64_t n_ids = get_u64(d + H_N_IDS);
    if ((dtype != DT_F32 && dtype != DT_F16) || V < 2 || V > (1u << 30) || D < 1 || D > (1u << 20) || ctx < 2 ||
        ctx > (1u << 30) || n_ids < 2 || n_ids > size)
        return lm_fail(LM_ERR_FORMAT, "%s: header fields out of range (head dtype %u, vocabulary %u, d_model %u, "
                       "ctx %u, %llu tokens)", path, dtype, V, D, ctx, (unsigned long long)n_ids);
    const base_layout l = layout(V, D, dtype, n_ids); /* each factor bounded above: no overflow */
    if (l.end != size)
        return lm_fail(LM_ERR_FORMAT, "%s: the header's sizes need %llu bytes, the file has %llu", path,
                       (unsigned long long)l.end, (unsigned long long)size);
    uint32_t zero = 0, crc = lm_crc32c(0, d, H_CRC);
    crc = lm_crc32c(crc, &zero, 4);
    crc = lm_crc32c(crc, d + H_CRC + 4, (size_t)(size - H_CRC - 4));
    if (crc != get_u32(d + H_CRC))
        return lm_fail(LM_ERR_FORMAT, "%s: checksum mismatch (file %08x, computed %08x): the file is corrupt", path,
                       get_u32(d + H_CRC), crc);
    const uint64_t n_head = (uint64_t)V * D;
    for (uint64_t i = 0; i < n_head; i++) {
        int bad = dtype == DT_F16 ? (((const uint16_t *)(d + l.head))[i] & 0x7C00) == 0x7C00 /* Inf, NaN */
                                  : !isfinite(((const float *)(d + l.head))[i]);
        if (bad) return lm_fail(LM_ERR_FORMAT, "%s: lm_head row %llu is not finite", path, (unsigned long long)(i / D));
    }
    const float *hidden = (const float *)(d + l.hidden);
    for (uint64_t i = 0; i < n_ids * D; i++)
        if (!isfinite(hidden[i]))
            return lm_fail(LM_ERR_FORMAT, "%s: hidden state of position %llu is not finite", path,
                           (unsigned long long)(i / D));
    b->ctx = (int)ctx;
    b->n_ids = n_ids;
    b->ids_crc = get_u32(d + H_IDS_CRC);
    b->head = (lm_linear){.kind = dtype == DT_F16 ? LM_LINEAR_F16 : LM_LINEAR_F32, .rows = (int)V, .cols = (int)D};
    if (dtype == DT_F16)
        b->head.w16 = (const uint16_t *)(d + l.head);
    else
        b->head.w = (const float *)(d + l.head);
    b->hidden = hidden;
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
