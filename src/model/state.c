/* Session state: a session's recurrent state as bytes, in memory (lm_state_get / lm_state_set)
 * or in a file (lm_state_save / lm_state_load: the same bytes written or mapped, through the same
 * code), to resume it later, and lm_session_copy between sessions of one model (layout and rules
 * in docs/state-format.md). The bytes are a container (format/container.h); the header
 * fields of this format are the tokens consumed, the state kind, the model's identity hash, its
 * config and its quantization settings. Setting checks everything before it writes to the
 * session. */
#include "model/session.h"
#include "model/int_forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/file.h"
#include "format/config.h"
#include "format/container.h"

#define STATE_MAGIC "LMSTATE" /* 7 characters + NUL: 8 bytes */
#define STATE_VERSION 1

/* The format's own header fields (after the container's common ones). */
enum { H_N_TOKENS = 40, H_KIND = 48, H_IDENTITY = 52, H_CONFIG = 56, H_QUANT = 116, MAX_ARRAYS = 16 };

/* State kinds: what the arrays hold. 0: the float32 state of a model whose SSM runs in float
 * (float and quantized-linear models alike); 1: LightMamba*'s integer state (SSM mode pot8). */
enum { KIND_F32 = 0, KIND_POT8 = 1 };

/* One array of the session's state (the session's own memory: the writer reads it, the loader fills it). */
static lm_ct_array array(const char *name, lm_ct_dtype dtype, void *data, int ndim, const uint64_t *shape) {
    lm_ct_array a;
    lm_ct_array_set(&a, name, dtype, ndim, shape, data); /* names and shapes are the session's own: valid */
    return a;
}

/* The arrays that make up the state of s, with its state kind. */
static lm_status session_arrays(const lm_session *s, uint32_t *kind, lm_ct_array a[MAX_ARRAYS], int *n) {
    const lm_config *c = &s->m->cfg;
    const uint64_t L = (uint64_t)c->n_layer, W1 = (uint64_t)c->d_conv - 1, H = (uint64_t)c->n_heads,
                   P = (uint64_t)c->head_dim, N = (uint64_t)c->d_state;
    const uint64_t C = (uint64_t)c->d_inner + 2 * (uint64_t)c->n_groups * N;
    const uint64_t conv[] = {L, W1, C}, ssm[] = {L, H, P, N}, hidden[] = {(uint64_t)c->d_model};
    if (s->int_s) {
        /* pot8: int8 values with a power-of-two exponent byte per 8 channels (docs/integer-datapath.md) */
        lm_int_session_arrays all = lm_int_session_all(s->int_s);
        const uint64_t conv_s[] = {L, W1, C / 8}, ssm_s[] = {L, H, P / 8, N};
        if (all.conv_n != L * W1 * C || all.h_n != L * H * P * N || C % 8 || P % 8)
            return lm_fail(LM_ERR_UNSUPPORTED, "the integer session's state does not have the shapes of a state file");
        *kind = KIND_POT8;
        a[0] = array("conv_q", LM_CT_I8, all.conv_q, 3, conv);
        a[1] = array("conv_s", LM_CT_U8, all.conv_s, 3, conv_s);
        a[2] = array("h_q", LM_CT_I8, all.h_q, 4, ssm);
        a[3] = array("h_s", LM_CT_U8, all.h_s, 4, ssm_s);
        a[4] = array("last_hidden", LM_CT_F32, s->last_hidden, 1, hidden);
        *n = 5;
        return LM_OK;
    }
    if (s->m->quant.ssm_mode != LM_SSM_FLOAT)
        return lm_fail(LM_ERR_UNSUPPORTED, "session state files for SSM mode %d are not implemented",
                       (int)s->m->quant.ssm_mode);
    *kind = KIND_F32;
    a[0] = array("conv_state", LM_CT_F32, s->conv_state, 3, conv);
    a[1] = array("ssm_state", LM_CT_F32, s->ssm_state, 4, ssm);
    a[2] = array("last_hidden", LM_CT_F32, s->last_hidden, 1, hidden);
    *n = 3;
    return LM_OK;
}

/* ---- the model's fingerprint ----
 * The config and the quantization settings that change the computation, stored field by field
 * (so a mismatch can be named), and an identity hash of the weights: CRC-32C over every tensor
 * the forward pass reads, in a fixed order, each as its byte count and a sample of its bytes
 * (all of them up to 16 KiB, else 64 evenly spaced windows of 256 bytes, first and last
 * included), then, for a model loaded from a quantized file, that file's CRC-32C. Sampling keeps
 * the hash cheap for billion-parameter float models; any re-training or re-quantization changes
 * it, a change to a float checkpoint confined to bytes between the windows would not. */
