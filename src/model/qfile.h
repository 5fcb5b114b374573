/* The quantized model file (docs/quantized-format.md): one self-contained, memory-mappable
 * file holding the configuration, the quantization settings, the tokenizer.json bytes and
 * every tensor, 64-byte aligned, with a CRC-32C over the whole file checked at load. */
#ifndef LM_MODEL_QFILE_H
#define LM_MODEL_QFILE_H
#include <stddef.h>
#include "model/model.h"

#define LM_QFILE_MAGIC "LMQMODEL"
/* Version 1: our datapath with the hardware's activation format (settings fields 9-11 reserved,
 * zero). Version 2: anything else (docs/quantized-format.md): the release datapath's flags and
 * RMSNorm tables (docs/release-datapath.md), a research activation format; an older build refuses
 * it by its version instead of misreading it. Files that fit version 1 are written as version 1. */
#define LM_QFILE_VERSION 2
#define LM_QFILE_VERSION_OURS 1

/* Writes m (float and integer linear layers as they are in m, m->quant as the settings) with the
 * tokenizer.json bytes, atomically: a failure leaves no file at path. */
lm_status lm_qfile_write(const char *path, const lm_model *m, const char *tokenizer_json, size_t tokenizer_len);

/* Fills a zeroed model from a quantized file (lm_model_init calls this for regular files). Every
 * header field, table entry, offset and size is validated and the checksum verified before use. */
lm_status lm_qfile_load(lm_model *m, const char *path);
/* The same from size bytes in memory, which the model borrows (they must outlive it); path names
 * them in errors. */
lm_status lm_qfile_load_memory(lm_model *m, const void *data, size_t size, const char *path);

#endif
