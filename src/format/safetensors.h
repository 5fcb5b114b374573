/* safetensors files, single or sharded through model.safetensors.index.json, memory-mapped
 * and seen as one set of named tensors. Every header field, offset and size is validated
 * before use; errors name the file and the tensor (lm_last_error()). */
#ifndef LM_FORMAT_SAFETENSORS_H
#define LM_FORMAT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "lightmamba.h"
#include "common/file.h"

/* Tensor element types. Safetensors and PyTorch files hold the first three; Q8_0 (ggml's blocks
 * of 32 int8 with a float16 scale, 34 bytes) comes from GGUF files. */
typedef enum { LM_DTYPE_F32 = 0, LM_DTYPE_F16, LM_DTYPE_BF16, LM_DTYPE_Q8_0 } lm_dtype;

const char *lm_dtype_name(lm_dtype t);   /* "F32", "F16", "BF16", "Q8_0" */
size_t lm_dtype_size(lm_dtype t);        /* bytes per element (F32, F16, BF16) */

typedef struct {
    char *name;
    lm_dtype dtype;
    int ndim;
    int64_t shape[LM_TENSOR_MAX_DIMS];
    size_t numel;
    const unsigned char *data;   /* inside the file's memory map */
    size_t nbytes;               /* numel * dtype size */
    int file;                    /* index into lm_safetensors.paths */
} lm_st_tensor;

/* One or more memory-mapped safetensors files seen as one set of named tensors. */
typedef struct lm_safetensors {
    int n_files;
    char **paths;
    lm_mapping *maps;
    int n_tensors;
    lm_st_tensor *tensors;
} lm_safetensors;

/* Maps and validates one .safetensors file. On failure *st is left empty. */
lm_status lm_safetensors_open(lm_safetensors *st, const char *path);
/* The same from size bytes in memory, which st borrows (they must outlive it); name is the
 * file name used in errors. */
lm_status lm_safetensors_open_memory(lm_safetensors *st, const void *data, size_t size, const char *name);
/* The shards named by an index already in memory (text: len bytes of model.safetensors.index.json
 * JSON, index_path names it in errors), each a file in dir. */
lm_status lm_safetensors_open_index(lm_safetensors *st, const char *dir, const char *text, size_t len,
                                    const char *index_path);
/* A model directory: DIR/model.safetensors, else the shards listed by
 * DIR/model.safetensors.index.json (weight_map: tensor name -> shard file in DIR). */
lm_status lm_safetensors_open_dir(lm_safetensors *st, const char *dir);
/* NULL when absent. */
const lm_st_tensor *lm_safetensors_find(const lm_safetensors *st, const char *name);
/* Converts a tensor to float32: dst holds numel floats. The record may come from any reader
 * (safetensors, format/torchzip.h, GGUF through src/model). */
void lm_st_tensor_to_f32(float *dst, const lm_st_tensor *t);
/* Unmaps and frees everything (safe on a zeroed struct). */
void lm_safetensors_close(lm_safetensors *st);

#endif
