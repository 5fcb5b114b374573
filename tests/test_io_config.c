/* config.json parsing: both key sets, the three time_step_limit forms, and every kind of
 * bad input (missing or mistyped key, malformed or truncated JSON, inconsistent sizes). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "format/config.h"
#include "synth_checkpoint.h"

static char dir[64];
static char path[128];

/* Writes text to config.json and loads it. */
static lm_status load_text(lm_config *cfg, const char *text) {
    if (synth_write_file(path, text, strlen(text))) exit(1);
    return lm_config_load(cfg, path);
}

/* The error must be one line naming the file and `word` (a key or a problem). */
static void check_fails(const char *text, lm_status want, const char *word) {
    lm_config cfg;
    lm_status s = load_text(&cfg, text);
    const char *e = lm_last_error();
    CHECK(s == want, "status %d (want %d) for: %s  (error: %s)", s, want, text, e);
    CHECK(strstr(e, path) != NULL, "error does not name the file: %s", e);
    CHECK(!word || strstr(e, word) != NULL, "error does not mention '%s': %s", word, e);
    CHECK(!strchr(e, '\n'), "error is not one line: %s", e);
}

/* The Hugging Face key set with one key left out (skip) or given another value (replace). */
static const char *hf_keys[][2] = {
    {"hidden_size", "128"}, {"num_hidden_layers", "4"}, {"vocab_size", "50288"}, {"state_size", "128"},
    {"num_heads", "4"}, {"head_dim", "64"}, {"n_groups", "1"}, {"conv_kernel", "4"}, {"expand", "2"},
    {"layer_norm_epsilon", "1e-05"}, {"tie_word_embeddings", "true"}, {"use_bias", "false"},
    {"use_conv_bias", "true"}, {"rms_norm", "true"}, {"model_type", "\"mamba2\""},
};
#define N_HF_KEYS (int)(sizeof hf_keys / sizeof hf_keys[0])
#define N_HF_REQUIRED 9 /* the first nine have no default */

static void hf_text(char *buf, size_t size, const char *key, const char *value, const char *tail) {
    size_t k = (size_t)snprintf(buf, size, "{");
    for (int i = 0; i < N_HF_KEYS; i++) {
        const char *v = hf_keys[i][1];
        if (key && !strcmp(key, hf_keys[i][0])) {
            if (!value) continue;
            v = value;
        }
        k += (size_t)snprintf(buf + k, size - k, "%s\"%s\": %s", k > 1 ? ", " : "", hf_keys[i][0], v);
    }
    snprintf(buf + k, size - k, "%s}", tail ? tail : "");
}

