/* Platform files (hw/platforms/NAME.json) and model shapes (built-in Mamba2 sizes or a config.json). */
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/datadir.h"
#include "common/error.h"
#include "common/file.h"
#include "format/config.h"
#include "sim/sim.h"


typedef struct { const char *key; double *dval; int *ival; long *lval; double lo, hi; } field_t;

/* Reads every listed number of obj (all required). Keys other than these, "notes" and the
 * comma-separated names in `others` are errors (a typo must not fall back silently). */
static lm_status read_fields(const char *path, const char *where, json_object *obj, const field_t *f, int n,
                             const char *others) {
    if (!obj || !json_object_is_type(obj, json_type_object))
        return lm_fail(LM_ERR_FORMAT, "%s: \"%s\" must be an object", path, where);
    json_object_object_foreach(obj, key, val) {
        (void)val;
        size_t kl = strlen(key);
        int known = !strcmp(key, "notes");
        for (const char *o = others; !known && *o;) {
            const char *e = strchr(o, ',');
            size_t ol = e ? (size_t)(e - o) : strlen(o);
            known = ol == kl && !strncmp(o, key, kl);
            o += ol + (e ? 1 : 0);
        }
        for (int i = 0; i < n && !known; i++) known = !strcmp(key, f[i].key);
        if (!known) return lm_fail(LM_ERR_FORMAT, "%s: unknown key \"%s\" in %s", path, key, where);
    }
    for (int i = 0; i < n; i++) {
        json_object *v;
        if (!json_object_object_get_ex(obj, f[i].key, &v))
            return lm_fail(LM_ERR_FORMAT, "%s: missing key \"%s\" in %s", path, f[i].key, where);
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
            return lm_fail(LM_ERR_FORMAT, "%s: %s.%s must be a number", path, where, f[i].key);
        double x = json_object_get_double(v);
        if (!isfinite(x) || x < f[i].lo || x > f[i].hi)
            return lm_fail(LM_ERR_FORMAT, "%s: %s.%s = %g is out of range [%g, %g]", path, where, f[i].key, x, f[i].lo, f[i].hi);
        if ((f[i].ival || f[i].lval) && x != floor(x))
            return lm_fail(LM_ERR_FORMAT, "%s: %s.%s = %g must be an integer", path, where, f[i].key, x);
        if (f[i].dval) *f[i].dval = x;
        if (f[i].ival) *f[i].ival = (int)x;
        if (f[i].lval) *f[i].lval = (long)x;
    }
    return LM_OK;
}

static lm_status read_string(const char *path, json_object *obj, const char *key, char *out, size_t cap) {
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return lm_fail(LM_ERR_FORMAT, "%s: missing string \"%s\"", path, key);
    const char *s = json_object_get_string(v);
    if (strlen(s) >= cap) return lm_fail(LM_ERR_FORMAT, "%s: \"%s\" is longer than %zu characters", path, key, cap - 1);
    strcpy(out, s);
    return LM_OK;
}