enum { SAMPLE_WINDOWS = 64, WINDOW_BYTES = 256 };

static uint32_t hash_tensor(uint32_t crc, const void *data, uint64_t n) {
    crc = lm_crc32c(crc, &n, sizeof n);
    if (!data || n == 0) return crc;
    if (n <= (uint64_t)SAMPLE_WINDOWS * WINDOW_BYTES) return lm_crc32c(crc, data, (size_t)n);
    for (uint64_t i = 0; i < SAMPLE_WINDOWS; i++)
        crc = lm_crc32c(crc, (const unsigned char *)data + (n - WINDOW_BYTES) * i / (SAMPLE_WINDOWS - 1), WINDOW_BYTES);
    return crc;
}

static uint32_t hash_linear(uint32_t crc, const lm_linear *L) {
    const uint64_t O = (uint64_t)L->rows, K = (uint64_t)L->cols;
    if (L->kind == LM_LINEAR_F32) {
        crc = hash_tensor(crc, L->w, O * K * 4);
    } else if (L->kind == LM_LINEAR_F16) {
        crc = hash_tensor(crc, L->w16, O * K * 2);
    } else {
        crc = hash_tensor(crc, L->q.q, O * L->q.row_stride);
        crc = hash_tensor(crc, L->q.scale, O * ((K + 127) / 128));
        crc = hash_tensor(crc, L->q.e0, O);
    }
    return hash_tensor(crc, L->bias, L->bias ? O * 4 : 0);
}

static uint32_t model_identity(const lm_model *m) {
    const lm_config *c = &m->cfg;
    const uint64_t D = (uint64_t)c->d_model, H = (uint64_t)c->n_heads, f = sizeof(float);
    const uint64_t conv_dim = (uint64_t)c->d_inner + 2 * (uint64_t)c->n_groups * c->d_state;
    /* the embedding as held: float32, or the float16 bits or integer rows of a quantized file */
    const lm_linear embedding_q = {.kind = LM_LINEAR_INT, .rows = c->vocab_size, .cols = c->d_model, .q = m->embedding_q};
    uint32_t crc = m->embedding_q.q ? hash_linear(0, &embedding_q)
                   : m->embedding_f16 ? hash_tensor(0, m->embedding_f16, (uint64_t)c->vocab_size * D * 2)
                                      : hash_tensor(0, m->embedding, (uint64_t)c->vocab_size * D * f);
    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        crc = hash_tensor(crc, L->norm, D * f);
        crc = hash_linear(crc, &L->in_proj);
        crc = hash_tensor(crc, L->conv_w, conv_dim * (uint64_t)c->d_conv * f);
        crc = hash_tensor(crc, L->conv_b, L->conv_b ? conv_dim * f : 0);
        crc = hash_tensor(crc, L->dt_bias, H * f);
        crc = hash_tensor(crc, L->A, H * f);
        crc = hash_tensor(crc, L->D, H * f);
        crc = hash_tensor(crc, L->gnorm, (uint64_t)c->d_inner * f);
        crc = hash_linear(crc, &L->out_proj);
    }
    crc = hash_tensor(crc, m->norm_f, D * f);
    crc = hash_linear(crc, &m->lm_head);
    /* a model loaded from a quantized file: that file's CRC-32C (header bytes [24, 28),
     * docs/quantized-format.md) covers every byte of it, the integer SSM's tables included */
    if (m->qfile.data && m->qfile.size >= 28) crc = lm_crc32c(crc, m->qfile.data + 24, 4);
    return crc;
}

/* The config (15 fields) and the quantization settings (5 fields) as stored in the header. */
enum { N_CONFIG = LM_CONFIG_FIELDS, N_QUANT = 5 };
static const char *const config_names[N_CONFIG] = {
    "d_model", "n_layer", "d_inner", "n_heads", "head_dim", "d_state", "n_groups", "d_conv", "vocab_size",
    "eps", "time_step_limit min", "time_step_limit max", "tie_embeddings", "conv_bias", "proj_bias"};


/* method, wbits, abits, rotated, SSM mode (bits 0 for a float model). */
static void quant_fields(const lm_quant_settings *q, uint32_t f[N_QUANT]) {
    const int quantized = q->method != LM_QUANT_NONE;
    f[0] = (uint32_t)q->method;
    f[1] = quantized ? (uint32_t)q->wbits : 0;
    f[2] = quantized ? (uint32_t)q->abits : 0;
    f[3] = quantized ? (uint32_t)q->rotated : 0;
    f[4] = (uint32_t)q->ssm_mode;
}

