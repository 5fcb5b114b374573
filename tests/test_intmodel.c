/* LightMamba* end to end (SSM mode pot8) on the bundled mamba2-tiny:
 *   - the whole integer model gives bit-identical logits across thread counts (1, 2, 3) and runs;
 *   - prefill (in chunks of 64 tokens) == token-by-token decode: states, residual, logits;
 *   - the session's batched, threaded, SIMD forward == the scalar golden model (lm_int_block_forward) per token;
 *   - the model file round-trips byte for byte; damaged integer parameters are refused;
 *   - the vectors dump reproduces: the golden units re-run on the dumped inputs give the dumped outputs.
 * Each for our datapath and for the authors' released one (--datapath release, format version 2).
 * Quantized here with a small calibration (4 samples of 64 tokens) so the test stays quick. */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "model/int_forward.h"
#include "model/ops.h"
#include "model/session.h"
#include "model/vectors.h"
#include "model/qfile.h"

#define N_TOKENS 150   /* three chunks, the last one short */

static char tmpdir[] = "/tmp/lm_test_intmodel_XXXXXX";

static void ids_fill(int32_t *ids, int n, int vocab) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(((uint64_t)i * 7919u + 13u) % (uint64_t)(vocab - 1000));
}

static lm_model *quantize_load(const lm_model *src, lm_quant_method method, int wbits, int abits, int dp,
                               const char *path) {
    lm_quant_settings q = lm_quant_defaults();
    q.method = method;
    q.wbits = wbits;
    q.abits = abits;
    q.ssm_mode = LM_SSM_POT8;
    q.datapath = dp;
    q.calib_samples = 4;
    q.calib_len = 64;
    CHECK_OK(lm_quantize(src, &q, NULL, 2, path, NULL, NULL));
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    return m;
}

/* All logits of ids through a fresh session of n_threads: prefill (one call) or decode (one token a call). */
static float *run_logits(const lm_model *m, const int32_t *ids, int n, int n_threads, int decode) {
    const int V = lm_model_config(m)->vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    lm_session *s = NULL;
    CHECK_OK(test_session(&s, m, n_threads));
    if (!s) return logits;
    if (decode)
        for (int t = 0; t < n; t++) CHECK_OK(lm_session_forward(s, ids + t, 1, logits + (size_t)t * V, NULL));
    else
        CHECK_OK(lm_session_forward(s, ids, (size_t)n, logits, NULL));
    lm_session_free(s);
    return logits;
}

/* The integer state and the residual after the last block: prefill in pieces of 37, 64 and 49
 * tokens (chunk boundaries inside them) against one token a call, at every piece's end; then the
 * last token's logits, recomputed by both from that state. (Logits of a whole prefill come from
 * the float lm_head as a matrix product, whose float sums differ from the decode's matrix-vector
 * product: the integer blocks are what must agree bit for bit.) */
static void test_prefill_decode(const lm_model *m, const int32_t *ids, const char *what) {
    const lm_config *c = lm_model_config(m);
    const int pieces[3] = {37, 64, 49};
    lm_session *a = NULL, *b = NULL;
    CHECK_OK(test_session(&a, m, 2));
    CHECK_OK(test_session(&b, m, 1));
    if (!a || !b) return;
    int at = 0, bad = 0;
    for (int p = 0; p < 3; p++) {
        CHECK_OK(lm_session_forward(a, ids + at, (size_t)pieces[p], NULL, NULL));
        for (int t = 0; t < pieces[p]; t++) CHECK_OK(lm_session_forward(b, ids + at + t, 1, NULL, NULL));
        at += pieces[p];
        lm_int_session_arrays x = lm_int_session_all(a->int_s), y = lm_int_session_all(b->int_s);
        bad += memcmp(a->last_hidden, b->last_hidden, sizeof(float) * c->d_model) != 0 ||
               memcmp(x.h_q, y.h_q, x.h_n) != 0 || memcmp(x.h_s, y.h_s, x.h_n / 8) != 0 ||
               memcmp(x.conv_q, y.conv_q, x.conv_n) != 0 || memcmp(x.conv_s, y.conv_s, x.conv_n / 8) != 0;
    }
    CHECK(bad == 0, "%s: prefill and decode disagree (state or residual) at %d of 3 points", what, bad);
    float *la = malloc(sizeof(float) * c->vocab_size), *lb = malloc(sizeof(float) * c->vocab_size);
    CHECK_OK(lm_session_last_logits(a, la));
    CHECK_OK(lm_session_last_logits(b, lb));
    CHECK(memcmp(la, lb, sizeof(float) * c->vocab_size) == 0, "%s: last logits differ between prefill and decode", what);
    free(la);
    free(lb);
    lm_session_free(a);
    lm_session_free(b);
}

