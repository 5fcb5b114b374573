/* GGUF, llama.cpp's model file (versions 2 and 3, little-endian), read and written.
 *
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x (string key, u32 value type, value)            string = u64 length + bytes
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
 *   padding to general.alignment (32 when absent), then the data section; every tensor's
 *   offset is relative to it and a multiple of the alignment.
 * ne[0] is the contiguous dimension (ggml's order, the reverse of PyTorch's shape). The reader
 * validates every length, count and offset against the buffer before anything is used; the
 * metadata and tensor data are used in place. */
#ifndef LM_FORMAT_GGUF_H
#define LM_FORMAT_GGUF_H
#include <stddef.h>
#include <stdint.h>

#include "common/file.h"
#include "lightmamba.h"

typedef enum {
    LM_GGUF_UINT8 = 0, LM_GGUF_INT8, LM_GGUF_UINT16, LM_GGUF_INT16, LM_GGUF_UINT32, LM_GGUF_INT32,
    LM_GGUF_FLOAT32, LM_GGUF_BOOL, LM_GGUF_STRING, LM_GGUF_ARRAY, LM_GGUF_UINT64, LM_GGUF_INT64, LM_GGUF_FLOAT64,
    LM_GGUF_N_TYPES
} lm_gguf_type;

/* ggml tensor types this project converts (the others are named by lm_ggml_type_name). */
enum { LM_GGML_F32 = 0, LM_GGML_F16 = 1, LM_GGML_Q8_0 = 8, LM_GGML_BF16 = 30 };
#define LM_GGML_MAX_DIMS 4
#define LM_GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *key;            /* inside the buffer, key_len bytes (not NUL-terminated) */
    size_t key_len;
    lm_gguf_type type;
    lm_gguf_type elem_type;     /* arrays */
    uint64_t n;                 /* arrays: elements; strings: bytes */
    const unsigned char *value; /* scalars: the value; strings: the bytes; arrays: the first element */
} lm_gguf_kv;

typedef struct {
    char *name;
    uint32_t type;              /* ggml type */
    int n_dims;
    int64_t ne[LM_GGML_MAX_DIMS];
    uint64_t numel;
    uint64_t offset;            /* in the data section */
    const unsigned char *data;
    size_t nbytes;
} lm_gguf_tensor;

typedef struct {
    uint32_t version;
    uint32_t alignment;
    size_t n_kv;
    lm_gguf_kv *kv;
    size_t n_tensors;
    lm_gguf_tensor *tensors;
} lm_gguf;

/* Parses len bytes (a whole file). `what` names it in errors. On failure *g is left empty.
 * Tensor types must be ggml types with a known size (any of them: loaders refuse what they
 * cannot convert, by name). */
lm_status lm_gguf_parse(lm_gguf *g, const unsigned char *data, size_t len, const char *what);
void lm_gguf_free(lm_gguf *g);

/* "F32", "Q4_K", ...; NULL for an id that is no ggml type. */
const char *lm_ggml_type_name(uint32_t type);

/* NULL when absent. */
const lm_gguf_kv *lm_gguf_find(const lm_gguf *g, const char *key);
const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name);
/* Typed reads: LM_ERR_FORMAT naming the key when it is absent (unless a default is given by the
 * caller checking lm_gguf_find first) or of another type. Any integer type fits an int64 read;
 * FLOAT32/FLOAT64 a double read. */
lm_status lm_gguf_get_int(const lm_gguf *g, const char *key, int64_t *out, const char *what);
lm_status lm_gguf_get_float(const lm_gguf *g, const char *key, double *out, const char *what);
/* A string as a pointer into the buffer and a length (not NUL-terminated). */
lm_status lm_gguf_get_string(const lm_gguf *g, const char *key, const char **s, size_t *len, const char *what);
/* Element i of an array of strings, walking from *cursor (start at NULL with i = 0, then 1, ...),
 * so reading all n elements is linear. */
void lm_gguf_array_string(const lm_gguf_kv *kv, const unsigned char **cursor, const char **s, size_t *len);
/* Element i of an array of integers (any integer type). */
int64_t lm_gguf_array_int(const lm_gguf_kv *kv, uint64_t i);

/* Converts n elements (n a multiple of the type's block) of F32, F16, BF16 or Q8_0 data to float32. */
void lm_ggml_to_f32(float *dst, uint32_t type, const unsigned char *src, size_t n);
/* Bytes of n elements of a type (n a multiple of its block size). */
size_t lm_ggml_nbytes(uint32_t type, uint64_t n);
/* Encodes n float32 as F32, F16 or Q8_0 (ggml's reference rounding: Q8_0 scale max|x|/127 per 32). */
void lm_ggml_from_f32(unsigned char *dst, uint32_t type, const float *src, size_t n);

/* ---- writer: metadata into memory, then the header, then each tensor's data in order ---- */
typedef struct {
    unsigned char *kv;          /* the encoded key/value pairs */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    unsigned char *info;        /* the encoded tensor infos */
    size_t info_len, info_cap;
    uint64_t n_tensors;
    uint64_t data_size;         /* bytes of the data section declared so far */
    uint64_t *tensor_bytes;     /* [n_tensors] */
    uint64_t written;           /* tensors whose data has been written */
    lm_status error;            /* the first failure of an add call (reported by lm_gguf_write_header) */
} lm_gguf_writer;

void lm_gguf_add_u32(lm_gguf_writer *w, const char *key, uint32_t v);
void lm_gguf_add_f32(lm_gguf_writer *w, const char *key, float v);
void lm_gguf_add_bool(lm_gguf_writer *w, const char *key, int v);
void lm_gguf_add_string(lm_gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of n strings given by a callback; of n int32. */
typedef void (*lm_gguf_string_fn)(void *ctx, uint64_t i, const char **s, size_t *len);
void lm_gguf_add_string_array(lm_gguf_writer *w, const char *key, uint64_t n, lm_gguf_string_fn fn, void *ctx);
void lm_gguf_add_i32_array(lm_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Declares the next tensor (ne in ggml order). */
void lm_gguf_add_tensor(lm_gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne);
/* Writes the header (version 3, alignment 32) and the infos: then each tensor's data, in order. */
lm_status lm_gguf_write_header(lm_gguf_writer *w, lm_atomic_file *af);
lm_status lm_gguf_write_tensor(lm_gguf_writer *w, lm_atomic_file *af, const void *data, size_t nbytes);
void lm_gguf_writer_free(lm_gguf_writer *w);

#endif