/* "float", "lightmamba W4A4 (rotated)", "rtn W8A8 (SSM mode 1)", ... */
static void describe_quant(const uint32_t f[N_QUANT], char *buf, size_t n) {
    const char *name = f[0] <= LM_QUANT_LIGHTMAMBA ? lm_quant_method_name((lm_quant_method)f[0]) : "unknown";
    int at = f[0] == LM_QUANT_NONE ? snprintf(buf, n, "float") : snprintf(buf, n, "%s W%uA%u", name, f[1], f[2]);
    if (f[3] && at >= 0 && (size_t)at < n) at += snprintf(buf + at, n - (size_t)at, " (rotated)");
    if (f[4] && at >= 0 && (size_t)at < n) snprintf(buf + at, n - (size_t)at, " (SSM mode %u)", f[4]);
}

/* ---- the bytes of a state ---- */

/* The container writer of s's state, laid out (arrays a [MAX_ARRAYS], the session's own memory),
 * with or without its header fields (the identity hash costs a pass over samples of the weights). */
static lm_status state_writer(const lm_session *s, lm_ct_array *a, lm_ct_writer *w, int with_header) {
    uint32_t kind;
    int n;
    LM_TRY(session_arrays(s, &kind, a, &n));
    *w = (lm_ct_writer){.arrays = a, .n = n};
    lm_ct_layout(w);
    if (!with_header) return LM_OK;
    lm_put_u64(w->header + H_N_TOKENS, s->n_tokens);
    lm_put_u32(w->header + H_KIND, kind);
    lm_put_u32(w->header + H_IDENTITY, model_identity(s->m));
    uint32_t cfg[N_CONFIG], quant[N_QUANT];
    lm_config_fields(&s->m->cfg, cfg);
    quant_fields(&s->m->quant, quant);
    for (int i = 0; i < N_CONFIG; i++) lm_put_u32(w->header + H_CONFIG + 4 * i, cfg[i]);
    for (int i = 0; i < N_QUANT; i++) lm_put_u32(w->header + H_QUANT + 4 * i, quant[i]);
    return LM_OK;
}

size_t lm_state_size(const lm_session *s) {
    lm_ct_array a[MAX_ARRAYS];
    lm_ct_writer w;
    return state_writer(s, a, &w, 0) == LM_OK ? (size_t)w.file_bytes : 0;
}

lm_status lm_state_get(const lm_session *s, void *buf, size_t size) {
    lm_ct_array a[MAX_ARRAYS];
    lm_ct_writer w;
    LM_TRY(state_writer(s, a, &w, 1));
    if (size < w.file_bytes)
        return lm_fail(LM_ERR_ARG, "state buffer of %zu bytes: this session's state takes %" PRIu64, size, w.file_bytes);
    return lm_ct_write_mem(&w, STATE_MAGIC, STATE_VERSION, buf, size);
}

lm_status lm_state_save(const lm_session *s, const char *path) {
    lm_ct_array a[MAX_ARRAYS];
    lm_ct_writer w;
    LM_TRY(state_writer(s, a, &w, 1));
    return lm_ct_write(&w, STATE_MAGIC, STATE_VERSION, path);
}

/* ---- setting ---- */

/* Checks the state bytes [data, size) against the session; fills src[i] with where array i's
 * bytes lie and *n_tokens. Touches nothing of s. `what` names the bytes in messages ("state file
 * PATH", "state buffer"), `kind` is what they should be ("state file", "state"). */