static void test_determinism(const lm_model *m, const char *what) {
    const int V = lm_model_config(m)->vocab_size;
    int32_t ids[N_TOKENS];
    ids_fill(ids, N_TOKENS, V);
    const size_t bytes = sizeof(float) * (size_t)N_TOKENS * V;
    float *ref = run_logits(m, ids, N_TOKENS, 1, 0);
    int finite = 1;
    for (size_t i = 0; i < (size_t)N_TOKENS * V; i++) finite &= isfinite(ref[i]) != 0;
    CHECK(finite, "%s: non-finite logits", what);
    for (int th = 1; th <= 3; th++) {
        float *again = run_logits(m, ids, N_TOKENS, th, 0);
        CHECK(memcmp(ref, again, bytes) == 0, "%s: prefill logits differ with %d thread(s)", what, th);
        free(again);
    }
    float *dec1 = run_logits(m, ids, N_TOKENS, 1, 1), *dec3 = run_logits(m, ids, N_TOKENS, 3, 1);
    CHECK(memcmp(dec1, dec3, bytes) == 0, "%s: decode logits differ between 1 and 3 threads", what);
    free(dec1);
    free(dec3);
    free(ref);
    test_prefill_decode(m, ids, what);
    printf("%s: logits of %d tokens bit-identical over 1-3 threads and runs; prefill == decode\n", what, N_TOKENS);
}

/* The session (batched in_proj/out_proj through the SIMD kernels, heads over threads, every unit
 * at the best SIMD level) against the golden per-token block at the scalar level: the residual
 * after the last block, every token. */
static void test_golden(const lm_model *m, const char *what) {
    const lm_config *c = lm_model_config(m);
    const lm_simd_level best = lm_simd_level_get();
    const int D = c->d_model, nl = c->n_layer;
    int32_t ids[70];
    ids_fill(ids, 70, c->vocab_size);
    lm_int_state *st = calloc((size_t)nl, sizeof *st);
    lm_int_scratch *ws = NULL;
    for (int l = 0; l < nl; l++) CHECK_OK(lm_int_state_init(&st[l], &m->int_layers[l]));
    CHECK_OK(lm_int_scratch_init(&ws, &m->int_layers[0]));
    int32_t *u = malloc(sizeof(int32_t) * D);
    float *golden = malloc(sizeof(float) * D);
    lm_session *s = NULL;
    CHECK_OK(test_session(&s, m, 2));
    int bad = 0;
    for (int t = 0; s && ws && t < 70; t++) {
        embedding_forward(golden, m, &ids[t], 1); /* the token's embedding row, then the golden step */
        lm_int_residual_from_f32(u, golden, D, m->int_layers[0].dp);
        CHECK_OK(lm_simd_level_set(LM_SIMD_SCALAR));   /* the golden code alone */
        for (int l = 0; l < nl; l++) lm_int_block_forward(u, &st[l], &m->int_layers[l], ws);
        CHECK_OK(lm_simd_level_set(best));
        lm_int_residual_to_f32(golden, u, D);
        CHECK_OK(lm_session_forward(s, ids + t, 1, NULL, NULL));
        bad += memcmp(golden, s->last_hidden, sizeof(float) * D) != 0;
    }
    CHECK(bad == 0, "%s: the session differs from the golden model on %d of 70 tokens", what, bad);
    /* and the states */
    lm_int_session_arrays all = lm_int_session_all(s->int_s);
    const lm_int_layer *L = &m->int_layers[0];
    const size_t hn = (size_t)L->H * L->P * L->N, cn = (size_t)(L->W - 1) * L->C;
    for (int l = 0; l < nl; l++) {
        CHECK(memcmp(all.h_q + l * hn, st[l].h_q, hn) == 0 && memcmp(all.h_s + l * hn / 8, st[l].h_s, hn / 8) == 0,
              "%s: layer %d SSM state differs from the golden model", what, l);
        CHECK(memcmp(all.conv_q + l * cn, st[l].conv_q, cn) == 0, "%s: layer %d conv state differs", what, l);
    }
    lm_session_free(s);
    for (int l = 0; l < nl; l++) lm_int_state_free(&st[l]);
    free(st);
    lm_int_scratch_free(ws);
    free(u);
    free(golden);
    printf("%s: session (%s) == golden model (scalar) on 70 decode steps (residual and states)\n", what,
           lm_simd_level_name(best));
}

