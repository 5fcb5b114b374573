/* The quantized model file: a written file loads back with the same settings, tensors and
 * tokenizer and runs; damaged files are refused with a clear error: a flipped byte in the data
 * or in the header, a truncated file, trailing bytes, a bad magic or version, and (with the
 * checksum recomputed, as a crafted file would have it) a tensor outside the file, an unknown
 * dtype, an out-of-range weight or exponent or activation format. The default settings are
 * written as version 1, the research activation formats as version 2, and both round-trip.
 * The integer embedding and lm_head (embedding_bits, head_bits 8, 4; version 2): they round-trip byte for byte,
 * lm_head's logits equal the exact product of its quantized input and dequantized weights and lie
 * within one activation step of the float input's, the embedding rows within half a weight step of
 * the float16 ones, and bad head settings are refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "model/model.h"
#include "common/crc32c.h"
#include "common/half.h"
#include "model/ops.h"
#include "model/qfile.h"

static char tmp_path[256];

static void write_bytes(const char *path, const unsigned char *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void fix_crc(unsigned char *d, size_t n) {
    memset(d + 24, 0, 4);
    uint32_t crc = lm_crc32c(0, d, n);
    memcpy(d + 24, &crc, 4);
}

/* The model in (d, n) must be refused with a message containing `expect`. */
static void expect_refused(const unsigned char *d, size_t n, const char *expect, const char *what) {
    write_bytes(tmp_path, d, n);
    lm_model *m = NULL;
    lm_status s = lm_model_init(&m, tmp_path);
    CHECK(s != LM_OK && m == NULL, "%s: accepted", what);
    CHECK(strstr(lm_last_error(), expect) != NULL, "%s: message '%s' lacks '%s'", what, lm_last_error(), expect);
    CHECK(strchr(lm_last_error(), '\n') == NULL, "%s: message not one line", what);
    lm_model_free(m);
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Offset of the table entry named `name` (the table starts at the header's offset 32). */
static size_t entry_of(const unsigned char *d, const char *name) {
    uint32_t n;
    memcpy(&n, d + 28, 4);
    size_t table = (size_t)get_u64(d + 32);
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp((const char *)d + table + 128 * i, name)) return table + 128 * i;
    fprintf(stderr, "no tensor %s\n", name);
    exit(1);
}

/* An integer lm_head on T tokens of random activations (a few outliers, as a rotated residual has
 * none but a smooth one has): each logit equals, bit for bit, the float rounding of the exact sum
 * over k of the quantized input (the contract: 8 bits per 8 channels, exponents no lower than the
 * token's largest minus 7) times the dequantized weight, and differs from the dequantized weights
 * times the float input by at most one activation step per channel. */
static void check_integer_head(const lm_model *qm, int wbits) {
    const lm_linear *head = &qm->lm_head;
    const int V = head->rows, D = head->cols, T = 3, G8 = (D + 7) / 8;
    CHECK(head->kind == LM_LINEAR_INT && head->q.wbits == wbits && head->abits == 8, "lm_head is not integer W%dA8", wbits);
    if (head->kind != LM_LINEAR_INT) return;
    float *x = malloc(sizeof(float) * T * D), *y = malloc(sizeof(float) * T * V), *w = malloc(sizeof(float) * D);
    double *xq = malloc(sizeof(double) * D), *step = malloc(sizeof(double) * D);
    uint32_t r = 12345;
    for (int i = 0; i < T * D; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * (i % 37 == 5 ? 40.0f : 2.0f);
    }
    lm_qact act;
    CHECK_OK(lm_qact_init(&act, T, D, 8, wbits));
    linear_forward(y, x, head, T, NULL, &act);
    int exact = 1;
    double worst = 0;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * D;
        int e_max = LM_ACT_EXP_ZERO;
        for (int g = 0; g < G8; g++) {
            float m = 0;
            for (int k = 8 * g; k < D && k < 8 * g + 8; k++) m = fmaxf(m, fabsf(xt[k]));
            int e = lm_act_exponent(m, 8);
            if (e > e_max) e_max = e;
        }
        for (int g = 0; g < G8; g++) {
            float m = 0;
            for (int k = 8 * g; k < D && k < 8 * g + 8; k++) m = fmaxf(m, fabsf(xt[k]));
            int e = lm_act_exponent(m, 8);
            if (e < e_max - 7) e = e_max - 7;
            for (int k = 8 * g; k < D && k < 8 * g + 8; k++) {
                xq[k] = ldexp(lm_act_quantize(xt[k], e, 8), e);
                step[k] = ldexp(1, e);
            }
        }
        for (int o = 0; o < V; o++) {
            lm_qweight_dequantize_rows(&head->q, o, o + 1, w);
            double sum_q = 0, sum_x = 0, bound = 0;
            for (int k = 0; k < D; k++) {
                sum_q += xq[k] * w[k]; /* exact: both are short multiples of powers of two */
                sum_x += (double)xt[k] * w[k];
                bound += fabs(w[k]) * step[k];
            }
            const float got = y[(size_t)t * V + o];
            if (got != (float)sum_q) exact = 0;
            const double dev = fabs(got - sum_x) - bound - 1e-6 * fabs(sum_x);
            if (dev > worst) worst = dev;
        }
    }
    CHECK(exact, "W%dA8 lm_head: a logit differs from the exact product of its quantized operands", wbits);
    CHECK(worst <= 0, "W%dA8 lm_head: a logit lies %g beyond one activation step of the float input's", wbits, worst);
    lm_qact_free(&act);
    free(x), free(y), free(w), free(xq), free(step);
}

