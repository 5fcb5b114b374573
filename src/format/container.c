/* The binary container (format/container.h). */
#include "format/container.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/file.h"

enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_FILE_BYTES = 16, H_CRC = 24, H_N = 28, H_TABLE = 32,
    E_NAME = 0, E_DTYPE = 80, E_NDIM = 84, E_SHAPE = 88, E_OFFSET = 120,
};

static const char *const dtype_names[LM_CT_DTYPES] = {"F32", "F16", "Q4", "Q8", "U8", "I8", "I16", "I32"};
static const size_t dtype_sizes[LM_CT_DTYPES] = {4, 2, 0, 1, 1, 1, 2, 4};

const char *lm_ct_dtype_name(lm_ct_dtype t) { return (unsigned)t < LM_CT_DTYPES ? dtype_names[t] : "?"; }
size_t lm_ct_dtype_size(lm_ct_dtype t) { return (unsigned)t < LM_CT_DTYPES ? dtype_sizes[t] : 0; }

uint64_t lm_ct_nbytes(lm_ct_dtype dt, int ndim, const uint64_t *shape) {
    if ((unsigned)dt >= LM_CT_DTYPES || ndim < 1 || ndim > LM_CT_MAX_DIMS || (dt == LM_CT_Q4 && ndim != 2)) return 0;
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t s = shape[d];
        if (dt == LM_CT_Q4 && d == 1) s = (s + 1) / 2;
        if (shape[d] == 0 || shape[d] > (1ull << 40) || n > UINT64_MAX / 4 / s) return 0;
        n *= s;
    }
    return dt == LM_CT_Q4 ? n : n * dtype_sizes[dt];
}

static uint64_t align_up(uint64_t x) { return (x + LM_CT_ALIGN - 1) / LM_CT_ALIGN * LM_CT_ALIGN; }

lm_status lm_ct_array_set(lm_ct_array *a, const char *name, lm_ct_dtype dtype, int ndim, const uint64_t *shape,
                          const void *data) {
    memset(a, 0, sizeof *a);
    if (strlen(name) >= LM_CT_NAME_BYTES) return lm_fail(LM_ERR_ARG, "array name %s is too long", name);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->dtype = dtype;
    a->ndim = ndim;
    for (int d = 0; d < ndim && d < LM_CT_MAX_DIMS; d++) a->shape[d] = shape[d];
    a->nbytes = lm_ct_nbytes(dtype, ndim, shape);
    a->data = data;
    if (!a->nbytes) return lm_fail(LM_ERR_ARG, "array %s has a bad shape", name);
    return LM_OK;
}

void lm_ct_layout(lm_ct_writer *w) {
    w->blob_offset = align_up(LM_CT_HEADER_BYTES + (uint64_t)w->n * LM_CT_ENTRY_BYTES);
    uint64_t pos = w->blob_offset + w->blob_bytes;
    for (int i = 0; i < w->n; i++) {
        w->arrays[i].offset = align_up(pos);
        pos = w->arrays[i].offset + w->arrays[i].nbytes;
    }
    w->file_bytes = pos;
}

/* Bytes go to the CRC and, when af is set, to the file, when mem is set, to memory. */
typedef struct {
    lm_atomic_file *af;
    unsigned char *mem;
    uint32_t crc;
    uint64_t at;
    lm_status status;
} sink;

static void put(sink *k, const void *p, uint64_t n) {
    if (k->status || !n) return;
    k->crc = lm_crc32c(k->crc, p, (size_t)n);
    if (k->mem) memcpy(k->mem + k->at, p, (size_t)n);
    k->at += n;
    if (k->af) k->status = lm_atomic_write(k->af, p, (size_t)n);
}

static void pad_to(sink *k, uint64_t to) {
    static const unsigned char zeros[LM_CT_ALIGN];
    while (k->at < to && !k->status) put(k, zeros, to - k->at < LM_CT_ALIGN ? to - k->at : LM_CT_ALIGN);
}

static void put_file(sink *k, const lm_ct_writer *w, const unsigned char *table) {
    put(k, w->header, LM_CT_HEADER_BYTES);
    put(k, table, (uint64_t)w->n * LM_CT_ENTRY_BYTES);
    pad_to(k, w->blob_offset);
    put(k, w->blob, w->blob_bytes);
    for (int i = 0; i < w->n; i++) {
        pad_to(k, w->arrays[i].offset);
        if (!w->arrays[i].data) return; /* the streamed last array: its bytes come later */
        put(k, w->arrays[i].data, w->arrays[i].nbytes);
    }
}