static int files_equal(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = lm_read_file(a, &x, &nx) == LM_OK && lm_read_file(b, &y, &ny) == LM_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

/* Writes m to path (its own tokenizer embedded) and expects loading it to fail naming `expect`. */
static void expect_refused(const lm_model *m, const char *tok, size_t tok_len, const char *path, const char *expect) {
    CHECK_OK(lm_qfile_write(path, m, tok, tok_len));
    lm_model *bad = NULL;
    lm_status s = lm_model_init(&bad, path);
    CHECK(s == LM_ERR_FORMAT && strstr(lm_last_error(), expect), "a damaged file (%s) loaded: status %d, '%s'", expect,
          (int)s, lm_last_error());
    lm_model_free(bad);
}

static void test_file(lm_model *m, const char *path) {
    char p2[256], p3[256];
    snprintf(p2, sizeof p2, "%s/again.lmq", tmpdir);
    snprintf(p3, sizeof p3, "%s/bad.lmq", tmpdir);
    char *tok = NULL;
    size_t tok_len = 0;
    CHECK_OK(lm_model_tokenizer_json(m, &tok, &tok_len));
    /* loaded -> written again: the same bytes */
    CHECK_OK(lm_qfile_write(p2, m, tok, tok_len));
    CHECK(files_equal(path, p2), "a loaded pot8 model written again differs from its file");
    /* a flipped byte in the last tensor (the last layer's LUT shifts): checksum */
    char *bytes = NULL;
    size_t n = 0;
    CHECK_OK(lm_read_file(path, &bytes, &n));
    if (bytes) {
        bytes[n - 40] ^= 0x10;
        FILE *f = fopen(p3, "wb");
        fwrite(bytes, 1, n, f);
        fclose(f);
        lm_model *bad = NULL;
        lm_status s = lm_model_init(&bad, p3);
        CHECK(s == LM_ERR_FORMAT && strstr(lm_last_error(), "checksum"), "a corrupted file loaded: %s", lm_last_error());
        lm_model_free(bad);
        free(bytes);
    }
    /* consistent checksum, inconsistent parameters: the loader's validation */
    lm_int_layer *L = &m->int_layers[1];
    const lm_int_layer keep = *L;
    L->silu_z.F_out += 1;
    expect_refused(m, tok, tok_len, p3, "lut.params");
    *L = keep;
    L->F_h = 40;
    expect_refused(m, tok, tok_len, p3, "scalars");
    *L = keep;
    int16_t *g = malloc(sizeof(int16_t) * L->D);
    memcpy(g, L->norm_gq, sizeof(int16_t) * L->D);
    g[3] = 5000;
    L->norm_gq = g;
    expect_refused(m, tok, tok_len, p3, "norm.gamma");
    *L = keep;
    L->exp.shift[5] = 16;
    expect_refused(m, tok, tok_len, p3, "lut.shift");
    *L = keep;
    if (L->gnorm_rsqrt8) {   /* the release's norm tables: thresholds must increase */
        lm_rsqrt8 t = *L->gnorm_rsqrt8;
        t.alpha[3] = t.alpha[2];
        L->gnorm_rsqrt8 = &t;
        expect_refused(m, tok, tok_len, p3, "rsqrt8");
        *L = keep;
        m->quant.datapath = 64;   /* a flag this build does not know */
        expect_refused(m, tok, tok_len, p3, "datapath flags");
        m->quant.datapath = keep.dp;
    }
    free(g);
    free(tok);
    printf("pot8 model file: round-trips byte for byte; corruption and bad parameters refused\n");
}

/* ---- vectors ---- */

typedef struct {
    json_object *arrays;
    const char *dir;
} manifest;

/* The named array's data (malloc'd), checked against its manifest entry's size. */
static void *vec(const manifest *mf, const char *name, size_t elem) {
    for (size_t i = 0; i < json_object_array_length(mf->arrays); i++) {
        json_object *a = json_object_array_get_idx(mf->arrays, i), *v;
        json_object_object_get_ex(a, "name", &v);
        if (strcmp(json_object_get_string(v), name) != 0) continue;
        json_object *shape, *file;
        json_object_object_get_ex(a, "shape", &shape);
        json_object_object_get_ex(a, "file", &file);
        size_t count = 1;
        for (size_t d = 0; d < json_object_array_length(shape); d++)
            count *= (size_t)json_object_get_int(json_object_array_get_idx(shape, d));
        char path[512];
        snprintf(path, sizeof path, "%s/%s", mf->dir, json_object_get_string(file));
        char *data = NULL;
        size_t n = 0;
        CHECK_OK(lm_read_file(path, &data, &n));
        CHECK(n == count * elem, "vectors: %s has %zu bytes, its shape says %zu", name, n, count * elem);
        return data;
    }
    CHECK(0, "vectors: no array %s in the manifest", name);
    return calloc(1, 1 << 20);
}

#define SAME(a, b, n, what) CHECK(memcmp((a), (b), (n)) == 0, "vectors: re-running %s does not give the dumped output", what)

static void test_vectors(const lm_model *m, int layer) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/vec%d", tmpdir, layer);
    const int32_t prompt[5] = {510, 3158, 8516, 30013, 187};
    lm_vectors_result r;
    CHECK_OK(lm_vectors_dump(m, prompt, 5, lm_model_config(m)->vocab_size, layer, dir, 2, &r));
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    json_object *root = json_object_from_file(mpath), *v;
    CHECK(root != NULL, "vectors: no manifest at %s", mpath);
    if (!root) return;
    manifest mf = {NULL, dir};
    json_object_object_get_ex(root, "arrays", &mf.arrays);
    json_object_object_get_ex(root, "layer", &v);
    CHECK(json_object_get_int(v) == layer, "vectors: manifest layer %d", json_object_get_int(v));
    const lm_int_layer *L = &m->int_layers[layer];
    const int D = L->D, di = L->d_inner, C = L->C, H = L->H, N = L->N, E = L->E, W = L->W, Hg = lm_pot_groups(H);
    const int ab = L->abits;
    lm_int_scratch *ws = NULL;
    CHECK_OK(lm_int_scratch_init(&ws, L));
    int32_t sc[LM_INT_SCALARS];
    lm_int_layer_scalars(L, sc);
    int32_t *dsc = vec(&mf, "param.scalars", 4);
    SAME(sc, dsc, sizeof sc, "param.scalars");
    uint8_t *dw = vec(&mf, "param.in_proj.qweight", 1);
    SAME(L->in_proj->q, dw, (size_t)L->in_proj->rows * L->in_proj->row_stride, "param.in_proj.qweight");

    int32_t *w1 = malloc(sizeof(int32_t) * (E > D ? E : D)), *w2 = malloc(sizeof(int32_t) * (E > D ? E : D));
    int8_t *q = malloc((size_t)E * 8), *q2 = malloc((size_t)E * 8);
    uint8_t *s = malloc((size_t)E * 8), *s2 = malloc((size_t)E * 8);
    int eb;
    /* norm -> in_quant -> in_pack -> in_proj */
    int32_t *norm_in = vec(&mf, "norm.in", 4), *norm_out = vec(&mf, "norm.out", 4);
    lm_int_rmsnorm(w1, norm_in, &L->norm);
    SAME(w1, norm_out, sizeof(int32_t) * D, "norm");
    int8_t *iq = vec(&mf, "in_quant.out.q", 1);
    uint8_t *is = vec(&mf, "in_quant.out.s", 1);
    lm_pot_quantize_dp(q, s, norm_out, D, ab, L->dp);
    SAME(q, iq, D, "in_quant (q)");
    SAME(s, is, D / 8, "in_quant (s)");
    int8_t *qa = vec(&mf, "in_pack.out.qa", 1);
    uint8_t *sa = vec(&mf, "in_pack.out.sa", 1);
    int32_t *deb = vec(&mf, "in_pack.out.eb", 4);
    lm_int_act_pack(q, s, &eb, iq, is, L->norm.F_out, D, ab);
    SAME(q, qa, D, "in_pack (qa)");
    SAME(s, sa, D / 8, "in_pack (sa)");
    CHECK(eb == *deb, "vectors: in_pack eb %d, dumped %d", eb, *deb);
    int32_t *zx = vec(&mf, "in_proj.out", 4);
    lm_int_linear_fixed(w1, qa, sa, *deb, L->in_proj, L->F_ip, L->dp);
    SAME(w1, zx, sizeof(int32_t) * E, "in_proj");
    /* xBC quant -> conv -> SiLU; SiLU(z); dt; dA; dB */
    int8_t *xq = vec(&mf, "xbc_quant.out.q", 1);
    uint8_t *xs = vec(&mf, "xbc_quant.out.s", 1);
    lm_pot_quantize_dp(q, s, zx + di, C, 8, L->dp);
    SAME(q, xq, C, "xbc_quant (q)");
    SAME(s, xs, C / 8, "xbc_quant (s)");
    int8_t *csq = vec(&mf, "conv.state_in.q", 1), *coq = vec(&mf, "conv.state_out.q", 1);
    uint8_t *css = vec(&mf, "conv.state_in.s", 1), *cos_ = vec(&mf, "conv.state_out.s", 1);
    int32_t *conv_out = vec(&mf, "conv.out", 4);
    lm_int_conv_forward(w1, csq, css, xq, xs, &L->conv);
    SAME(w1, conv_out, sizeof(int32_t) * C, "conv (out)");
    SAME(csq, coq, (size_t)(W - 1) * C, "conv (state q)");
    SAME(css, cos_, (size_t)(W - 1) * C / 8, "conv (state s)");
    lm_int_token tok;
    tok.u_q = vec(&mf, "silu_xbc.out.q", 1);
    tok.u_s = vec(&mf, "silu_xbc.out.s", 1);
    lm_int_lut_quantize(q, s, conv_out, C, &L->silu_xbc, 8, L->dp);
    SAME(q, tok.u_q, C, "silu_xbc (q)");
    SAME(s, tok.u_s, C / 8, "silu_xbc (s)");
    tok.z_q = vec(&mf, "silu_z.out.q", 1);
    tok.z_s = vec(&mf, "silu_z.out.s", 1);
    lm_int_lut_quantize(q, s, zx, di, &L->silu_z, 8, L->dp);
    SAME(q, tok.z_q, di, "silu_z (q)");
    SAME(s, tok.z_s, di / 8, "silu_z (s)");
    int8_t *dtq = vec(&mf, "dt.out.q", 1);
    uint8_t *dts = vec(&mf, "dt.out.s", 1);
    lm_int_dt(q, s, zx + di + C, L->dt_bq, L->dt_be, L->dt_lo, L->dt_hi, &L->softplus, H, L->dp);
    SAME(q, dtq, H, "dt (q)");
    SAME(s, dts, Hg, "dt (s)");
    tok.dA_q = vec(&mf, "dA.out.q", 1);
    tok.dA_s = vec(&mf, "dA.out.s", 1);
    lm_int_dA(q, s, dtq, dts, L->F_dt, L->A_q, L->A_e, &L->exp, H, L->dp);
    SAME(q, tok.dA_q, H, "dA (q)");
    SAME(s, tok.dA_s, Hg, "dA (s)");
    tok.dB_q = vec(&mf, "dB.out.q", 1);
    tok.dB_s = vec(&mf, "dB.out.s", 1);
    lm_int_dB(q2, s2, dtq, dts, L->F_dt, tok.u_q + di, tok.u_s + di / 8, L->F_u, L->F_dB, H, L->G, N, L->dp);
    SAME(q2, tok.dB_q, (size_t)H * N, "dB (q)");
    SAME(s2, tok.dB_s, (size_t)lm_int_dB_exp_count(H, N, L->dp), "dB (s)");
    /* the state step */
    lm_int_state st = {NULL, NULL, vec(&mf, "ssm.state_in.q", 1), vec(&mf, "ssm.state_in.s", 1)};
    int8_t *hoq = vec(&mf, "ssm.state_out.q", 1);
    uint8_t *hos = vec(&mf, "ssm.state_out.s", 1);
    int32_t *y = vec(&mf, "ssm.out", 4);
    lm_int_heads(w1, &tok, &st, L, 0, H, ws);
    SAME(w1, y, sizeof(int32_t) * di, "ssm (y)");
    SAME(st.h_q, hoq, (size_t)H * L->P * N, "ssm (state q)");
    SAME(st.h_s, hos, (size_t)H * L->P * N / 8, "ssm (state s)");
    /* y quant -> gate -> gated norm -> Hadamard -> out_quant -> out_pack -> out_proj -> residual */
    int8_t *yq = vec(&mf, "y_quant.out.q", 1);
    uint8_t *ys = vec(&mf, "y_quant.out.s", 1);
    lm_pot_quantize_dp(q, s, y, di, 8, L->dp);
    SAME(q, yq, di, "y_quant (q)");
    SAME(s, ys, di / 8, "y_quant (s)");
    int32_t *gate = vec(&mf, "gate.out", 4), *gn = vec(&mf, "gnorm.out", 4);
    lm_int_gate(w1, yq, ys, L->F_y, tok.z_q, tok.z_s, L->F_zs, L->F_g, di, L->dp);
    SAME(w1, gate, sizeof(int32_t) * di, "gate");
    lm_int_rmsnorm(w1, gate, &L->gnorm);
    SAME(w1, gn, sizeof(int32_t) * di, "gnorm");
    const int32_t *xo = gn;
    int Fo = L->gnorm.F_out;
    int32_t *had = NULL;
    if (L->rot_m) {
        had = vec(&mf, "hadamard.out", 4);
        int64_t *scr = malloc(sizeof(int64_t) * di);
        lm_int_hadamard(w1, gn, L->rot_Hm, L->rot_m, di, L->F_rot - L->gnorm.F_out, scr);
        free(scr);
        SAME(w1, had, sizeof(int32_t) * di, "hadamard");
        xo = had;
        Fo = L->F_rot;
    }
    int8_t *oq = vec(&mf, "out_quant.out.q", 1), *oqa = vec(&mf, "out_pack.out.qa", 1);
    uint8_t *os = vec(&mf, "out_quant.out.s", 1), *osa = vec(&mf, "out_pack.out.sa", 1);
    int32_t *oeb = vec(&mf, "out_pack.out.eb", 4), *op = vec(&mf, "out_proj.out", 4), *res = vec(&mf, "residual.out", 4);
    lm_pot_quantize_dp(q, s, xo, di, ab, L->dp);
    SAME(q, oq, di, "out_quant (q)");
    SAME(s, os, di / 8, "out_quant (s)");
    lm_int_act_pack(q, s, &eb, oq, os, Fo, di, ab);
    SAME(q, oqa, di, "out_pack (qa)");
    CHECK(eb == *oeb, "vectors: out_pack eb %d, dumped %d", eb, *oeb);
    lm_int_linear_fixed(w1, oqa, osa, *oeb, L->out_proj, LM_RES_F, L->dp);
    SAME(w1, op, sizeof(int32_t) * D, "out_proj");
    memcpy(w2, norm_in, sizeof(int32_t) * D);
    lm_int_residual_add(w2, op, D);
    SAME(w2, res, sizeof(int32_t) * D, "residual");
    int moved = 0;
    for (int i = 0; i < D; i++) moved += op[i] != 0;
    CHECK(moved > D / 2, "vectors: out_proj output mostly zero (%d of %d): degenerate", moved, D);

    void *all[] = {dsc, dw, norm_in, norm_out, iq, is, qa, sa, deb, zx, xq, xs, csq, coq, css, cos_, conv_out,
                   tok.u_q, tok.u_s, tok.z_q, tok.z_s, dtq, dts, tok.dA_q, tok.dA_s, tok.dB_q, tok.dB_s, st.h_q,
                   st.h_s, hoq, hos, y, yq, ys, gate, gn, had, oq, oqa, os, osa, oeb, op, res, w1, w2, q, q2, s, s2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    lm_int_scratch_free(ws);
    json_object_put(root);
    printf("vectors (layer %d, token %d, %d arrays): every unit reproduces from its dumped inputs\n", layer, (int)r.token,
           r.n_arrays);
}

/* The decode step's token is the greedy choice among the tokenizer's ids only: the tokenizer of
 * tiny has fewer ids than the model's padded rows (lm_token_candidates), and a dump restricted to
 * the ids below the unrestricted argmax g takes the argmax of [0, g) instead of g. */
static void test_vectors_candidates(const lm_model *m) {
    const int V = lm_model_config(m)->vocab_size;
    lm_tokenizer *tok = NULL;
    CHECK_OK(lm_tokenizer_init_for_model(&tok, m));
    if (!tok) return;
    const int n_tok = lm_token_candidates(m, tok);
    CHECK(n_tok == lm_tokenizer_vocab_size(tok) && n_tok < V, "candidates %d: tokenizer %d ids, model %d rows", n_tok,
          lm_tokenizer_vocab_size(tok), V);
    lm_tokenizer_free(tok);
    const int32_t prompt[5] = {510, 3158, 8516, 30013, 187};
    float *logits = run_logits(m, prompt, 5, 1, 0), *last = logits + 4 * (size_t)V;
    int g = 0, h = 0;
    for (int i = 1; i < V; i++) g = last[i] > last[g] ? i : g;
    for (int i = 1; i < g; i++) h = last[i] > last[h] ? i : h;
    CHECK(g > 0, "the greedy token is id 0: no smaller vocabulary to restrict to");
    char dir[256];
    lm_vectors_result r = {-1, 0};
    snprintf(dir, sizeof dir, "%s/vec_all", tmpdir);
    CHECK_OK(lm_vectors_dump(m, prompt, 5, n_tok, 0, dir, 1, &r));
    CHECK(r.token == g && g < n_tok, "vectors: token %d over the tokenizer's ids, argmax %d", (int)r.token, g);
    snprintf(dir, sizeof dir, "%s/vec_fewer", tmpdir);
    CHECK_OK(lm_vectors_dump(m, prompt, 5, g, 0, dir, 1, &r));
    CHECK(r.token == h, "vectors: token %d among ids [0, %d), argmax there %d", (int)r.token, g, h);
    free(logits);
    printf("vectors: the greedy token is chosen among the tokenizer's %d ids of %d rows (restricted: %d -> %d)\n",
           n_tok, V, g, h);
}

static void test_vectors_errors(const lm_model *m, const lm_model *float_model) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/vec_bad", tmpdir);
    const int32_t prompt[2] = {510, 3158};
    const int V = lm_model_config(m)->vocab_size;
    CHECK(lm_vectors_dump(m, prompt, 2, V, 99, dir, 1, NULL) == LM_ERR_ARG && strstr(lm_last_error(), "layer 99"),
          "vectors: a bad layer was accepted (%s)", lm_last_error());
    CHECK(lm_vectors_dump(m, prompt, 0, V, 0, dir, 1, NULL) == LM_ERR_ARG, "vectors: an empty prompt was accepted");
    CHECK(lm_vectors_dump(float_model, prompt, 2, V, 0, dir, 1, NULL) == LM_ERR_ARG && strstr(lm_last_error(), "pot8"),
          "vectors: a float model was accepted (%s)", lm_last_error());
    CHECK(lm_vectors_dump(m, prompt, 2, V, 0, tmpdir, 1, NULL) == LM_ERR_ARG && strstr(lm_last_error(), "exists"),
          "vectors: an existing directory was accepted (%s)", lm_last_error());
    CHECK(lm_vectors_dump(m, prompt, 2, 0, 0, dir, 1, NULL) == LM_ERR_ARG && strstr(lm_last_error(), "candidate"),
          "vectors: 0 candidate tokens accepted (%s)", lm_last_error());
    CHECK(lm_vectors_dump(m, prompt, 2, V + 1, 0, dir, 1, NULL) == LM_ERR_ARG && strstr(lm_last_error(), "candidate"),
          "vectors: more candidates than rows accepted (%s)", lm_last_error());
    CHECK(access(dir, F_OK) != 0, "vectors: a failed dump left %s", dir);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char model_dir[1024], p44[300], p88[300], prel[300];
    snprintf(model_dir, sizeof model_dir, "%s/models/mamba2-tiny", test_root());
    snprintf(p44, sizeof p44, "%s/lm44.lmq", tmpdir);
    snprintf(p88, sizeof p88, "%s/rtn88.lmq", tmpdir);
    snprintf(prel, sizeof prel, "%s/release.lmq", tmpdir);
    lm_model *src = NULL;
    CHECK_OK(lm_model_init(&src, model_dir));
    if (!src) return test_finish();
    lm_model *m44 = quantize_load(src, LM_QUANT_LIGHTMAMBA, 4, 4, 0, p44);   /* rotated: the online Hadamard */
    lm_model *m88 = quantize_load(src, LM_QUANT_RTN, 8, 8, 0, p88);          /* no rotation */
    lm_model *mrel = quantize_load(src, LM_QUANT_LIGHTMAMBA, 4, 4, LM_DP_RELEASE, prel);
    if (mrel) {
        CHECK(mrel->int_layers && mrel->int_layers[0].dp == LM_DP_RELEASE && mrel->int_layers[0].norm.rsqrt8,
              "release pot8: the datapath did not survive the file");
        test_determinism(mrel, "LightMamba* W4A4, release datapath");
        test_golden(mrel, "LightMamba* W4A4, release datapath");
        test_vectors(mrel, 2);
        test_file(mrel, prel);
    }
    lm_model_free(mrel);
    if (m44 && m88) {
        CHECK(m44->int_layers && m44->int_layers[0].rot_m > 0, "lightmamba pot8: no online Hadamard");
        CHECK(m88->int_layers && m88->int_layers[0].rot_m == 0, "rtn pot8: unexpected rotation");
        test_determinism(m44, "LightMamba* W4A4");
        test_determinism(m88, "RTN W8A8 pot8");
        test_golden(m44, "LightMamba* W4A4");
        test_golden(m88, "RTN W8A8 pot8");
        test_vectors(m44, 1);
        test_vectors(m88, 3);
        test_vectors_candidates(m44);
        test_vectors_errors(m44, src);
        test_file(m44, p44);
    }
    lm_model_free(m44);
    lm_model_free(m88);
    lm_model_free(src);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_finish();
}