/* Every row of qm's integer embedding lies within half a weight step (plus float16 rounding) of the
 * float16 embedding of f16m, computed from the same float weights, where it is not clipped at qmax. */
static void check_integer_embedding(const lm_model *qm, const lm_model *f16m) {
    const lm_qweight *e = &qm->embedding_q;
    CHECK(e->q && !qm->embedding && !qm->embedding_f16 && f16m->embedding_f16, "embeddings not held as expected");
    if (!e->q || !f16m->embedding_f16) return;
    const int V = e->rows, D = e->cols, qmax = lm_qmax(e->wbits);
    float *row = malloc(sizeof(float) * D);
    int8_t *q = malloc((size_t)D);
    int bad = 0;
    for (int32_t v = 0; v < V; v += 7) {
        embedding_forward(row, qm, &v, 1);
        lm_qweight_row(e, v, q);
        for (int k = 0; k < D; k++) {
            const float ref = lm_f16_to_f32(f16m->embedding_f16[(size_t)v * D + k]);
            const float s = lm_qweight_scale(e, v, k / LM_WEIGHT_GROUP);
            if (row[k] != q[k] * s) bad++;
            else if (abs(q[k]) < qmax && fabsf(row[k] - ref) > 0.5f * s + fabsf(ref) * 0x1p-10f) bad++;
        }
    }
    CHECK(!bad, "%d embedding values off their float16 value by more than half a step", bad);
    free(row), free(q);
}

/* lm_head and embedding formats 8/8 (lightmamba: untied by the rotation), 4/4 (rtn: tied) and 4/8 (rtn:
 * untied, the formats differ): written as version 2 with the formats at offsets 164 and 168, the
 * integer tensors named prefix.qweight/.scales/.e0; loaded, the model runs and writes the same bytes
 * back; damaged format settings or tensors are refused. */