static lm_status parse_platform(lm_hw_platform *p, const char *path, json_object *root) {
    memset(p, 0, sizeof *p);
    if (!json_object_is_type(root, json_type_object)) return lm_fail(LM_ERR_FORMAT, "%s: not a JSON object", path);
    const field_t top[] = {{"clock_mhz", &p->clock_mhz, 0, 0, 1, 5000}};
    LM_TRY(read_fields(path, "the top level", root, top, 1, "name,memory,resources,accelerator"));
    LM_TRY(read_string(path, root, "name", p->name, sizeof p->name));
    json_object *mem = NULL, *res = NULL, *acc = NULL;
    json_object_object_get_ex(root, "memory", &mem);
    json_object_object_get_ex(root, "resources", &res);
    json_object_object_get_ex(root, "accelerator", &acc);
    if (!mem) return lm_fail(LM_ERR_FORMAT, "%s: missing object \"memory\"", path);
    if (!res) return lm_fail(LM_ERR_FORMAT, "%s: missing object \"resources\"", path);
    if (!acc) return lm_fail(LM_ERR_FORMAT, "%s: missing object \"accelerator\"", path);
    LM_TRY(read_string(path, mem, "type", p->mem_type, sizeof p->mem_type));
    const field_t mf[] = {
        {"channels", 0, &p->mem_channels, 0, 1, 256}, {"channel_bits", 0, &p->mem_channel_bits, 0, 8, 4096},
        {"mtps", &p->mem_mtps, 0, 0, 1, 1e5}, {"efficiency", &p->mem_efficiency, 0, 0, 0.01, 1},
        {"latency_ns", &p->mem_latency_ns, 0, 0, 0, 1e5},
        {"burst_bytes", 0, &p->burst_bytes, 0, 16, 1 << 20}, {"min_access_bytes", 0, &p->min_access_bytes, 0, 1, 4096},
        {"pj_per_byte", &p->mem_pj_per_byte, 0, 0, 0, 1e4}};
    LM_TRY(read_fields(path, "memory", mem, mf, (int)(sizeof mf / sizeof mf[0]), "type"));
    const field_t rf[] = {{"lut", 0, 0, &p->lut, 1, 1e8}, {"ff", 0, 0, &p->ff, 1, 1e8}, {"dsp", 0, 0, &p->dsp, 0, 1e6},
                          {"bram", 0, 0, &p->bram, 0, 1e6}, {"uram", 0, 0, &p->uram, 0, 1e6}};
    LM_TRY(read_fields(path, "resources", res, rf, 5, ""));
    lm_hw_design *d = &p->design;
    const field_t af[] = {
        {"cip", 0, &d->cip, 0, 1, 4096}, {"cop", 0, &d->cop, 0, 1, 4096}, {"ssmu_lanes", 0, &d->ssmu_lanes, 0, 1, 4096},
        {"n_p", 0, &d->n_p, 0, 1, 4096}, {"p_p", 0, &d->p_p, 0, 1, 4096}, {"conv_lanes", 0, &d->conv_lanes, 0, 1, 4096},
        {"norm_lanes", 0, &d->norm_lanes, 0, 1, 4096}, {"htu_width", 0, &d->htu_width, 0, 1, 4096},
        {"mem_channels", 0, &d->mem_channels, 0, 1, 256}, {"port_bits", 0, &d->port_bits, 0, 32, 4096}, {"fifo_tiles", 0, &d->fifo_tiles, 0, 1, 1 << 20},
        {"xz_buffer_heads", 0, &d->xz_buffer_heads, 0, 1, 1 << 20}, {"state_buffers", 0, &d->state_buffers, 0, 0, 4},
        {"weight_fifo_kib", 0, &d->weight_fifo_kib, 0, 4, 1 << 20}};
    LM_TRY(read_fields(path, "accelerator", acc, af, (int)(sizeof af / sizeof af[0]), ""));
    if (d->mem_channels > p->mem_channels)
        return lm_fail(LM_ERR_FORMAT, "%s: accelerator.mem_channels %d exceeds memory.channels %d", path, d->mem_channels, p->mem_channels);
    d->wbits = d->abits = 4;
    d->reorder = d->tiling = 1;
    return LM_OK;
}

lm_status lm_hw_platform_parse(lm_hw_platform *p, const char *text, size_t len, const char *path) {
    json_object *root;
    LM_TRY(lm_json_parse(&root, text, len, path));
    lm_status st = parse_platform(p, path, root);
    json_object_put(root);
    return st;
}

lm_status lm_hw_platform_load(lm_hw_platform *p, const char *name_or_path) {
    char *path = NULL;
    int is_file = strchr(name_or_path, '/') || strstr(name_or_path, ".json");
    if (is_file) {
        path = strdup(name_or_path);
    } else {
        /* The bundled platforms: platforms/NAME.json in the data folder (common/datadir.h). */
        char name[128];
        if (snprintf(name, sizeof name, "platforms/%s.json", name_or_path) >= (int)sizeof name || lm_data_path(name, &path))
            return lm_fail(LM_ERR_ARG, "unknown platform '%s' (vck190, u280, or a platform JSON file)", name_or_path);
    }
    if (!path) return lm_fail(LM_ERR_NOMEM, "out of memory");
    char *text;
    size_t len;
    lm_status st = lm_read_file_max(path, LM_JSON_MAX_BYTES, &text, &len);
    if (st == LM_OK) st = lm_hw_platform_parse(p, text, len, path);
    free(text);
    free(path);
    return st;
}

/* The table of named configs lives in src/format (shared with lightmamba synth). */
lm_status lm_hw_model_load(lm_config *c, const char *name_or_path) { return lm_config_named(c, name_or_path); }
