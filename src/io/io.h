/* Checkpoint input: config.json (both the Hugging Face and the original state-spaces
 * keys) and safetensors files, single or sharded through model.safetensors.index.json.
 * Everything read from a file is validated before use; errors name the file and the
 * key or tensor (lm_last_error()). */
#ifndef LM_IO_IO_H
#define LM_IO_IO_H
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "lightmamba.h"
#include "common/file.h"

/* Parses a whole JSON document of len bytes (rejects malformed, truncated and trailing
 * input). `what` names the source in errors. The caller json_object_put()s *out. */
lm_status lm_json_parse(json_object **out, const char *text, size_t len, const char *what);

/* Fills cfg from config.json text (see lm_config_load in lightmamba.h). */
lm_status lm_config_parse(lm_config *cfg, const char *text, size_t len, const char *path);

/* A published Mamba2 configuration by name (mamba2-130m, -370m, -780m, -1.3b, -2.7b), else a
 * config.json file or a model directory holding one. An unknown name -> LM_ERR_ARG. */
lm_status lm_config_named(lm_config *cfg, const char *name_or_path);

/* The config as LM_CONFIG_FIELDS little-endian 32-bit fields, in the order the binary formats
 * store it (quantized model file, state file): the 9 integer dims, eps, time_step_limit min and
 * max (float bits), tie_embeddings, conv_bias, proj_bias. */
enum { LM_CONFIG_FIELDS = 15 };
void lm_config_fields(const lm_config *c, uint32_t f[LM_CONFIG_FIELDS]);

/* ---- safetensors ---- */
typedef enum { LM_DTYPE_F32 = 0, LM_DTYPE_F16, LM_DTYPE_BF16 } lm_dtype;

const char *lm_dtype_name(lm_dtype t);   /* "F32", "F16", "BF16" */
size_t lm_dtype_size(lm_dtype t);        /* bytes per element */

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
/* A model directory: DIR/model.safetensors, else the shards listed by
 * DIR/model.safetensors.index.json (weight_map: tensor name -> shard file in DIR). */
lm_status lm_safetensors_open_dir(lm_safetensors *st, const char *dir);
/* NULL when absent. */
const lm_st_tensor *lm_safetensors_find(const lm_safetensors *st, const char *name);
/* Converts a tensor to float32: dst holds numel floats. */
void lm_st_tensor_to_f32(float *dst, const lm_st_tensor *t);
/* Unmaps and frees everything (safe on a zeroed struct). */
void lm_safetensors_close(lm_safetensors *st);

#endif
