/* The bundled tiny model against its transformers reference outputs (model_reference.h). */
#include "model_reference.h"

int main(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/mamba2-tiny", test_root());
    check_model_reference(dir);
    return test_finish();
}