/* The table of w (*table, malloc'd) and the header's common fields, the CRC still zero. */
static lm_status finish_header(lm_ct_writer *w, const char magic[8], uint32_t version, unsigned char **table_out) {
    unsigned char *table = NULL;
    LM_TRY(lm_calloc(&table, w->n ? (size_t)w->n * LM_CT_ENTRY_BYTES : 1, 1, "array table"));
    for (int i = 0; i < w->n; i++) {
        const lm_ct_array *a = &w->arrays[i];
        unsigned char *e = table + (size_t)i * LM_CT_ENTRY_BYTES;
        memcpy(e + E_NAME, a->name, LM_CT_NAME_BYTES);
        lm_put_u32(e + E_DTYPE, (uint32_t)a->dtype);
        lm_put_u32(e + E_NDIM, (uint32_t)a->ndim);
        for (int d = 0; d < LM_CT_MAX_DIMS; d++) lm_put_u64(e + E_SHAPE + 8 * d, d < a->ndim ? a->shape[d] : 0);
        lm_put_u64(e + E_OFFSET, a->offset);
    }
    memcpy(w->header + H_MAGIC, magic, 8);
    lm_put_u32(w->header + H_VERSION, version);
    lm_put_u32(w->header + H_HEADER_BYTES, LM_CT_HEADER_BYTES);
    lm_put_u64(w->header + H_FILE_BYTES, w->file_bytes);
    lm_put_u32(w->header + H_CRC, 0);
    lm_put_u32(w->header + H_N, (uint32_t)w->n);
    lm_put_u64(w->header + H_TABLE, LM_CT_HEADER_BYTES);
    *table_out = table;
    return LM_OK;
}

lm_status lm_ct_write(lm_ct_writer *w, const char magic[8], uint32_t version, const char *path) {
    for (int i = 0; i < w->n; i++)
        if (!w->arrays[i].data) return lm_fail(LM_ERR_ARG, "array %s has no data", w->arrays[i].name);
    unsigned char *table;
    LM_TRY(finish_header(w, magic, version, &table));
    sink crc = {0};
    put_file(&crc, w, table);
    lm_put_u32(w->header + H_CRC, crc.crc);
    lm_atomic_file af = {0};
    lm_status s = lm_atomic_open(&af, path);
    if (s == LM_OK) {
        sink out = {.af = &af};
        put_file(&out, w, table);
        s = out.status ? out.status : lm_atomic_commit(&af);
        if (s) lm_atomic_abort(&af);
    }
    free(table);
    return s;
}

lm_status lm_ct_write_mem(lm_ct_writer *w, const char magic[8], uint32_t version, void *buf, size_t size) {
    if (size < w->file_bytes)
        return lm_fail(LM_ERR_ARG, "a buffer of %zu bytes for %" PRIu64 " bytes of a container", size, w->file_bytes);
    unsigned char *table;
    LM_TRY(finish_header(w, magic, version, &table));
    sink out = {.mem = buf}; /* one pass: the CRC field goes out as zero, then takes the CRC */
    put_file(&out, w, table);
    lm_put_u32((unsigned char *)buf + H_CRC, out.crc);
    free(table);
    return LM_OK;
}

lm_status lm_ct_write_begin(lm_ct_writer *w, const char magic[8], uint32_t version, const char *path, lm_ct_stream *st) {
    memset(st, 0, sizeof *st);
    for (int i = 0; i < w->n; i++)
        if (!w->arrays[i].data != (i == w->n - 1))
            return lm_fail(LM_ERR_ARG, "streamed container: only the last array may (and must) come later (%s)",
                           w->arrays[i].name);
    unsigned char *table;
    LM_TRY(finish_header(w, magic, version, &table));
    lm_status s = lm_atomic_open(&st->af, path);
    if (s == LM_OK) {
        sink out = {.af = &st->af};
        put_file(&out, w, table);
        st->crc = out.crc, s = out.status, st->left = w->arrays[w->n - 1].nbytes;
        if (s) lm_atomic_abort(&st->af);
    }
    free(table);
    return s;
}

lm_status lm_ct_stream_put(lm_ct_stream *st, const void *p, uint64_t n) {
    if (n > st->left) return lm_fail(LM_ERR_ARG, "streamed container: %" PRIu64 " bytes more than the array holds", n - st->left);
    st->left -= n;
    st->crc = lm_crc32c(st->crc, p, (size_t)n);
    return lm_atomic_write(&st->af, p, (size_t)n);
}

lm_status lm_ct_stream_commit(lm_ct_stream *st) {
    lm_status s = LM_OK;
    unsigned char crc[4];
    lm_put_u32(crc, st->crc);
    if (st->left) s = lm_fail(LM_ERR_ARG, "streamed container: %" PRIu64 " bytes of the last array missing", st->left);
    else if (fseek(st->af.f, H_CRC, SEEK_SET) != 0 || fwrite(crc, 1, 4, st->af.f) != 4)
        s = lm_fail(LM_ERR_IO, "%s: cannot write the checksum", st->af.final_path);
    if (s == LM_OK) return lm_atomic_commit(&st->af);
    lm_atomic_abort(&st->af);
    return s;
}

void lm_ct_stream_abort(lm_ct_stream *st) { lm_atomic_abort(&st->af); }

