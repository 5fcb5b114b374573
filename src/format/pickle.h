/* The pickle of a PyTorch state dict (data.pkl inside a torch.save zip archive), read without
 * executing anything. Only what torch.save(state_dict) writes is accepted: protocol 2, the
 * opcodes it uses, and the globals collections.OrderedDict, torch._utils._rebuild_tensor_v2
 * and torch.{Float,Half,BFloat16}Storage; storages are persistent ids
 * ("storage", type, key, location, numel) naming the archive entry data/<key>. Any other
 * opcode or global, or a pickle building anything but a dict of str -> tensor, fails with a
 * one-line error naming it. Memory is bounded by the pickle's size. */
#ifndef LM_FORMAT_PICKLE_H
#define LM_FORMAT_PICKLE_H
#include <stddef.h>
#include <stdint.h>

#include "format/safetensors.h"

typedef struct {
    char *name;              /* the state dict key */
    lm_dtype dtype;          /* of the storage */
    char *storage;           /* its key: the archive entry data/<storage> */
    uint64_t storage_numel;  /* elements the storage holds (as the pickle says) */
    uint64_t offset;         /* first element of the tensor in its storage */
    int ndim;
    int64_t shape[LM_TENSOR_MAX_DIMS];
    uint64_t numel;
} lm_pickle_tensor;

typedef struct {
    int n;
    lm_pickle_tensor *tensors; /* in the pickle's order */
} lm_state_dict;

/* Parses len bytes of pickle. Non-contiguous tensors (strides other than row-major) are refused.
 * `what` names the source in errors. On failure *sd is left empty. */
lm_status lm_pickle_read_state_dict(lm_state_dict *sd, const unsigned char *data, size_t len, const char *what);
void lm_state_dict_free(lm_state_dict *sd);

#endif
