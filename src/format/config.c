/* config.json -> lm_config.
 *
 * Two key sets are read:
 *   Hugging Face (transformers Mamba2Config): hidden_size, num_hidden_layers, vocab_size,
 *     state_size, num_heads, head_dim, n_groups, conv_kernel, expand, layer_norm_epsilon,
 *     tie_word_embeddings, use_bias, use_conv_bias, rms_norm, time_step_limit.
 *   state-spaces (mamba_ssm MambaConfig): d_model, n_layer, vocab_size (padded up to a
 *     multiple of pad_vocab_size_multiple), rms_norm, norm_epsilon, tie_embeddings and
 *     ssm_cfg {layer: "Mamba2", d_state, d_conv, expand, headdim, ngroups, bias, conv_bias,
 *     dt_limit, ...} with mamba_ssm's defaults for absent keys.
 * JSON null counts as absent. Numbers may be the Python literals Infinity/NaN (json-c reads
 * them) or transformers 5's {"__float__": "Infinity"}. */
#include "format/config.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

#define MAX_DIM LM_CONFIG_MAX_DIM

lm_status lm_json_parse(json_object **out, const char *text, size_t len, const char *what) {
    *out = NULL;
    if (len > INT_MAX) return lm_fail(LM_ERR_FORMAT, "%s: JSON text too large (%zu bytes)", what, len);
    json_tokener *tok = json_tokener_new();
    if (!tok) return lm_fail(LM_ERR_NOMEM, "%s: cannot allocate a JSON parser", what);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (err == json_tokener_continue || (err == json_tokener_success && !obj)) {
        json_object_put(obj);
        return lm_fail(LM_ERR_FORMAT, "%s: incomplete JSON (truncated after %zu bytes?)", what, len);
    }
    if (err != json_tokener_success)
        return lm_fail(LM_ERR_FORMAT, "%s: malformed JSON near byte %zu: %s", what, end,
                       json_tokener_error_desc(err));
    for (size_t i = end; i < len; i++) {
        if (!isspace((unsigned char)text[i])) {
            json_object_put(obj);
            return lm_fail(LM_ERR_FORMAT, "%s: unexpected data after the JSON value at byte %zu", what, i);
        }
    }
    *out = obj;
    return LM_OK;
}

/* Where a key is read from, for error messages: "PATH: key ssm_cfg.d_state ...". */
typedef struct {
    json_object *obj;
    const char *path;
    const char *prefix; /* "" or "ssm_cfg." */
} keys;

/* The value of key, NULL when absent or null. */
static json_object *get(const keys *k, const char *key) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(k->obj, key, &v)) return NULL;
    return json_object_is_type(v, json_type_null) ? NULL : v;
}

static lm_status missing(const keys *k, const char *key) {
    return lm_fail(LM_ERR_FORMAT, "%s: required key %s%s is missing", k->path, k->prefix, key);
}

/* An integer in [lo, hi]; def when absent and not required. */
static lm_status get_int(const keys *k, const char *key, int required, int def, int lo, int hi, int *out) {
    json_object *v = get(k, key);
    if (!v) {
        if (required) return missing(k, key);
        *out = def;
        return LM_OK;
    }
    if (!json_object_is_type(v, json_type_int))
        return lm_fail(LM_ERR_FORMAT, "%s: key %s%s must be an integer, got %s", k->path, k->prefix, key,
                       json_object_to_json_string(v));
    int64_t x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return lm_fail(LM_ERR_FORMAT, "%s: key %s%s = %lld is out of range [%d, %d]", k->path, k->prefix, key,
                       (long long)x, lo, hi);
    *out = (int)x;
    return LM_OK;
}

static lm_status get_bool(const keys *k, const char *key, int def, int *out) {
    json_object *v = get(k, key);
    if (!v) {
        *out = def;
        return LM_OK;
    }
    if (!json_object_is_type(v, json_type_boolean))
        return lm_fail(LM_ERR_FORMAT, "%s: key %s%s must be true or false, got %s", k->path, k->prefix, key,
                       json_object_to_json_string(v));
    *out = json_object_get_boolean(v);
    return LM_OK;
}

