/* The quantized model file: a written file loads back with the same settings, tensors and
 * tokenizer and runs; damaged files are refused with a clear error: a flipped byte in the data
 * or in the header, a truncated file, trailing bytes, a bad magic or version, and (with the
 * checksum recomputed, as a crafted file would have it) a tensor outside the file, an unknown
 * dtype, an out-of-range weight or exponent or activation format. The default settings are
 * written as version 1, the research activation formats as version 2, and both round-trip. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "model/model.h"
#include "common/crc32c.h"
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

int main(void) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char qpath[256];
    snprintf(qpath, sizeof qpath, "%s/lm_test_qfile_%d.lmq", tmp, (int)getpid());
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

    /* A quantized model is not quantized again. */
    CHECK(lm_quantize(qm, &q, NULL, 1, tmp_path, NULL, NULL) != LM_OK, "re-quantizing accepted");
    /* A failed write leaves no file. */
    CHECK(lm_quantize(fm, &q, NULL, 1, "/nonexistent-dir/x.lmq", NULL, NULL) != LM_OK && !lm_file_exists("/nonexistent-dir/x.lmq"),
          "write into a missing directory");

    unlink(qpath);
    unlink(tmp_path);
    free(d), free(raw), free(dir);
    lm_model_free(qm);
    lm_model_free(fm);
    return test_finish();
}
