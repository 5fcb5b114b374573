/* The pickle of a PyTorch state dict (data.pkl of a torch.save archive): lm_pickle_read_state_dict
 * on arbitrary bytes. A state dict that reads has unique names, dtypes of the allowed storages,
 * plain storage keys, and tensors whose shape gives their element count and which fit their
 * storage (what torchzip.c relies on when it points them into the archive). */
#include "fuzz.h"
#include "format/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_state_dict sd;
    lm_status s = lm_pickle_read_state_dict(&sd, data, size, "data.pkl");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(sd.n == 0 && sd.tensors == NULL, "state dict not left empty on failure");
        return 0;
    }
    for (int i = 0; i < sd.n; i++) {
        const lm_pickle_tensor *t = &sd.tensors[i];
        FUZZ_ASSERT(t->dtype == LM_DTYPE_F32 || t->dtype == LM_DTYPE_F16 || t->dtype == LM_DTYPE_BF16, "%s: dtype %d",
                    t->name, (int)t->dtype);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= LM_TENSOR_MAX_DIMS, "%s: %d dimensions", t->name, t->ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_ASSERT(t->shape[d] >= 0, "%s: dimension %d is %lld", t->name, d, (long long)t->shape[d]);
            numel *= (uint64_t)t->shape[d];
        }
        FUZZ_ASSERT(numel == t->numel, "%s: %llu elements for its shape, %llu said", t->name,
                    (unsigned long long)numel, (unsigned long long)t->numel);
        FUZZ_ASSERT(t->offset <= t->storage_numel && t->numel <= t->storage_numel - t->offset,
                    "%s: %llu elements at %llu in a storage of %llu", t->name, (unsigned long long)t->numel,
                    (unsigned long long)t->offset, (unsigned long long)t->storage_numel);
        size_t key = strlen(t->storage);
        FUZZ_ASSERT(key > 0 && key <= 64 && strspn(t->storage, "0123456789_abcdefghijklmnopqrstuvwxyz"
                                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == key,
                    "storage key \"%s\"", t->storage);
        for (int j = 0; j < i; j++) FUZZ_ASSERT(strcmp(t->name, sd.tensors[j].name), "%s appears twice", t->name);
    }
    lm_state_dict_free(&sd);
    fuzz_accepted++;
    return 0;
}