/* A JSON number, the literals Infinity/-Infinity/NaN, or {"__float__": "Infinity"}. */
static int read_number(json_object *v, double *out) {
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        *out = json_object_get_double(v);
        return 1;
    }
    json_object *s;
    if (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 1 &&
        json_object_object_get_ex(v, "__float__", &s) && json_object_is_type(s, json_type_string)) {
        const char *str = json_object_get_string(s);
        char *end;
        *out = strtod(str, &end);
        return end != str && *end == '\0';
    }
    return 0;
}

/* A positive number well inside float range; def when absent. */
static lm_status get_positive(const keys *k, const char *key, double def, double *out) {
    json_object *v = get(k, key);
    if (!v) {
        *out = def;
        return LM_OK;
    }
    if (!read_number(v, out) || !isfinite(*out) || *out < 1e-30 || *out > 1e30)
        return lm_fail(LM_ERR_FORMAT, "%s: key %s%s must be a number in [1e-30, 1e30], got %s", k->path, k->prefix, key,
                       json_object_to_json_string(v));
    return LM_OK;
}

/* [min, max] with 0 <= min < max (max may be infinite); (0, inf) when absent. The test is made
 * on the float values the model uses: a min beyond float range would become infinite. */
static lm_status get_dt_limit(const keys *k, const char *key, lm_config *cfg) {
    cfg->dt_limit_min = 0.0f;
    cfg->dt_limit_max = INFINITY;
    json_object *v = get(k, key);
    if (!v) return LM_OK;
    double lo, hi;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2 ||
        !read_number(json_object_array_get_idx(v, 0), &lo) || !read_number(json_object_array_get_idx(v, 1), &hi) ||
        isnan(lo) || isnan(hi) || lo < 0 || !((float)hi > (float)lo) || isinf((float)lo))
        return lm_fail(LM_ERR_FORMAT, "%s: key %s%s must be [min, max] with 0 <= min < max, got %s", k->path,
                       k->prefix, key, json_object_to_json_string(v));
    cfg->dt_limit_min = (float)lo;
    cfg->dt_limit_max = (float)hi;
    return LM_OK;
}

/* Key `key` must be absent or equal to `expected` (a feature this engine does not implement otherwise). */
static lm_status require_bool(const keys *k, const char *key, int def, int expected, const char *why) {
    int b;
    LM_TRY(get_bool(k, key, def, &b));
    if (b != expected)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: %s%s = %s is not supported (%s)", k->path, k->prefix, key,
                       b ? "true" : "false", why);
    return LM_OK;
}

/* d_inner = expand * d_model, which must come out a whole number. */
static lm_status get_d_inner(const keys *k, const char *key, double def, int d_model, int *d_inner) {
    double expand;
    LM_TRY(get_positive(k, key, def, &expand));
    double d = expand * d_model;
    if (d != floor(d) || d > MAX_DIM)
        return lm_fail(LM_ERR_FORMAT, "%s: %s%s = %g times d_model %d is not a valid d_inner", k->path, k->prefix,
                       key, expand, d_model);
    *d_inner = (int)d;
    return LM_OK;
}

static lm_status parse_hf(lm_config *cfg, const keys *k) {
    json_object *mt = get(k, "model_type");
    if (mt && (!json_object_is_type(mt, json_type_string) || strcmp(json_object_get_string(mt), "mamba2") != 0))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: model_type %s is not supported (only mamba2)", k->path,
                       json_object_to_json_string(mt));
    LM_TRY(get_int(k, "hidden_size", 1, 0, 1, MAX_DIM, &cfg->d_model));
    LM_TRY(get_int(k, "num_hidden_layers", 1, 0, 1, MAX_DIM, &cfg->n_layer));
    LM_TRY(get_int(k, "vocab_size", 1, 0, 1, 1 << 24, &cfg->vocab_size));
    LM_TRY(get_int(k, "state_size", 1, 0, 1, MAX_DIM, &cfg->d_state));
    LM_TRY(get_int(k, "num_heads", 1, 0, 1, MAX_DIM, &cfg->n_heads));
    LM_TRY(get_int(k, "head_dim", 1, 0, 1, MAX_DIM, &cfg->head_dim));
    LM_TRY(get_int(k, "n_groups", 1, 0, 1, MAX_DIM, &cfg->n_groups));
    LM_TRY(get_int(k, "conv_kernel", 1, 0, 1, 1024, &cfg->d_conv));
    if (!get(k, "expand")) return missing(k, "expand");
    LM_TRY(get_d_inner(k, "expand", 0, cfg->d_model, &cfg->d_inner));
    double eps;
    LM_TRY(get_positive(k, "layer_norm_epsilon", 1e-5, &eps));
    cfg->eps = (float)eps;
    /* transformers' Mamba2Config defaults: tie_word_embeddings false, use_bias false,
     * use_conv_bias true. (Its norm_before_gate is not used by the transformers model:
     * the gate is always applied before the norm, as here.) */
    LM_TRY(get_bool(k, "tie_word_embeddings", 0, &cfg->tie_embeddings));
    LM_TRY(get_bool(k, "use_bias", 0, &cfg->proj_bias));
    LM_TRY(get_bool(k, "use_conv_bias", 1, &cfg->conv_bias));
    LM_TRY(require_bool(k, "rms_norm", 1, 1, "only RMSNorm models"));
    return get_dt_limit(k, "time_step_limit", cfg);
}

