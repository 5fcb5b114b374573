/* A PyTorch zip checkpoint (torch.save of a state dict): lm_torch_read on arbitrary bytes. A
 * checkpoint that reads has tensors of numel x dtype-size bytes, each inside the input (stored
 * entries) or in an inflated entry it owns, and each converts to float32, which reads all of its
 * bytes (ASan: libFuzzer's copy of the input and the inflated buffers are exactly sized). */
#include "fuzz.h"
#include "format/torchzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_torch_checkpoint ck;
    lm_status s = lm_torch_read(&ck, data, size, "pytorch_model.bin");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(ck.n_tensors == 0 && ck.tensors == NULL && ck.owned == NULL, "checkpoint not left empty on failure");
        return 0;
    }
    for (int i = 0; i < ck.n_tensors; i++) {
        const lm_st_tensor *t = &ck.tensors[i];
        int inside = t->data >= data && t->data < data + size;
        FUZZ_ASSERT(!inside || t->nbytes <= size - (size_t)(t->data - data), "%s runs past the input", t->name);
        FUZZ_ASSERT(inside || ck.n_owned > 0 || t->nbytes == 0, "%s lies outside the input", t->name);
        fuzz_check_tensor(t);
    }
    lm_torch_free(&ck);
    fuzz_accepted++;
    return 0;
}