static void check_head_formats(const lm_model *fm, const lm_model *f16m, const char *path, const char *path2) {
    const int formats[3][2] = {{8, 8}, {4, 4}, {4, 8}};
    for (int i = 0; i < 3; i++) {
        const int hb = formats[i][0], eb = formats[i][1];
        lm_quant_settings h = lm_quant_defaults();
        h.head_bits = hb;
        h.embedding_bits = eb;
        if (i) h.method = LM_QUANT_RTN; /* the float model is tied */
        lm_model *hm = NULL;
        CHECK_OK(lm_quantize(fm, &h, NULL, 2, path, NULL, NULL));
        CHECK_OK(lm_model_init(&hm, path));
        if (!hm) return;
        CHECK(lm_model_quant(hm)->head_bits == hb && lm_model_quant(hm)->embedding_bits == eb,
              "formats %d/%d did not round-trip", hb, eb);
        CHECK(hm->embedding_q.q && hm->embedding_q.wbits == eb, "embedding is not %d-bit", eb);
        check_integer_head(hm, hb);
        if (i == 0) check_integer_embedding(hm, f16m);
        if (i == 1) CHECK(hm->cfg.tie_embeddings && hm->lm_head.q.q == hm->embedding_q.q, "the tied 4-bit lm_head is not the embedding");
        if (i == 2) CHECK(!hm->cfg.tie_embeddings && hm->lm_head.q.q != hm->embedding_q.q, "lm_head 4 / embedding 8 not untied");
        lm_session *s;
        float *logits = malloc(sizeof(float) * (size_t)hm->cfg.vocab_size);
        CHECK_OK(test_session(&s, hm, 1));
        CHECK_OK(lm_session_forward(s, (const int32_t[]){510, 3100, 13}, 3, NULL, logits));
        CHECK(isfinite(logits[0]) && isfinite(logits[hm->cfg.vocab_size - 1]), "non-finite logits");
        lm_session_free(s);
        free(logits);
        /* the loaded model written again: the same bytes */
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(lm_qfile_write(path2, hm, hm->tokenizer_json, hm->tokenizer_json_len));
        CHECK_OK(lm_read_file(path, &a, &na));
        CHECK_OK(lm_read_file(path2, &b, &nb));
        CHECK(a && b && na == nb && !memcmp(a, b, na), "head %d: the loaded model does not write the same bytes", hb);
        unsigned char *d = (unsigned char *)a;
        CHECK(d[8] == 2 && d[164] == hb && d[168] == eb, "formats %d/%d: version %d, fields %d, %d", hb, eb, d[8], d[164], d[168]);
        lm_model_free(hm);
        if (a && i == 1) { /* tied: the formats must agree */
            d[168] = 8; fix_crc(d, na);
            expect_refused(d, na, "tied lm_head (format 4) must have the embedding's format (8)", "tied, formats differ");
        }
        if (!a || i != 0) {
            free(a), free(b);
            continue;
        }
        unsigned char *orig = malloc(na);
        memcpy(orig, d, na);
        d[164] = 5; fix_crc(d, na);
        expect_refused(d, na, "head format 5", "head format 5");
        memcpy(d, orig, na); d[164] = 4; fix_crc(d, na); /* 4 bits said, Q8 stored */
        expect_refused(d, na, "wrong dtype or shape", "head format against the stored dtype");
        memcpy(d, orig, na); d[168] = 6; fix_crc(d, na);
        expect_refused(d, na, "embedding format 6", "embedding format 6");
        memcpy(d, orig, na); d[168] = 0; fix_crc(d, na);
        expect_refused(d, na, "embeddings.weight is missing", "integer embedding read as float16");
        memcpy(d, orig, na); d[8] = 1; d[156] = 0; d[164] = 0; d[168] = 0; fix_crc(d, na);
        expect_refused(d, na, "embeddings.weight is missing", "version 1 with integer tensors");
        memcpy(d, orig, na); d[8] = 1; d[156] = 0; d[168] = 0; fix_crc(d, na);
        expect_refused(d, na, "reserved settings", "a version-1 file with a head format");
        const size_t qw = entry_of(orig, "lm_head.qweight");
        memcpy(d, orig, na); memset(d + qw, 0, 80); strcpy((char *)d + qw, "lm_head.weight"); fix_crc(d, na);
        expect_refused(d, na, "lm_head.qweight is missing", "a float lm_head name under head format 8");
        memcpy(d, orig, na); d[get_u64(orig + qw + 120) + 3] = 0x80; fix_crc(d, na);
        expect_refused(d, na, "outside [-127, 127]", "lm_head weight -128");
        free(orig), free(a), free(b);
    }
    lm_quant_settings bad = lm_quant_defaults();
    bad.head_bits = 6;
    CHECK(lm_quantize(fm, &bad, NULL, 1, path, NULL, NULL) == LM_ERR_ARG, "head format 6 accepted");
    bad = lm_quant_defaults();
    bad.embedding_bits = 2;
    CHECK(lm_quantize(fm, &bad, NULL, 1, path, NULL, NULL) == LM_ERR_ARG, "embedding format 2 accepted");
}

