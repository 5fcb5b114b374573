/* ../shared/models/mamba2-small against its transformers reference outputs (model_reference.h). */
#include "model_reference.h"

int main(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/mamba2-small", test_shared_dir("the mamba2-small reference test"));
    check_model_reference(dir);
    return test_finish();
}
