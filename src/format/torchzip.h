/* PyTorch checkpoints in torch.save's zip format (pytorch_model.bin, *.pt since torch 1.6):
 *   ARCHIVE/data.pkl    the pickled state dict (format/pickle.h)
 *   ARCHIVE/data/KEY    each storage's raw little-endian elements
 *   ARCHIVE/version, ARCHIVE/byteorder, ...
 * torch stores every entry uncompressed (and 64-byte aligned), so tensors are used in place
 * from the buffer; a deflated entry is inflated into memory the checkpoint owns. The zip
 * structure is read with minizip (zlib's contrib/minizip), which also reports where an
 * entry's data starts. Tensors may share a storage and start at an offset in it. */
#ifndef LM_FORMAT_TORCHZIP_H
#define LM_FORMAT_TORCHZIP_H
#include <stddef.h>

#include "format/safetensors.h"

typedef struct {
    int n_tensors;
    lm_st_tensor *tensors;  /* in the pickle's order; data inside the buffer or in `owned` */
    int n_owned;
    void **owned;           /* inflated entries */
} lm_torch_checkpoint;

/* Reads a whole archive held in memory (a file's map). `what` names it in errors. The buffer
 * must outlive ck. On failure *ck is left empty. */
lm_status lm_torch_read(lm_torch_checkpoint *ck, const unsigned char *data, size_t len, const char *what);
void lm_torch_free(lm_torch_checkpoint *ck);

#endif