static void test_hf(void) {
    lm_config c;
    char root_cfg[512];
    snprintf(root_cfg, sizeof root_cfg, "%s/models/mamba2-tiny/config.json", test_root());
    CHECK_OK(lm_config_load(&c, root_cfg));
    CHECK(c.d_model == 128 && c.n_layer == 4 && c.d_inner == 256 && c.n_heads == 4 && c.head_dim == 64 &&
          c.d_state == 128 && c.n_groups == 1 && c.d_conv == 4 && c.vocab_size == 50288, "tiny config fields");
    CHECK(c.tie_embeddings == 1 && c.conv_bias == 1 && c.proj_bias == 0 && fabsf(c.eps - 1e-5f) < 1e-12f, "flags");
    CHECK(c.dt_limit_min == 0.0f && isinf(c.dt_limit_max) && c.dt_limit_max > 0, "tiny dt limit");

    char buf[2048];
    /* The three forms of time_step_limit, and a finite one. */
    const char *forms[] = {"", ", \"time_step_limit\": [0.0, Infinity]",
                           ", \"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}]", ", \"time_step_limit\": null"};
    for (int i = 0; i < 4; i++) {
        hf_text(buf, sizeof buf, NULL, NULL, forms[i]);
        CHECK_OK(load_text(&c, buf));
        CHECK(c.dt_limit_min == 0.0f && isinf(c.dt_limit_max), "time_step_limit form %d", i);
    }
    hf_text(buf, sizeof buf, NULL, NULL, ", \"time_step_limit\": [0.001, 0.1]");
    CHECK_OK(load_text(&c, buf));
    CHECK(c.dt_limit_min == 0.001f && c.dt_limit_max == 0.1f, "finite time_step_limit");
    const char *bad_limits[] = {"[0.0]", "\"inf\"", "[0.5, 0.1]", "[0.0, NaN]", "[-1, 1]",
                                "[0.0, {\"__float__\": \"lots\"}]", "[0.0, true]",
                                "[1e300, 1e301]" /* both infinite as floats */, "[0.1, 0.10000000001]" /* equal */};
    for (int i = 0; i < 9; i++) {
        char tail[128];
        snprintf(tail, sizeof tail, ", \"time_step_limit\": %s", bad_limits[i]);
        hf_text(buf, sizeof buf, NULL, NULL, tail);
        check_fails(buf, LM_ERR_FORMAT, "time_step_limit");
    }

    /* Each required key missing; each key of the wrong JSON type. */
    for (int i = 0; i < N_HF_KEYS; i++) {
        const char *key = hf_keys[i][0];
        if (i < N_HF_REQUIRED) {
            hf_text(buf, sizeof buf, key, NULL, NULL);
            check_fails(buf, LM_ERR_FORMAT, key);
        }
        hf_text(buf, sizeof buf, key, "\"x\"", NULL);
        check_fails(buf, strcmp(key, "model_type") ? LM_ERR_FORMAT : LM_ERR_UNSUPPORTED, key);
        hf_text(buf, sizeof buf, key, "[1]", NULL);
        check_fails(buf, strcmp(key, "model_type") ? LM_ERR_FORMAT : LM_ERR_UNSUPPORTED, key);
    }
    hf_text(buf, sizeof buf, "hidden_size", "128.0", NULL);
    check_fails(buf, LM_ERR_FORMAT, "hidden_size");
    hf_text(buf, sizeof buf, "num_heads", "true", NULL);
    check_fails(buf, LM_ERR_FORMAT, "num_heads");
    hf_text(buf, sizeof buf, "layer_norm_epsilon", "Infinity", NULL);
    check_fails(buf, LM_ERR_FORMAT, "layer_norm_epsilon");

    /* Out-of-range and inconsistent sizes. */
    hf_text(buf, sizeof buf, "hidden_size", "0", NULL);
    check_fails(buf, LM_ERR_FORMAT, "hidden_size");
    hf_text(buf, sizeof buf, "state_size", "-128", NULL);
    check_fails(buf, LM_ERR_FORMAT, "state_size");
    hf_text(buf, sizeof buf, "vocab_size", "99999999999999999999", NULL);
    check_fails(buf, LM_ERR_FORMAT, "vocab_size");
    hf_text(buf, sizeof buf, "num_heads", "5", NULL);
    check_fails(buf, LM_ERR_FORMAT, "num_heads");
    hf_text(buf, sizeof buf, "n_groups", "3", NULL);
    check_fails(buf, LM_ERR_FORMAT, "n_groups");
    hf_text(buf, sizeof buf, "expand", "1.3", NULL);
    check_fails(buf, LM_ERR_FORMAT, "expand");
    hf_text(buf, sizeof buf, "expand", "0", NULL);
    check_fails(buf, LM_ERR_FORMAT, "expand");
    hf_text(buf, sizeof buf, "rms_norm", "false", NULL);
    check_fails(buf, LM_ERR_UNSUPPORTED, "rms_norm");
    hf_text(buf, sizeof buf, "model_type", "\"mamba\"", NULL);
    check_fails(buf, LM_ERR_UNSUPPORTED, "model_type");
    /* n_groups = 2 with 4 heads is fine; expand as a float that lands on an integer is fine. */
    hf_text(buf, sizeof buf, "n_groups", "2", NULL);
    CHECK_OK(load_text(&c, buf));
    CHECK(c.n_groups == 2, "n_groups 2");
    hf_text(buf, sizeof buf, "expand", "2.0", NULL);
    CHECK_OK(load_text(&c, buf));
    CHECK(c.d_inner == 256, "expand 2.0");
}