int main(void) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char qpath[256], qpath2[256];
    snprintf(qpath, sizeof qpath, "%s/lm_test_qfile_%d.lmq", tmp, (int)getpid());
    snprintf(qpath2, sizeof qpath2, "%s/lm_test_qfile_again_%d.lmq", tmp, (int)getpid());
    snprintf(tmp_path, sizeof tmp_path, "%s/lm_test_qfile_bad_%d.lmq", tmp, (int)getpid());
    char *dir = lm_path_join(test_root(), "models/mamba2-tiny");
    lm_model *fm = NULL, *qm = NULL;
    CHECK_OK(lm_model_init(&fm, dir));
    if (test_failures) return test_finish();

    /* Write (lightmamba W4A4 round to nearest: no calibration needed) and load back. */
    lm_quant_settings q = lm_quant_defaults();
    CHECK_OK(lm_quantize(fm, &q, NULL, 1, qpath, NULL, NULL));
    CHECK_OK(lm_model_init(&qm, qpath));
    if (test_failures) return test_finish();
    const lm_quant_settings *lq = lm_model_quant(qm);
    CHECK(lq->method == LM_QUANT_LIGHTMAMBA && lq->wbits == 4 && lq->abits == 4 && lq->rotated && !lq->gptq &&
              lq->ssm_mode == LM_SSM_FLOAT && lq->act_group == 8 && lq->act_scale == LM_ACT_SCALE_POW2,
          "settings did not round-trip");
    CHECK(memcmp(&qm->cfg.d_model, &fm->cfg.d_model, sizeof(int) * 9) == 0 && qm->cfg.eps == fm->cfg.eps,
          "config did not round-trip");
    CHECK(qm->layers[0].in_proj.kind == LM_LINEAR_INT && qm->layers[3].out_proj.kind == LM_LINEAR_INT &&
              qm->layers[0].in_proj.q.wbits == 4 && qm->layers[0].in_proj.abits == 4 && qm->rot_inner,
          "integer layers or rotation missing");
    CHECK(!qm->cfg.tie_embeddings && qm->lm_head.kind == LM_LINEAR_F16 && qm->lm_head.w16 != qm->embedding_f16,
          "lm_head not untied after folding norm_f");
    /* Integer weights are used in place from the memory map, 64-byte aligned. */
    const unsigned char *q0 = qm->layers[0].in_proj.q.q;
    CHECK(q0 >= qm->qfile.data && q0 < qm->qfile.data + qm->qfile.size && (uintptr_t)q0 % 64 == 0,
          "weights not mapped in place");

    /* It runs: on a passage of WikiText-2, a finite mean loss close to the float model's. */
    char *tok_file = lm_path_join(dir, "reference/tokens.i32"), *tok_raw;
    size_t tok_len;
    CHECK_OK(lm_read_file(tok_file, &tok_raw, &tok_len));
    const int32_t *ids = (const int32_t *)tok_raw;
    const int N = 64, V = fm->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * N * V);
    double nll[2] = {0, 0};
    for (int which = 0; which < 2; which++) {
        lm_session *s;
        CHECK_OK(test_session(&s, which ? qm : fm, 1));
        CHECK_OK(lm_session_forward(s, ids, (size_t)N, logits, NULL));
        lm_session_free(s);
        for (int i = 0; i + 1 < N; i++) nll[which] += lm_nll(logits + (size_t)i * V, V, ids[i + 1]) / (N - 1);
    }
    printf("mean nll over %d tokens: float %.4f, lightmamba W4A4 %.4f\n", N - 1, nll[0], nll[1]);
    CHECK(nll[1] == nll[1] && nll[1] < nll[0] + 0.5 && nll[1] > nll[0] - 0.5, "quantized nll %g vs float %g", nll[1], nll[0]);
    free(logits);
    free(tok_raw);
    free(tok_file);

    /* The embedded tokenizer encodes as the tokenizer.json it came from. */
    lm_tokenizer *t1, *t2;
    CHECK_OK(lm_tokenizer_init_for_model(&t1, qm));
    CHECK_OK(lm_tokenizer_init_for_model(&t2, fm));
    const char text[] = "The history of the city, 1913 Webster.";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(lm_tokenizer_encode(t1, text, sizeof text - 1, &a, &na));
    CHECK_OK(lm_tokenizer_encode(t2, text, sizeof text - 1, &b, &nb));
    CHECK(na == nb && na && memcmp(a, b, na * sizeof *a) == 0, "embedded tokenizer differs");
    free(a), free(b);
    lm_tokenizer_free(t1);
    lm_tokenizer_free(t2);

    /* Damage. */
    char *raw;
    size_t n;
    CHECK_OK(lm_read_file(qpath, &raw, &n));
    unsigned char *d = malloc(n + 16), *orig = (unsigned char *)raw;
    size_t qw = entry_of(orig, "backbone.layers.1.mixer.in_proj.qweight");
    size_t qw_data = (size_t)get_u64(orig + qw + 120);

