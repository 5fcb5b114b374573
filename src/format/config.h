/* config.json (both the Hugging Face and the original state-spaces keys) and the JSON
 * parsing every loader shares. Everything read is validated before use; errors name the
 * file and the key (lm_last_error()). */
#ifndef LM_FORMAT_CONFIG_H
#define LM_FORMAT_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "lightmamba.h"

/* Parses a whole JSON document of len bytes (rejects malformed, truncated and trailing
 * input). `what` names the source in errors. The caller json_object_put()s *out. */
lm_status lm_json_parse(json_object **out, const char *text, size_t len, const char *what);

/* Upper bound on any one dimension: keeps every product of dimensions in int64 and every
 * derived width (2*d_inner + 2*G*N + H) well inside int. */
#define LM_CONFIG_MAX_DIM (1 << 20)

/* The consistency checks every configuration passes, whatever file it came from:
 * n_heads * head_dim == d_inner, n_groups divides n_heads, n_groups * d_state in range. */
lm_status lm_config_check(const lm_config *c, const char *path);

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

#endif