static lm_status parse_state_spaces(lm_config *cfg, const keys *k) {
    LM_TRY(get_int(k, "d_model", 1, 0, 1, MAX_DIM, &cfg->d_model));
    LM_TRY(get_int(k, "n_layer", 1, 0, 1, MAX_DIM, &cfg->n_layer));
    int vocab, pad;
    LM_TRY(get_int(k, "vocab_size", 1, 0, 1, 1 << 24, &vocab));
    LM_TRY(get_int(k, "pad_vocab_size_multiple", 0, 8, 1, 1 << 16, &pad));
    cfg->vocab_size = (vocab + pad - 1) / pad * pad; /* the embedding's row count */
    double eps;
    LM_TRY(get_positive(k, "norm_epsilon", 1e-5, &eps));
    cfg->eps = (float)eps;
    LM_TRY(get_bool(k, "tie_embeddings", 1, &cfg->tie_embeddings));
    LM_TRY(require_bool(k, "rms_norm", 1, 1, "only RMSNorm models"));
    int d_mlp;
    LM_TRY(get_int(k, "d_intermediate", 0, 0, 0, INT_MAX, &d_mlp));
    if (d_mlp != 0)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: d_intermediate = %d is not supported (MLP blocks)", k->path, d_mlp);
    json_object *attn = get(k, "attn_layer_idx");
    if (attn && (!json_object_is_type(attn, json_type_array) || json_object_array_length(attn) != 0))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: attn_layer_idx = %s is not supported (attention layers)", k->path,
                       json_object_to_json_string(attn));

    json_object *ssm = get(k, "ssm_cfg");
    if (ssm && !json_object_is_type(ssm, json_type_object))
        return lm_fail(LM_ERR_FORMAT, "%s: key ssm_cfg must be an object", k->path);
    json_object *empty = json_object_new_object();
    if (!empty) return lm_fail(LM_ERR_NOMEM, "%s: out of memory", k->path);
    keys s = {ssm ? ssm : empty, k->path, "ssm_cfg."};
    lm_status st = LM_OK;
    /* mamba_ssm's MambaLMHeadModel takes ssm_cfg.layer, default "Mamba1". */
    json_object *layer = get(&s, "layer");
    if (!layer || !json_object_is_type(layer, json_type_string) || strcmp(json_object_get_string(layer), "Mamba2"))
        st = lm_fail(LM_ERR_UNSUPPORTED, "%s: ssm_cfg.layer is %s, only \"Mamba2\" is supported", k->path,
                     layer ? json_object_to_json_string(layer) : "absent (mamba_ssm's default: Mamba1)");
    /* mamba_ssm's Mamba2 defaults. */
    if (!st) st = get_int(&s, "d_state", 0, 128, 1, MAX_DIM, &cfg->d_state);
    if (!st) st = get_int(&s, "d_conv", 0, 4, 1, 1024, &cfg->d_conv);
    if (!st) st = get_d_inner(&s, "expand", 2, cfg->d_model, &cfg->d_inner);
    if (!st) st = get_int(&s, "headdim", 0, 64, 1, MAX_DIM, &cfg->head_dim);
    if (!st) st = get_int(&s, "ngroups", 0, 1, 1, MAX_DIM, &cfg->n_groups);
    if (!st) st = get_bool(&s, "bias", 0, &cfg->proj_bias);
    if (!st) st = get_bool(&s, "conv_bias", 1, &cfg->conv_bias);
    if (!st) st = require_bool(&s, "rmsnorm", 1, 1, "only the gated RMSNorm");
    if (!st) st = require_bool(&s, "norm_before_gate", 0, 0, "the gate is applied before the norm");
    if (!st) st = require_bool(&s, "D_has_hdim", 0, 0, "D is one value per head");
    if (!st) st = get_dt_limit(&s, "dt_limit", cfg);
    if (!st && cfg->d_inner % cfg->head_dim)
        st = lm_fail(LM_ERR_FORMAT, "%s: d_inner %d (expand * d_model) is not a multiple of ssm_cfg.headdim %d",
                     k->path, cfg->d_inner, cfg->head_dim);
    if (!st) {
        cfg->n_heads = cfg->d_inner / cfg->head_dim;
        int d_ssm;
        st = get_int(&s, "d_ssm", 0, cfg->d_inner, 1, MAX_DIM, &d_ssm);
        if (!st && d_ssm != cfg->d_inner)
            st = lm_fail(LM_ERR_UNSUPPORTED, "%s: ssm_cfg.d_ssm = %d != d_inner %d is not supported", k->path, d_ssm,
                         cfg->d_inner);
    }
    json_object_put(empty);
    return st;
}

