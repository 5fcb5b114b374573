/* The quantized model file (docs/quantized-format.md): one self-contained, memory-mappable
 * file holding the configuration, the quantization settings, the tokenizer.json bytes and
 * every tensor, 64-byte aligned, with a CRC-32C over the whole file checked at load. */
#ifndef LM_MODEL_QFILE_H
#define LM_MODEL_QFILE_H
#include <stddef.h>
#include "model/model.h"

#define LM_QFILE_MAGIC "LMQMODEL"
#define LM_QFILE_VERSION 2 /* 2: the activation format (act_group, act_scale); 1 is read too */

/* Writes m (float and integer linear layers as they are in m, m->quant as the settings) with the
 * tokenizer.json bytes, atomically: a failure leaves no file at path. */
lm_status lm_qfile_write(const char *path, const lm_model *m, const char *tokenizer_json, size_t tokenizer_len);

/* Fills a zeroed model from a quantized file (lm_model_init calls this for regular files). Every
 * header field, table entry, offset and size is validated and the checksum verified before use. */
lm_status lm_qfile_load(lm_model *m, const char *path);

#endif
