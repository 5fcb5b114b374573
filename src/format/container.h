/* The binary container of lightmamba's own files (the quantized model file, the session state
 * file): a 256-byte header, a table of named arrays, 64-byte aligned data, a CRC-32C over the whole
 * file, written atomically. Each file format adds its own header fields at [40, 256) and decides
 * which arrays it holds; the container knows nothing of models. Written to a file or to memory;
 * read from memory (a mapped file or a caller's buffer).
 *
 *   [0, 256)          header: magic (8 bytes), version u32, header size u32, file size u64,
 *                     CRC-32C u32, number of arrays u32, table offset u64, the format's fields
 *   [256, 256 + 128n) table: per array name[80] (NUL-terminated), dtype u32, ndim u32,
 *                     shape 4 x u64 (unused dims 0), offset u64
 *   (64-aligned)      an optional blob (the format records where), then each array in table order
 * Integers little-endian. The CRC covers every byte of the file with its own 4 bytes read as zero. */
#ifndef LM_FORMAT_CONTAINER_H
#define LM_FORMAT_CONTAINER_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "lightmamba.h"
#include "common/file.h"

enum {
    LM_CT_HEADER_BYTES = 256, LM_CT_ENTRY_BYTES = 128, LM_CT_NAME_BYTES = 80, LM_CT_MAX_DIMS = 4, LM_CT_ALIGN = 64,
    LM_CT_FIELDS = 40   /* the format's own header fields start here */
};

/* Element types, one numbering for every container file. Q4 is [rows, cols] two per byte along
 * each row, every row padded to a whole byte. */
typedef enum { LM_CT_F32 = 0, LM_CT_F16, LM_CT_Q4, LM_CT_Q8, LM_CT_U8, LM_CT_I8, LM_CT_I16, LM_CT_I32, LM_CT_DTYPES } lm_ct_dtype;
const char *lm_ct_dtype_name(lm_ct_dtype t);
size_t lm_ct_dtype_size(lm_ct_dtype t);   /* bytes per element (Q4: 0, see above) */
/* Bytes of an array, or 0 when the shape is invalid (no dims, more than 4, a zero or huge size, Q4 not 2-D). */
uint64_t lm_ct_nbytes(lm_ct_dtype t, int ndim, const uint64_t *shape);

typedef struct {
    char name[LM_CT_NAME_BYTES];
    lm_ct_dtype dtype;
    int ndim;
    uint64_t shape[LM_CT_MAX_DIMS];
    uint64_t offset, nbytes;
    const void *data;    /* writer: the bytes to store; reader: where they lie in the mapped file */
} lm_ct_array;

static inline void lm_put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void lm_put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t lm_get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t lm_get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline float lm_get_f32(const unsigned char *p) { float v; memcpy(&v, p, 4); return v; }

/* ---- writing ----
 * Fill `arrays` (lm_ct_array_set), optionally the blob, call lm_ct_layout (offsets, sizes), write
 * the format's fields into header[LM_CT_FIELDS, 256) (blob_offset is known then), lm_ct_write. */
typedef struct {
    lm_ct_array *arrays;
    int n;
    const void *blob;
    uint64_t blob_bytes;
    uint64_t blob_offset, file_bytes;              /* set by lm_ct_layout */
    unsigned char header[LM_CT_HEADER_BYTES];
} lm_ct_writer;

/* One array: name (shorter than 80 bytes), dtype, shape, data (NULL: streamed, see below). LM_ERR_ARG
 * for a bad name or shape. */
lm_status lm_ct_array_set(lm_ct_array *a, const char *name, lm_ct_dtype dtype, int ndim, const uint64_t *shape,
                          const void *data);
void lm_ct_layout(lm_ct_writer *w);
/* Writes header (the common fields filled in here), table, blob and arrays to path atomically: a
 * failure leaves no file. */
lm_status lm_ct_write(lm_ct_writer *w, const char magic[8], uint32_t version, const char *path);
/* The same bytes into buf [size]; size < file_bytes -> LM_ERR_ARG. */
lm_status lm_ct_write_mem(lm_ct_writer *w, const char magic[8], uint32_t version, void *buf, size_t size);

/* Streaming the last array (too large to hold, e.g. a value per token of a text): give it NULL
 * data, then lm_ct_write_begin writes everything before its bytes into a temporary file, the
 * caller appends exactly its nbytes with lm_ct_stream_put, and lm_ct_stream_commit patches the CRC
 * in and renames the file into place (lm_ct_stream_abort, or any failure: no file is left). */
typedef struct {
    lm_atomic_file af;
    uint32_t crc;        /* of the bytes so far, the CRC field read as zero */
    uint64_t left;       /* bytes of the last array still to come */
} lm_ct_stream;
lm_status lm_ct_write_begin(lm_ct_writer *w, const char magic[8], uint32_t version, const char *path, lm_ct_stream *st);
lm_status lm_ct_stream_put(lm_ct_stream *st, const void *p, uint64_t n);
lm_status lm_ct_stream_commit(lm_ct_stream *st);
void lm_ct_stream_abort(lm_ct_stream *st);

/* ---- reading ----
 * lm_ct_open checks, in this order (each kind of damage its own message, naming `what`): magic,
 * size against the header, version, header size, the recorded file size, the CRC, the table's
 * place. `kind` names the format in the message for a missing magic ("state file"). */
typedef struct {
    const unsigned char *data;
    uint64_t size;
    uint32_t n;          /* arrays in the table */
    uint32_t version;    /* the file's, in [min_version, version] of lm_ct_open */
    const char *what;
} lm_ct_reader;

lm_status lm_ct_open(lm_ct_reader *r, const void *data, uint64_t size, const char magic[8], uint32_t min_version,
                     uint32_t version, const char *kind, const char *what);
/* Table entry i, validated: NUL-terminated name, known dtype, valid shape, 64-aligned offset past
 * the table with all its bytes inside the file. */
lm_status lm_ct_entry(const lm_ct_reader *r, uint32_t i, lm_ct_array *a);

#endif