lm_status lm_config_check(const lm_config *c, const char *path) {
    if ((int64_t)c->n_heads * c->head_dim != c->d_inner)
        return lm_fail(LM_ERR_FORMAT, "%s: num_heads %d * head_dim %d != expand * hidden_size = %d", path, c->n_heads,
                       c->head_dim, c->d_inner);
    if (c->n_heads % c->n_groups)
        return lm_fail(LM_ERR_FORMAT, "%s: num_heads %d is not a multiple of n_groups %d", path, c->n_heads,
                       c->n_groups);
    if ((int64_t)c->n_groups * c->d_state > MAX_DIM)
        return lm_fail(LM_ERR_FORMAT, "%s: n_groups %d * state_size %d is too large", path, c->n_groups, c->d_state);
    return LM_OK;
}

lm_status lm_config_parse(lm_config *cfg, const char *text, size_t len, const char *path) {
    memset(cfg, 0, sizeof *cfg);
    json_object *root;
    LM_TRY(lm_json_parse(&root, text, len, path));
    lm_status st;
    keys k = {root, path, ""};
    if (!json_object_is_type(root, json_type_object))
        st = lm_fail(LM_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    else if (get(&k, "hidden_size"))
        st = parse_hf(cfg, &k);
    else if (get(&k, "d_model"))
        st = parse_state_spaces(cfg, &k);
    else
        st = lm_fail(LM_ERR_FORMAT, "%s: neither hidden_size (Hugging Face) nor d_model (state-spaces) is present",
                     path);
    json_object_put(root);
    if (!st) st = lm_config_check(cfg, path);
    if (st) memset(cfg, 0, sizeof *cfg);
    return st;
}

lm_status lm_config_load(lm_config *cfg, const char *config_json_path) {
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    LM_TRY(lm_read_file_max(config_json_path, LM_JSON_MAX_BYTES, &text, &len));
    lm_status st = lm_config_parse(cfg, text, len, config_json_path);
    free(text);
    return st;
}

void lm_config_fields(const lm_config *c, uint32_t f[LM_CONFIG_FIELDS]) {
    const int ints[] = {c->d_model, c->n_layer, c->d_inner, c->n_heads, c->head_dim, c->d_state, c->n_groups,
                        c->d_conv, c->vocab_size};
    for (int i = 0; i < 9; i++) f[i] = (uint32_t)ints[i];
    memcpy(&f[9], &c->eps, 4);
    memcpy(&f[10], &c->dt_limit_min, 4);
    memcpy(&f[11], &c->dt_limit_max, 4);
    f[12] = (uint32_t)c->tie_embeddings;
    f[13] = (uint32_t)c->conv_bias;
    f[14] = (uint32_t)c->proj_bias;
}