lm_status lm_ct_open(lm_ct_reader *r, const void *data, uint64_t size, const char magic[8], uint32_t min_version,
                     uint32_t version, const char *kind, const char *what) {
    static const unsigned char empty[1];
    const unsigned char *d = data ? data : empty;
    *r = (lm_ct_reader){.data = d, .size = size, .what = what};
    if (size < 8 || memcmp(d + H_MAGIC, magic, 8) != 0)
        return lm_fail(LM_ERR_FORMAT, "%s: not a lightmamba %s (no %s magic)", what, kind, magic);
    if (size < LM_CT_HEADER_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: truncated: %" PRIu64 " bytes, less than its %d-byte header", what, size,
                       LM_CT_HEADER_BYTES);
    const uint32_t v = lm_get_u32(d + H_VERSION);
    if (v < min_version || v > version) {
        if (min_version == version)
            return lm_fail(LM_ERR_UNSUPPORTED, "%s: format version %" PRIu32 " (this build reads version %" PRIu32 ")",
                           what, v, version);
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: format version %" PRIu32 " (this build reads versions %" PRIu32
                       " to %" PRIu32 ")", what, v, min_version, version);
    }
    r->version = v;
    if (lm_get_u32(d + H_HEADER_BYTES) != LM_CT_HEADER_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: header size %" PRIu32 ", expected %d", what, lm_get_u32(d + H_HEADER_BYTES),
                       LM_CT_HEADER_BYTES);
    const uint64_t recorded = lm_get_u64(d + H_FILE_BYTES);
    if (recorded != size)
        return lm_fail(LM_ERR_FORMAT, "%s: %s: the header says %" PRIu64 " bytes, the file has %" PRIu64, what,
                       size < recorded ? "truncated" : "trailing data", recorded, size);
    const uint32_t stored = lm_get_u32(d + H_CRC), zero = 0;
    uint32_t crc = lm_crc32c(0, d, H_CRC);
    crc = lm_crc32c(crc, &zero, 4);
    crc = lm_crc32c(crc, d + H_CRC + 4, (size_t)(size - H_CRC - 4));
    if (crc != stored)
        return lm_fail(LM_ERR_FORMAT, "%s: checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 "): the file is corrupted",
                       what, stored, crc);
    r->n = lm_get_u32(d + H_N);
    if (lm_get_u64(d + H_TABLE) != LM_CT_HEADER_BYTES || r->n > (size - LM_CT_HEADER_BYTES) / LM_CT_ENTRY_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: array table (%" PRIu32 " entries at %" PRIu64 ") lies outside the file", what,
                       r->n, lm_get_u64(d + H_TABLE));
    return LM_OK;
}

lm_status lm_ct_entry(const lm_ct_reader *r, uint32_t i, lm_ct_array *a) {
    const unsigned char *e = r->data + LM_CT_HEADER_BYTES + (size_t)i * LM_CT_ENTRY_BYTES;
    memset(a, 0, sizeof *a);
    if (!memchr(e + E_NAME, 0, LM_CT_NAME_BYTES))
        return lm_fail(LM_ERR_FORMAT, "%s: table entry %" PRIu32 " has an unterminated name", r->what, i);
    memcpy(a->name, e + E_NAME, LM_CT_NAME_BYTES);
    const uint32_t dt = lm_get_u32(e + E_DTYPE), nd = lm_get_u32(e + E_NDIM);
    if (dt >= LM_CT_DTYPES) return lm_fail(LM_ERR_FORMAT, "%s: array %s has unknown dtype %" PRIu32, r->what, a->name, dt);
    if (nd < 1 || nd > LM_CT_MAX_DIMS)
        return lm_fail(LM_ERR_FORMAT, "%s: array %s has %" PRIu32 " dimensions", r->what, a->name, nd);
    a->dtype = (lm_ct_dtype)dt;
    a->ndim = (int)nd;
    for (int k = 0; k < LM_CT_MAX_DIMS; k++) a->shape[k] = lm_get_u64(e + E_SHAPE + 8 * k);
    a->offset = lm_get_u64(e + E_OFFSET);
    a->nbytes = lm_ct_nbytes(a->dtype, a->ndim, a->shape);
    if (!a->nbytes) return lm_fail(LM_ERR_FORMAT, "%s: array %s has an invalid shape", r->what, a->name);
    const uint64_t table_end = LM_CT_HEADER_BYTES + (uint64_t)r->n * LM_CT_ENTRY_BYTES;
    if (a->offset % LM_CT_ALIGN || a->offset < table_end || a->offset > r->size || a->nbytes > r->size - a->offset)
        return lm_fail(LM_ERR_FORMAT, "%s: array %s (%" PRIu64 " bytes at %" PRIu64 ") is misaligned or outside the file",
                       r->what, a->name, a->nbytes, a->offset);
    a->data = r->data + a->offset;
    return LM_OK;
}