static void test_state_spaces(void) {
    lm_config c;
    /* The published state-spaces/mamba2-130m config.json. */
    CHECK_OK(load_text(&c, "{\"d_model\": 768, \"d_intermediate\": 0, \"n_layer\": 24, \"vocab_size\": 50277, "
                           "\"ssm_cfg\": {\"layer\": \"Mamba2\"}, \"attn_layer_idx\": [], \"attn_cfg\": {}, "
                           "\"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true, "
                           "\"pad_vocab_size_multiple\": 16, \"tie_embeddings\": true}"));
    CHECK(c.d_model == 768 && c.n_layer == 24 && c.d_inner == 1536 && c.n_heads == 24 && c.head_dim == 64 &&
          c.d_state == 128 && c.n_groups == 1 && c.d_conv == 4 && c.vocab_size == 50288 && c.tie_embeddings == 1 &&
          c.conv_bias == 1 && c.proj_bias == 0 && isinf(c.dt_limit_max) && fabsf(c.eps - 1e-5f) < 1e-12f,
          "mamba2-130m fields (vocab %d)", c.vocab_size);
    /* Explicit ssm_cfg values; pad_vocab_size_multiple absent: mamba_ssm's default 8. */
    CHECK_OK(load_text(&c, "{\"d_model\": 96, \"n_layer\": 3, \"vocab_size\": 1001, \"rms_norm\": true, "
                           "\"tie_embeddings\": false, \"norm_epsilon\": 1e-6, \"ssm_cfg\": {\"layer\": \"Mamba2\", "
                           "\"d_state\": 32, \"d_conv\": 3, \"expand\": 2, \"headdim\": 16, \"ngroups\": 4, "
                           "\"bias\": true, \"conv_bias\": false, \"dt_limit\": [0.0, Infinity]}}"));
    CHECK(c.d_model == 96 && c.d_inner == 192 && c.n_heads == 12 && c.head_dim == 16 && c.d_state == 32 &&
          c.n_groups == 4 && c.d_conv == 3 && c.vocab_size == 1008 && c.tie_embeddings == 0 && c.proj_bias == 1 &&
          c.conv_bias == 0 && fabsf(c.eps - 1e-6f) < 1e-12f, "explicit ssm_cfg fields");
    check_fails("{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277}", LM_ERR_UNSUPPORTED, "ssm_cfg.layer");
    check_fails("{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba1\"}}",
                LM_ERR_UNSUPPORTED, "Mamba2");
    check_fails("{\"d_model\": 768, \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba2\"}}", LM_ERR_FORMAT,
                "n_layer");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"ssm_cfg\": {\"layer\": \"Mamba2\"}}", LM_ERR_FORMAT, "vocab_size");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, \"ssm_cfg\": [1]}", LM_ERR_FORMAT, "ssm_cfg");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_state\": \"big\"}}", LM_ERR_FORMAT, "ssm_cfg.d_state");
    check_fails("{\"d_model\": 100, \"n_layer\": 2, \"vocab_size\": 50277, "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\", \"headdim\": 64}}", LM_ERR_FORMAT, "headdim");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\", \"ngroups\": 5}}", LM_ERR_FORMAT, "n_groups");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, \"d_intermediate\": 3072, "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\"}}", LM_ERR_UNSUPPORTED, "d_intermediate");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, \"attn_layer_idx\": [1], "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\"}}", LM_ERR_UNSUPPORTED, "attn_layer_idx");
    check_fails("{\"d_model\": 768, \"n_layer\": 2, \"vocab_size\": 50277, "
                "\"ssm_cfg\": {\"layer\": \"Mamba2\", \"norm_before_gate\": true}}", LM_ERR_UNSUPPORTED,
                "norm_before_gate");
}

static void test_bad_json(void) {
    char buf[2048];
    hf_text(buf, sizeof buf, NULL, NULL, NULL);
    /* Truncated at every length: never accepted, always a one-line error. */
    size_t n = strlen(buf);
    for (size_t cut = 0; cut < n; cut += 7) {
        char t[2048];
        memcpy(t, buf, cut);
        t[cut] = '\0';
        lm_config c;
        lm_status s = load_text(&c, t);
        CHECK(s == LM_ERR_FORMAT, "truncated at %zu: status %d", cut, s);
    }
    check_fails("{\"hidden_size\": 128,", LM_ERR_FORMAT, "incomplete");
    check_fails("", LM_ERR_FORMAT, "incomplete");
    check_fails("{\"hidden_size\": 128,, }", LM_ERR_FORMAT, "malformed");
    check_fails("{hidden_size: 128}", LM_ERR_FORMAT, "malformed");
    check_fails("[1, 2]", LM_ERR_FORMAT, "not a JSON object");
    check_fails("{\"vocab_size\": 5}", LM_ERR_FORMAT, "hidden_size");
    hf_text(buf, sizeof buf, NULL, NULL, NULL);
    strcat(buf, " trailing");
    check_fails(buf, LM_ERR_FORMAT, "after the JSON value");
    /* A missing file. */
    lm_config c;
    lm_status s = lm_config_load(&c, "/nonexistent/config.json");
    CHECK(s == LM_ERR_IO && strstr(lm_last_error(), "/nonexistent/config.json"), "missing file: %s", lm_last_error());
}

int main(void) {
    if (synth_tempdir(dir)) return 1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_hf();
    test_state_spaces();
    test_bad_json();
    synth_remove_dir(dir);
    return test_finish();
}
