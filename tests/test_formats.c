/* Checkpoint formats (docs/checkpoint-formats.md): the fixtures in tests/data/formats (made by
 * scripts/make_format_fixtures.py) hold the same weights as PyTorch zip files, safetensors and
 * GGUF files written byte by byte from the specification; every format must give the same
 * logits (bit for bit for float weights, Q8_0 within its rounding), our GGUF writer must
 * round-trip models and tokenizers, and damaged files must fail with one-line errors. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "format/gguf.h"
#include "format/pickle.h"
#include "format/torchzip.h"
#include "model/model.h"
#include "synth_checkpoint.h"

static char tmp[64];

static const char *fixture(const char *name) {
    static char buf[16][512]; /* a few names live at once */
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/tests/data/formats/%s", test_root(), name);
    return buf[k];
}

static const char *tmp_file(const char *name) {
    static char buf[16][256];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

static lm_model *load(const char *path) {
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    return m;
}

/* Logits [n, vocab] after each of the tokens. */
enum { N_TOKENS = 16 };
static const int32_t tokens[N_TOKENS] = {1, 5, 17, 42, 100, 200, 259, 3, 3, 64, 128, 7, 250, 31, 0, 99};

static float *logits_of(const lm_model *m) {
    lm_session *s = NULL;
    float *out = malloc((size_t)N_TOKENS * (size_t)lm_model_config(m)->vocab_size * sizeof *out);
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = 1;
    CHECK_OK(lm_session_init(&s, m, &sp));
    if (s && out) CHECK_OK(lm_session_forward(s, tokens, N_TOKENS, out, NULL));
    lm_session_free(s);
    return out;
}

/* Same configuration and bit-identical logits. */
static void check_same(const char *what, const lm_model *a, const lm_model *b) {
    if (!a || !b) return;
    CHECK(!memcmp(lm_model_config(a), lm_model_config(b), sizeof(lm_config)), "%s: configurations differ", what);
    float *la = logits_of(a), *lb = logits_of(b);
    size_t n = (size_t)N_TOKENS * (size_t)lm_model_config(a)->vocab_size;
    CHECK(la && lb && !memcmp(la, lb, n * sizeof *la), "%s: logits differ", what);
    free(la);
    free(lb);
}

static void check_format(const lm_model *m, const char *want) {
    if (m) CHECK(!strcmp(lm_model_format(m), want), "format %s, want %s", lm_model_format(m), want);
}

/* A reference model and the same weights in other files. */
static void check_all_same(const char *ref_path, const char *ref_format, const char *const *paths, const char *const *formats,
                           int n) {
    lm_model *ref = load(ref_path);
    check_format(ref, ref_format);
    for (int i = 0; i < n; i++) {
        lm_model *m = load(paths[i]);
        check_format(m, formats[i]);
        check_same(paths[i], ref, m);
        lm_model_free(m);
    }
    lm_model_free(ref);
}

/* tiny.gguf's small tokenizer (261 tokens) as tokenizer.json bytes: the bundled one has more
 * tokens than the fixtures' 264 or 272 embedding rows. */
static char *small_tokenizer;
static size_t small_tokenizer_len;

static void read_small_tokenizer(void) {
    lm_model *m = load(fixture("tiny.gguf"));
    if (m) CHECK_OK(lm_model_tokenizer_json(m, &small_tokenizer, &small_tokenizer_len));
    lm_model_free(m);
}

/* Converts a model, a fixture with the small tokenizer (a model's own embedded one stays). */
static void convert(const char *model, lm_gguf_weights w, const char *out, int small) {
    lm_model *m = load(model);
    if (m && small && !m->tokenizer_json) {
        m->tokenizer_json = small_tokenizer;
        m->tokenizer_json_len = small_tokenizer_len;
    }
    if (m) CHECK_OK(lm_model_write_gguf(m, w, out));
    lm_model_free(m);
}

static lm_tokenizer *tokenizer_of(const char *model_path) {
    lm_model *m = load(model_path);
    lm_tokenizer *t = NULL;
    if (m) CHECK_OK(lm_tokenizer_init_for_model(&t, m));
    lm_model_free(m);
    return t;
}

/* tiny: state-spaces keys, F32 + BF16, tied; grouped: 2 groups, HF keys, F16 views of one storage. */
static void test_same_logits(void) {
    const char *tiny[] = {fixture("tiny-torch"), fixture("tiny-torch/pytorch_model.bin"), fixture("tiny.gguf"),
                          tmp_file("tiny-f32.gguf")};
    const char *tiny_formats[] = {"pytorch", "pytorch", "gguf", "gguf"};
    convert(fixture("tiny-safetensors"), LM_GGUF_WEIGHTS_F32, tiny[3], 1);
    check_all_same(fixture("tiny-safetensors"), "safetensors", tiny, tiny_formats, 4);

    const char *grouped[] = {fixture("grouped-torch"), tmp_file("grouped-f16.gguf")};
    const char *grouped_formats[] = {"pytorch", "gguf"};
    convert(fixture("grouped-torch"), LM_GGUF_WEIGHTS_F16, grouped[1], 1);
    check_all_same(fixture("grouped-safetensors"), "safetensors", grouped, grouped_formats, 2);
}

/* Not torch.save's output, but a valid zip of the same entries deflated: read into memory. */
static void test_deflated(void) {
    lm_mapping map = {0};
    lm_torch_checkpoint ck = {0};
    CHECK_OK(lm_map_file(fixture("deflated.pt"), &map));
    CHECK_OK(lm_torch_read(&ck, map.data, map.size, "deflated.pt"));
    CHECK(ck.n_tensors == 1 && ck.n_owned == 2 && ck.tensors[0].numel == 8, "%d tensors, %d inflated", ck.n_tensors,
          ck.n_owned);
    if (ck.n_tensors == 1 && ck.tensors[0].numel == 8) {
        float v[8];
        lm_st_tensor_to_f32(v, &ck.tensors[0]);
        for (int i = 0; i < 8; i++) CHECK(v[i] == (float)i, "w[%d] = %g", i, v[i]);
    }
    lm_torch_free(&ck);
    lm_unmap_file(&map);
}

/* Every dequantized weight is within Q8_0's rounding of the float one: per block of 32,
 * |w - d16 q| <= |d - d16| 127 + d / 2 <= 0.5625 d with d = max|w| / 127. */
static double q8_worst(const float *w, const float *deq, size_t n) {
    double worst = 0;
    for (size_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(w[32 * b + (size_t)j]));
        for (int j = 0; j < 32; j++) {
            double err = fabs((double)w[32 * b + (size_t)j] - deq[32 * b + (size_t)j]);
            if (amax > 0) worst = fmax(worst, err / (amax / 127.0));
            else if (err > 0) worst = INFINITY;
        }
    }
    return worst;
}

