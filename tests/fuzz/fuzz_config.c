/* config.json (Hugging Face and state-spaces keys): lm_config_parse on arbitrary bytes. A config
 * that parses satisfies what the model code relies on. */
#include <math.h>

#include "fuzz.h"
#include "format/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_config c;
    lm_status s = lm_config_parse(&c, (const char *)data, size, "config.json");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    FUZZ_ASSERT(c.d_model > 0 && c.n_layer > 0 && c.d_state > 0 && c.n_heads > 0 && c.head_dim > 0 &&
                    c.n_groups > 0 && c.d_conv > 0 && c.vocab_size > 0,
                "a dimension is not positive");
    FUZZ_ASSERT((int64_t)c.n_heads * c.head_dim == c.d_inner, "d_inner %d != %d * %d", c.d_inner, c.n_heads, c.head_dim);
    FUZZ_ASSERT(c.n_heads % c.n_groups == 0, "heads %d, groups %d", c.n_heads, c.n_groups);
    FUZZ_ASSERT(isfinite(c.eps) && c.eps > 0, "eps %g", c.eps);
    FUZZ_ASSERT(c.dt_limit_min >= 0 && c.dt_limit_max > c.dt_limit_min, "dt limits [%g, %g]", c.dt_limit_min,
                c.dt_limit_max);
    FUZZ_ASSERT((c.tie_embeddings | c.conv_bias | c.proj_bias) <= 1, "a flag is not 0 or 1");
    fuzz_accepted++;
    return 0;
}