static lm_status check_state(const lm_session *s, const char *what, const char *kind_name, const void *data,
                             uint64_t size, const lm_ct_array *a, int n, uint32_t kind, const unsigned char **src,
                             uint64_t *n_tokens) {
    lm_ct_reader r;
    LM_TRY(lm_ct_open(&r, data, size, STATE_MAGIC, STATE_VERSION, STATE_VERSION, kind_name, what));
    const unsigned char *d = r.data;

    /* the model: state kind, quantization, config, weights */
    const uint32_t file_kind = lm_get_u32(d + H_KIND);
    if (file_kind != kind)
        return lm_fail(LM_ERR_ARG, "%s holds state kind %u; this model's state is kind %u (0 float32, 1 pot8)", what,
                       file_kind, kind);
    uint32_t cfg[N_CONFIG], quant[N_QUANT], file_quant[N_QUANT];
    lm_config_fields(&s->m->cfg, cfg);
    quant_fields(&s->m->quant, quant);
    for (int i = 0; i < N_QUANT; i++) file_quant[i] = lm_get_u32(d + H_QUANT + 4 * i);
    if (memcmp(file_quant, quant, sizeof quant) != 0) {
        char theirs[96], ours[96];
        describe_quant(file_quant, theirs, sizeof theirs);
        describe_quant(quant, ours, sizeof ours);
        return lm_fail(LM_ERR_ARG, "%s is for another model: it was saved from a %s model, this one is %s", what, theirs,
                       ours);
    }
    for (int i = 0; i < N_CONFIG; i++) {
        const uint32_t v = lm_get_u32(d + H_CONFIG + 4 * i);
        if (v == cfg[i]) continue;
        if (i >= 9 && i <= 11) {
            float fv, fm;
            memcpy(&fv, &v, 4);
            memcpy(&fm, &cfg[i], 4);
            return lm_fail(LM_ERR_ARG, "%s is for another model: its %s is %g, this model's is %g", what, config_names[i],
                           fv, fm);
        }
        return lm_fail(LM_ERR_ARG, "%s is for another model: its %s is %d, this model's is %d", what, config_names[i],
                       (int)v, (int)cfg[i]);
    }
    const uint32_t identity = lm_get_u32(d + H_IDENTITY), ours = model_identity(s->m);
    if (identity != ours)
        return lm_fail(LM_ERR_ARG,
                       "%s is for another model: same configuration, other weights (identity %08x, this model's %08x)",
                       what, identity, ours);

    /* the arrays: exactly the session's, each with its dtype and shape, inside the bytes */
    if (r.n != (uint32_t)n) return lm_fail(LM_ERR_FORMAT, "%s has %u arrays, expected %d", what, r.n, n);
    for (int i = 0; i < n; i++) src[i] = NULL;
    for (int i = 0; i < n; i++) {
        lm_ct_array e;
        LM_TRY(lm_ct_entry(&r, (uint32_t)i, &e));
        int j = 0;
        while (j < n && strcmp(e.name, a[j].name) != 0) j++;
        if (j == n) return lm_fail(LM_ERR_FORMAT, "%s: unexpected array '%.80s'", what, e.name);
        if (src[j]) return lm_fail(LM_ERR_FORMAT, "%s: array '%s' appears twice", what, a[j].name);
        int same = e.dtype == a[j].dtype && e.ndim == a[j].ndim;
        for (int k = 0; k < LM_CT_MAX_DIMS; k++) same = same && e.shape[k] == a[j].shape[k];
        if (!same)
            return lm_fail(LM_ERR_FORMAT, "%s: array '%s' has another dtype or shape than this model's state", what,
                           a[j].name);
        src[j] = e.data;
    }
    *n_tokens = lm_get_u64(d + H_N_TOKENS);
    return LM_OK;
}

/* Validates the bytes [data, size), then copies them into s. */
static lm_status set_state(lm_session *s, const char *what, const char *kind_name, const void *data, uint64_t size) {
    lm_ct_array a[MAX_ARRAYS];
    int n;
    uint32_t kind;
    LM_TRY(session_arrays(s, &kind, a, &n));
    const unsigned char *src[MAX_ARRAYS];
    uint64_t n_tokens = 0;
    LM_TRY(check_state(s, what, kind_name, data, size, a, n, kind, src, &n_tokens));
    /* the arrays' data are the session's own buffers (session_arrays) */
    for (int i = 0; i < n; i++) memcpy((void *)a[i].data, src[i], (size_t)a[i].nbytes);
    s->n_tokens = n_tokens;
    return LM_OK;
}

lm_status lm_state_set(lm_session *s, const void *buf, size_t size) {
    return set_state(s, "state buffer", "state", buf, size);
}

lm_status lm_state_load(lm_session *s, const char *path) {
    lm_mapping map;
    LM_TRY(lm_map_file(path, &map));
    char what[512];
    snprintf(what, sizeof what, "state file %s", path);
    lm_status st = set_state(s, what, "state file", map.data, map.size);
    lm_unmap_file(&map);
    return st;
}

/* ---- copying ---- */

lm_status lm_session_copy(lm_session *dst, const lm_session *src) {
    if (dst->m != src->m) return lm_fail(LM_ERR_ARG, "lm_session_copy: the two sessions are of different models");
    lm_ct_array from[MAX_ARRAYS], to[MAX_ARRAYS];
    int n;
    uint32_t kind;
    LM_TRY(session_arrays(src, &kind, from, &n));
    LM_TRY(session_arrays(dst, &kind, to, &n));
    for (int i = 0; i < n && dst != src; i++) memcpy((void *)to[i].data, from[i].data, (size_t)from[i].nbytes);
    dst->n_tokens = src->n_tokens;
    return LM_OK;
}