#define RESET() memcpy(d, orig, n)
    RESET(); d[qw_data + 17] ^= 0x40;
    expect_refused(d, n, "checksum mismatch", "flipped data byte");
    RESET(); d[n - 1] ^= 1;
    expect_refused(d, n, "checksum mismatch", "flipped last byte");
    RESET(); d[60] ^= 1; /* inside the config */
    expect_refused(d, n, "checksum mismatch", "flipped header byte");
    RESET(); d[qw + 3] ^= 1; /* inside a tensor name */
    expect_refused(d, n, "checksum mismatch", "flipped table byte");
    RESET(); d[0] = 'X';
    expect_refused(d, n, "magic", "bad magic");
    RESET();
    expect_refused(d, n - 100, "truncated", "truncated data");
    expect_refused(d, 200, "truncated", "truncated header");
    expect_refused(d, 3, "magic", "3-byte file");
    expect_refused(d, 0, "magic", "empty file");
    RESET(); memset(d + n, 0, 16);
    expect_refused(d, n + 16, "trailing data", "trailing bytes");
    RESET(); d[8] = 9; fix_crc(d, n);
    expect_refused(d, n, "version 9", "future version");
    RESET(); memcpy(d + qw + 120, &(uint64_t){n - 64}, 8); fix_crc(d, n);
    expect_refused(d, n, "outside the file", "tensor past the end");
    RESET(); memcpy(d + qw + 120, &(uint64_t){qw_data + 1}, 8); fix_crc(d, n);
    expect_refused(d, n, "misaligned", "misaligned tensor");
    RESET(); memcpy(d + qw + 88, &(uint64_t){1ull << 62}, 8); fix_crc(d, n);
    expect_refused(d, n, "invalid shape", "huge shape");
    RESET(); d[qw + 80] = 77; fix_crc(d, n);
    expect_refused(d, n, "unknown dtype", "unknown dtype");
    RESET(); d[qw + 80] = 3; fix_crc(d, n); /* Q8 where the settings say 4-bit */
    expect_refused(d, n, "wrong dtype or shape", "dtype against settings");
    RESET(); d[qw_data] = 0x08; fix_crc(d, n); /* nibble -8 */
    expect_refused(d, n, "outside [-7, 7]", "weight -8");
    size_t sc = entry_of(orig, "backbone.layers.2.mixer.out_proj.scales");
    RESET(); d[get_u64(orig + sc + 120)] = 0x80; fix_crc(d, n);
    expect_refused(d, n, "exponent above 7", "scale exponent 8");
    RESET(); memset(d + qw, 0, 80); strcpy((char *)d + qw, "something.else"); fix_crc(d, n);
    expect_refused(d, n, "in_proj.qweight is missing", "missing tensor");
    RESET(); memset(d + qw, 'a', 80); fix_crc(d, n);
    expect_refused(d, n, "unterminated name", "unterminated name");
    RESET(); d[56] = 0; d[57] = 0; fix_crc(d, n); /* d_model 0 */
    expect_refused(d, n, "d_model", "bad config");
    RESET(); d[116 + 4 * 5] = 2; fix_crc(d, n); /* an SSM mode this build lacks (1 is pot8) */
    expect_refused(d, n, "SSM mode", "unknown SSM mode");
    RESET(); d[116 + 4 * 5] = 1; fix_crc(d, n); /* pot8 without its integer tensors */
    expect_refused(d, n, "mixer.int.scalars is missing", "pot8 without integer tensors");
    RESET(); d[116 + 4] = 5; fix_crc(d, n);
    expect_refused(d, n, "bits", "5-bit weights");
    /* The default file is version 1: its fields at 152-160 (datapath, activation format) are
     * reserved there and must be zero; version 2 gives them meaning. */
    RESET(); d[160] = 1; fix_crc(d, n);
    expect_refused(d, n, "reserved settings", "a version-1 file with an activation scale type");
    RESET(); d[152] = 1; fix_crc(d, n);
    expect_refused(d, n, "do not fit format version 1", "a version-1 file with datapath flags");
    RESET(); d[8] = 2; d[156] = 24; fix_crc(d, n);
    expect_refused(d, n, "activation group 24", "activation group 24");
    RESET(); d[8] = 2; d[156] = 8; d[160] = 2; fix_crc(d, n);
    expect_refused(d, n, "scale type 2", "activation scale type 2");
    RESET(); d[8] = 2; d[152] = 63; d[156] = 8; fix_crc(d, n);
    expect_refused(d, n, "do not fit format version 2", "release datapath flags without pot8");
    /* The same settings written as version 2 load alike. */
    RESET(); d[8] = 2; d[156] = 8; fix_crc(d, n);
    write_bytes(tmp_path, d, n);
    lm_model *v2 = NULL;
    CHECK_OK(lm_model_init(&v2, tmp_path));
    CHECK(v2 && lm_model_quant(v2)->act_group == 8 && lm_model_quant(v2)->act_scale == LM_ACT_SCALE_POW2 &&
              lm_model_quant(v2)->datapath == 0,
          "a version-2 file of the default settings did not load as them");
    lm_model_free(v2);
    RESET(); fix_crc(d, n); /* sanity: the untouched bytes load */
    write_bytes(tmp_path, d, n);
    lm_model *ok = NULL;
    CHECK_OK(lm_model_init(&ok, tmp_path));
    lm_model_free(ok);

    /* The research activation formats round-trip; pot8 takes only the hardware's. */
    const int groups[] = {16, 128, LM_ACT_PER_TOKEN};
    for (int i = 0; i < 3; i++) {
        lm_quant_settings r = q;
        r.act_group = groups[i];
        r.act_scale = i == 2 ? LM_ACT_SCALE_REAL : LM_ACT_SCALE_POW2;
        lm_model *rm = NULL;
        CHECK_OK(lm_quantize(fm, &r, NULL, 1, tmp_path, NULL, NULL));
        CHECK_OK(lm_model_init(&rm, tmp_path));
        CHECK(rm && lm_model_quant(rm)->act_group == r.act_group && lm_model_quant(rm)->act_scale == r.act_scale,
              "activation format %d/%d did not round-trip", r.act_group, (int)r.act_scale);
        lm_model_free(rm);
    }
    lm_quant_settings bad = q;
    bad.act_group = 48;
    CHECK(lm_quantize(fm, &bad, NULL, 1, tmp_path, NULL, NULL) == LM_ERR_ARG, "activation group 48 accepted");
    bad = q;
    bad.ssm_mode = LM_SSM_POT8;
    bad.act_scale = LM_ACT_SCALE_REAL;
    CHECK(lm_quantize(fm, &bad, NULL, 1, tmp_path, NULL, NULL) == LM_ERR_UNSUPPORTED, "pot8 with real scales accepted");

    check_head_formats(fm, qm, tmp_path, qpath2);

    /* A quantized model is not quantized again. */
    CHECK(lm_quantize(qm, &q, NULL, 1, tmp_path, NULL, NULL) != LM_OK, "re-quantizing accepted");
    /* A failed write leaves no file. */
    CHECK(lm_quantize(fm, &q, NULL, 1, "/nonexistent-dir/x.lmq", NULL, NULL) != LM_OK && !lm_file_exists("/nonexistent-dir/x.lmq"),
          "write into a missing directory");

    unlink(qpath);
    unlink(qpath2);
    unlink(tmp_path);
    free(d), free(raw), free(dir);
    lm_model_free(qm);
    lm_model_free(fm);
    return test_finish();
}