static void test_q8_0(void) {
    convert(fixture("grouped-safetensors"), LM_GGUF_WEIGHTS_Q8_0, tmp_file("grouped-q8_0.gguf"), 1);
    lm_model *f = load(fixture("grouped-safetensors")), *ours = load(tmp_file("grouped-q8_0.gguf")),
             *spec = load(fixture("grouped-q8_0.gguf"));
    /* Our writer rounds exactly as ggml's reference (the fixture's bytes come from a Python port). */
    check_same("Q8_0: ours vs the fixture", spec, ours);
    if (f && ours) {
        const lm_config *c = &f->cfg;
        const size_t in_rows = 2 * (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state + (size_t)c->n_heads;
        double worst = fmax(q8_worst(f->embedding, ours->embedding, (size_t)c->vocab_size * c->d_model),
                            q8_worst(f->lm_head.w, ours->lm_head.w, (size_t)c->vocab_size * c->d_model));
        for (int i = 0; i < c->n_layer; i++) {
            worst = fmax(worst, q8_worst(f->layers[i].in_proj.w, ours->layers[i].in_proj.w, in_rows * c->d_model));
            worst = fmax(worst, q8_worst(f->layers[i].out_proj.w, ours->layers[i].out_proj.w,
                                         (size_t)c->d_model * c->d_inner));
        }
        CHECK(worst <= 0.5625, "Q8_0 error %.4f x max|w|/127, beyond its rounding", worst);
        CHECK(worst > 0.1, "Q8_0 error %.4f x max|w|/127: the weights were not quantized", worst);
        CHECK(!strcmp(lm_model_tensor(ours, 0)->dtype, "Q8_0") || !strcmp(lm_model_tensor(ours, 1)->dtype, "Q8_0"),
              "no Q8_0 tensor in the table");
    }
    lm_model_free(f);
    lm_model_free(ours);
    lm_model_free(spec);
}

static void check_ids(const lm_tokenizer *t, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(lm_tokenizer_encode(t, text, strlen(text), &ids, &n));
    CHECK(n == n_want && (!n || !memcmp(ids, want, n * sizeof *ids)), "\"%s\": %zu ids, want %zu", text, n, n_want);
    char *back = NULL;
    size_t len = 0;
    CHECK_OK(lm_tokenizer_decode(t, ids, n, &back, &len));
    CHECK(back && !strcmp(back, text), "\"%s\" decodes to \"%s\"", text, back ? back : "");
    free(back);
    free(ids);
}

/* tiny.gguf's hand-written tokenizer: bytes are ids 0..255, 256 <|endoftext|> (control),
 * merges "h e" -> 257, "Ġ t" -> 258, "Ġt he" -> 259, 260 "  " (user-defined), 261.. unused. */
static void test_gguf_tokenizer(void) {
    lm_tokenizer *t = tokenizer_of(fixture("tiny.gguf"));
    if (!t) return;
    CHECK(lm_tokenizer_vocab_size(t) == 261, "vocab %d, want 261 (trailing unused tokens dropped)",
          lm_tokenizer_vocab_size(t));
    const int32_t want[] = {116, 257, 32, 257, 108, 108, 111, 259, 256, 97, 260, 98};
    check_ids(t, "the hello the<|endoftext|>a  b", want, sizeof want / sizeof *want);
    lm_tokenizer_free(t);
}

/* The bundled GPT-NeoX tokenizer written into a GGUF by convert and read back encodes the same;
 * the real tiny model converted to F32 and F16 gives its logits bit for bit. */
static void test_roundtrip_tiny_model(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/mamba2-tiny", test_root());
    const char *paths[] = {tmp_file("mamba2-tiny-f32.gguf"), tmp_file("mamba2-tiny-f16.gguf")};
    const char *formats[] = {"gguf", "gguf"};
    convert(dir, LM_GGUF_WEIGHTS_F32, paths[0], 0);
    convert(dir, LM_GGUF_WEIGHTS_F16, paths[1], 0); /* its weights are float16: still exact */
    check_all_same(dir, "safetensors", paths, formats, 2);

    lm_model *m = load(paths[1]);
    CHECK(m && !strcmp(lm_model_tokenizer_path(m), paths[1]), "the GGUF's own tokenizer is not used");
    lm_model_free(m);
    lm_tokenizer *ref = NULL, *t = tokenizer_of(paths[1]);
    CHECK_OK(lm_tokenizer_init(&ref, NULL));
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/data/wikitext2_test.txt", test_root());
    CHECK_OK(lm_read_file(path, &text, &len));
    if (ref && t && text) {
        CHECK(lm_tokenizer_vocab_size(t) == lm_tokenizer_vocab_size(ref), "vocab %d vs %d", lm_tokenizer_vocab_size(t),
              lm_tokenizer_vocab_size(ref));
        size_t n = len < 200000 ? len : 200000;
        while (n < len && ((unsigned char)text[n] & 0xC0) == 0x80) n++; /* whole characters */
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(lm_tokenizer_encode(ref, text, n, &a, &na));
        CHECK_OK(lm_tokenizer_encode(t, text, n, &b, &nb));
        CHECK(na == nb && a && b && !memcmp(a, b, na * sizeof *a), "GGUF tokenizer: %zu ids vs %zu, or different", nb,
              na);
        const char *special = "<|endoftext|>x    y<|padding|>";
        free(a), free(b);
        CHECK_OK(lm_tokenizer_encode(ref, special, strlen(special), &a, &na));
        CHECK_OK(lm_tokenizer_encode(t, special, strlen(special), &b, &nb));
        CHECK(na == nb && a && b && !memcmp(a, b, na * sizeof *a), "added tokens encode differently");
        free(a), free(b);
    }
    free(text);
    lm_tokenizer_free(ref);
    lm_tokenizer_free(t);
}

/* ---- bad input ---- */

static void check_error(const char *what, lm_status s, lm_status want, const char *word) {
    const char *e = lm_last_error();
    CHECK(s == want, "%s: status %d, want %d (%s)", what, s, want, e);
    CHECK(strstr(e, word), "%s: error does not mention '%s': %s", what, word, e);
    CHECK(!strchr(e, '\n'), "%s: error is not one line", what);
    if (s == want) printf("ok: %s: %s\n", what, e);
}

static void check_model_error(const char *path, lm_status want, const char *word) {
    lm_model *m = (lm_model *)1;
    lm_status s = lm_model_init(&m, path);
    CHECK(!m, "%s: model not NULL after failure", path);
    check_error(path, s, want, word);
    if (!s) lm_model_free(m);
}

static void check_pickle_error(const char *what, const char *bytes, size_t len, lm_status want, const char *word) {
    lm_state_dict sd;
    check_error(what, lm_pickle_read_state_dict(&sd, (const unsigned char *)bytes, len, "test.pkl"), want, word);
}

static void test_bad_pickles(void) {
#define PICKLE(s) s, sizeof s - 1
    check_pickle_error("forbidden global", PICKLE("\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R."),
                       LM_ERR_UNSUPPORTED, "forbidden global os.system");
    check_pickle_error("unknown opcode", PICKLE("\x80\x02}q\x00(X\x01\x00\x00\x00wG@\x00\x00\x00\x00\x00\x00\x00u."),
                       LM_ERR_UNSUPPORTED, "opcode 0x47");
    check_pickle_error("protocol 4", PICKLE("\x80\x04}."), LM_ERR_UNSUPPORTED, "protocol 4");
    check_pickle_error("not a pickle", PICKLE("PK\x03\x04"), LM_ERR_FORMAT, "not a pickle");
    check_pickle_error("truncated string", PICKLE("\x80\x02X\xff\xff\xff\x00" "abc"), LM_ERR_FORMAT, "truncated");
    check_pickle_error("memo read first", PICKLE("\x80\x02h\x05."), LM_ERR_FORMAT, "memo");
    check_pickle_error("stack underflow", PICKLE("\x80\x02R."), LM_ERR_FORMAT, "underflow");
    check_pickle_error("no STOP", PICKLE("\x80\x02}"), LM_ERR_FORMAT, "STOP");
    check_pickle_error("a dict of ints", PICKLE("\x80\x02}X\x01\x00\x00\x00wK\x03s."), LM_ERR_FORMAT, "not a tensor");
    check_pickle_error("a tuple", PICKLE("\x80\x02K\x01\x85."), LM_ERR_FORMAT, "builds a tuple");
    /* Found by fuzz_pickle: MARK TUPLE (an empty tuple) copied 0 bytes from a NULL item array (UB). */
    check_pickle_error("an empty tuple", PICKLE("\x80\x02(t."), LM_ERR_FORMAT, "builds a tuple");
#undef PICKLE
    const char *const bad[][3] = {
        {"bad/not-a-dict.pt", "builds a tensor", "format"},  {"bad/dict-of-int.pt", "not a tensor", "format"},
        {"bad/entry-out-of-range.pt", "out of range", "format"}, {"bad/storage-short.pt", "shorter than", "format"},
        {"bad/storage-missing.pt", "is missing", "format"},  {"bad/non-contiguous.pt", "non-contiguous", "unsupported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        check_model_error(fixture(bad[i][0]), strcmp(bad[i][2], "format") ? LM_ERR_UNSUPPORTED : LM_ERR_FORMAT,
                          bad[i][1]);
}

/* A little-endian byte buffer for hand-made GGUF headers. */
typedef struct {
    unsigned char b[4096];
    size_t n;
} bytes;

static void put(bytes *x, uint64_t v, int size) {
    for (int i = 0; i < size; i++) x->b[x->n++] = (unsigned char)(v >> (8 * i));
}

static void put_str(bytes *x, const char *s) {
    put(x, strlen(s), 8);
    memcpy(x->b + x->n, s, strlen(s));
    x->n += strlen(s);
}

static void gguf_head(bytes *x, uint64_t n_tensors, uint64_t n_kv) {
    memcpy(x->b, "GGUF", 4);
    x->n = 4;
    put(x, 3, 4);
    put(x, n_tensors, 8);
    put(x, n_kv, 8);
}

static void check_gguf_error(const char *what, const bytes *x, const char *word) {
    lm_gguf g;
    check_error(what, lm_gguf_parse(&g, x->b, x->n, "test.gguf"), LM_ERR_FORMAT, word);
}

/* A copy of tiny.gguf with `from` replaced by `to` (same length) at its first occurrence after
 * `after`, or truncated by `cut` bytes. */
static const char *patched_tiny(const char *name, const char *after, const void *from, const void *to, size_t len,
                                size_t cut) {
    char *data;
    size_t size;
    const char *out = tmp_file(name);
    if (lm_read_file(fixture("tiny.gguf"), &data, &size)) return out;
    char *at = after ? memmem(data, size, after, strlen(after)) : data;
    char *hit = at && from ? memmem(at, size - (size_t)(at - data), from, len) : NULL;
    if (hit) memcpy(hit, to, len);
    CHECK(!from || hit, "%s: pattern not found", name);
    synth_write_file(out, data, size - cut);
    free(data);
    return out;
}

static void test_bad_gguf(void) {
    bytes x;
    gguf_head(&x, 1, 0);
    put_str(&x, "t");
    put(&x, 1, 4), put(&x, 32, 8), put(&x, 99, 4), put(&x, 0, 8);
    while (x.n % 32) put(&x, 0, 1);
    x.n += 128;
    check_gguf_error("unknown tensor type", &x, "unknown type 99");

    gguf_head(&x, 0, 1);
    put_str(&x, "general.name");
    put(&x, 8, 4), put(&x, 1ull << 40, 8);
    check_gguf_error("metadata string longer than the file", &x, "runs past the end");

    gguf_head(&x, UINT64_MAX, 0);
    check_gguf_error("tensor count overflow", &x, "tensor count");
    gguf_head(&x, 0, 1ull << 61);
    check_gguf_error("metadata count overflow", &x, "metadata count");

    gguf_head(&x, 0, 1);
    put_str(&x, "a"), put(&x, 9, 4), put(&x, 4, 4), put(&x, UINT64_MAX / 2, 8);
    check_gguf_error("array longer than the file", &x, "runs past the end");

    size_t size = 0;
    lm_mapping map = {0};
    if (!lm_map_file(fixture("tiny.gguf"), &map)) size = map.size;
    lm_unmap_file(&map);
    check_model_error(patched_tiny("truncated.gguf", NULL, NULL, NULL, 0, 100), LM_ERR_FORMAT, "run past its end");
    check_model_error(patched_tiny("header-only.gguf", NULL, NULL, NULL, 0, size - 64), LM_ERR_FORMAT, "more than the file");
    /* blk.0.ssm_out.weight as Q4_0 (type 2): a ggml type, but not one we convert. */
    const unsigned char f16_type[] = {1, 0, 0, 0}, q4_type[] = {2, 0, 0, 0};
    check_model_error(patched_tiny("q4.gguf", "blk.0.ssm_out.weight", f16_type, q4_type, 4, 0), LM_ERR_UNSUPPORTED,
                      "type Q4_0");
    check_model_error(patched_tiny("mamba1.gguf", NULL, "mamba2", "mamba\0", 6, 0), LM_ERR_UNSUPPORTED, "architecture");

    /* Tokenizers other than GPT-NeoX's kind (the model refuses to load without one it can use). */
    check_model_error(patched_tiny("bert.gguf", "tokenizer.ggml.model", "gpt2", "bert", 4, 0), LM_ERR_UNSUPPORTED,
                      "tokenizer.ggml.model");
    check_model_error(patched_tiny("pre.gguf", "tokenizer.ggml.pre", "mpt", "qwe", 3, 0), LM_ERR_UNSUPPORTED,
                      "tokenizer.ggml.pre");
}

/* What llama.cpp cannot express is refused, and nothing is left behind. */
static void test_convert_refusals(void) {
    lm_model *m = load(fixture("grouped-safetensors")); /* its tokenizer (GPT-NeoX, 50277) exceeds 264 rows */
    const char *out = tmp_file("refused.gguf");
    if (m) check_error("tokenizer larger than the vocabulary", lm_model_write_gguf(m, LM_GGUF_WEIGHTS_F16, out), LM_ERR_ARG,
                       "embedding rows");
    CHECK(access(out, F_OK) != 0, "a refused conversion left %s", out);
    if (m) {
        m->cfg.dt_limit_max = 0.5f;
        check_error("time_step_limit", lm_model_write_gguf(m, LM_GGUF_WEIGHTS_F16, out), LM_ERR_UNSUPPORTED,
                    "time_step_limit");
    }
    lm_model_free(m);
}

int main(void) {
    if (synth_tempdir(tmp)) return 1;
    read_small_tokenizer();
    test_same_logits();
    test_deflated();
    test_q8_0();
    test_gguf_tokenizer();
    test_bad_pickles();
    test_bad_gguf();
    test_convert_refusals();
    test_roundtrip_tiny_model();
    synth_remove_dir(tmp);
    free(small_tokenizer);
    return test_finish();
}
