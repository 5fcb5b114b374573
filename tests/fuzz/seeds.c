/* Writes the seed corpora of the fuzzing harnesses: fuzz_seeds OUT_DIR makes OUT_DIR/fuzz_NAME/
 * for each harness, from the repository's own files (configs, platform files, the tokenizer, the
 * tiny model) and small synthetic checkpoints. Big files are cut down to what a fuzzer can mutate
 * quickly (a 1000-token tokenizer.json taken from data/tokenizer.json). scripts/fuzz.sh runs it. */
#include <json-c/json.h>
#include <minizip/unzip.h>
#include <sys/stat.h>

#include "common/file.h"
#include "fuzz.h"
#include "small_model.h"

static const char *out_dir;

static char *harness_dir(const char *harness) {
    char *d = lm_path_join(out_dir, harness);
    FUZZ_ASSERT(d && (mkdir(d, 0755) == 0 || lm_is_directory(d)), "cannot make %s", d ? d : harness);
    return d;
}

static void put(const char *harness, const char *name, const void *data, size_t len) {
    char *d = harness_dir(harness), *path = lm_path_join(d, name);
    FUZZ_ASSERT(path && synth_write_file(path, data, len) == 0, "cannot write %s/%s", harness, name);
    free(path);
    free(d);
}

static void put_text(const char *harness, const char *name, const char *text) { put(harness, name, text, strlen(text)); }

/* A repository file (path relative to the root) as a seed. */
static void put_copy(const char *harness, const char *name, const char *rel_path) {
    char *path = lm_path_join(fuzz_root(), rel_path), *data;
    size_t len;
    FUZZ_ASSERT(path && lm_read_file(path, &data, &len) == LM_OK, "%s", lm_last_error());
    put(harness, name, data, len);
    free(data);
    free(path);
}

/* A file of a synthetic checkpoint written to a temporary directory. */
static void put_synth(const char *harness, const char *name, const synth_config *c, const char *file) {
    char dir[64];
    FUZZ_ASSERT(synth_tempdir(dir) == 0 && synth_write_checkpoint(dir, c) == 0, "cannot write a checkpoint");
    char *path = lm_path_join(dir, file), *data;
    size_t len;
    FUZZ_ASSERT(path && lm_read_file(path, &data, &len) == LM_OK, "%s", lm_last_error());
    put(harness, name, data, len);
    free(data);
    free(path);
    synth_remove_dir(dir);
}

static void config_seeds(void) {
    const char *h = "fuzz_config";
    put_copy(h, "mamba2-tiny.json", "models/mamba2-tiny/config.json");
    synth_config c;
    fuzz_small_model(&c);
    c.dt_limit_min = 0.001;
    c.dt_limit_max = 0.1;
    put_synth(h, "hf.json", &c, "config.json");
    c.state_spaces = 1;
    c.pad_multiple = 8;
    put_synth(h, "state_spaces.json", &c, "config.json");
    put_text(h, "hf_float_literal.json",
             "{\"model_type\": \"mamba2\", \"hidden_size\": 16, \"num_hidden_layers\": 1, \"vocab_size\": 32, "
             "\"state_size\": 8, \"num_heads\": 4, \"head_dim\": 8, \"n_groups\": 2, \"conv_kernel\": 4, \"expand\": 2, "
             "\"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}], \"layer_norm_epsilon\": 1e-6, "
             "\"use_bias\": true, \"use_conv_bias\": false, \"tie_word_embeddings\": false, \"rms_norm\": true}");
    put_text(h, "state_spaces_defaults.json",
             "{\"d_model\": 32, \"n_layer\": 2, \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba2\", "
             "\"d_state\": 16, \"headdim\": 16, \"dt_limit\": [0.0, Infinity], \"ngroups\": 1, \"bias\": false, "
             "\"d_ssm\": null}, \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true, "
             "\"pad_vocab_size_multiple\": 16, \"tie_embeddings\": true, \"d_intermediate\": 0, \"attn_layer_idx\": []}");
}

static void safetensors_seeds(void) {
    const char *h = "fuzz_safetensors";
    synth_config c;
    const char *dtypes[] = {"F32", "F16", "BF16"};
    for (int i = 0; i < 3; i++) {
        fuzz_small_model(&c);
        c.dtype = dtypes[i];
        c.misalign = i == 2;
        char name[32];
        snprintf(name, sizeof name, "small_%s.safetensors", dtypes[i]);
        put_synth(h, name, &c, "model.safetensors");
    }
    /* Metadata, a scalar and an empty tensor. */
    static const char header[] = "{\"__metadata__\": {\"format\": \"pt\"}, \"s\": {\"dtype\": \"F32\", \"shape\": [], "
                                 "\"data_offsets\": [0, 4]}, \"e\": {\"dtype\": \"BF16\", \"shape\": [0, 3], "
                                 "\"data_offsets\": [4, 4]}, \"h\": {\"dtype\": \"F16\", \"shape\": [2, 1], "
                                 "\"data_offsets\": [4, 8]}}";
    unsigned char file[8 + sizeof header - 1 + 8] = {0};
    uint64_t n = sizeof header - 1;
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)(n >> (8 * i));
    memcpy(file + 8, header, n);
    memcpy(file + 8 + n, "\x00\x00\x80\x3f\x00\x3c\x00\xc0", 8);
    put(h, "metadata_scalar_empty.safetensors", file, sizeof file);
}

static void index_seeds(void) {
    synth_config c;
    fuzz_small_model(&c);
    c.n_shards = 3;
    put_synth("fuzz_index", "three_shards.json", &c, "model.safetensors.index.json");
}

static void tokenizer_seeds(void) {
    char *t = small_tokenizer_json(300, 0);
    put_text("fuzz_tokenizer_json", "ids300.json", t);
    free(t);
    t = small_tokenizer_json(1000, 1);
    put_text("fuzz_tokenizer_json", "ids1000_pairs.json", t);
    free(t);
}

/* fuzz_tokenize: a direction byte (even: encode, odd: decode), then the text or the ids. */
static void put_direction(const char *name, unsigned char direction, const void *data, size_t len) {
    unsigned char *buf = malloc(len + 1);
    FUZZ_ASSERT(buf, "out of memory");
    buf[0] = direction;
    memcpy(buf + 1, data, len);
    put("fuzz_tokenize", name, buf, len + 1);
    free(buf);
}

static void tokenize_seeds(void) {
    char *path = lm_path_join(fuzz_root(), "data/wikitext2_test.txt"), *text;
    size_t len;
    FUZZ_ASSERT(path && lm_read_file(path, &text, &len) == LM_OK, "%s", lm_last_error());
    put_direction("wikitext.txt", 0, text, len < 2048 ? len : 2048);
    free(text);
    free(path);
    static const char mixed[] = "<|endoftext|>Hello,   world!\n\n  It's 3.14 \xe2\x80\x94 caf\xc3\xa9 e\xcc\x81 "
                                "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80\t<|padding|>                 x";
    put_direction("mixed.txt", 0, mixed, sizeof mixed - 1);
    const int32_t ids[] = {0, 12092, 13, 1533, 2, 50276, 187, 50254, 1};
    put_direction("ids.bin", 1, ids, sizeof ids);
}

static void platform_seeds(void) {
    put_copy("fuzz_platform", "vck190.json", "hw/platforms/vck190.json");
    put_copy("fuzz_platform", "u280.json", "hw/platforms/u280.json");
}

/* Quantized files of the small model (small_model.h) in four configurations. */
static void qfile_seeds(void) {
    char dir[64];
    lm_model *m;
    FUZZ_ASSERT(small_model_dir(dir) == 0 && lm_model_init(&m, dir) == LM_OK, "%s", lm_last_error());
    static const char *const names[SMALL_QUANT_KINDS] = {"rtn_w4a4.lmq", "rtn_w8a8.lmq", "lightmamba_w4a4.lmq",
                                                         "lightmamba_pot8.lmq"};
    char *out = lm_path_join(dir, "q.lmq"), *data;
    size_t len;
    for (int i = 0; i < SMALL_QUANT_KINDS; i++) {
        FUZZ_ASSERT(small_model_quantize(m, dir, i, out) == LM_OK && lm_read_file(out, &data, &len) == LM_OK, "%s",
                    lm_last_error());
        put("fuzz_qfile", names[i], data, len);
        free(data);
    }
    free(out);
    lm_model_free(m);
    synth_remove_dir(dir);
}

/* State files of the fuzz_state models (a model byte, then the file): fresh, and after a prompt. */
static void state_seeds(void) {
    small_sessions ss;
    char *out = lm_path_join(out_dir, "state.tmp"), *data;
    small_sessions_init(&ss);
    const int32_t prompt[] = {51, 72, 79, 79, 82, 13, 0, 300};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++) {
            lm_session *s = ss.session[k];
            lm_session_reset(s);
            if (i) FUZZ_ASSERT(lm_session_forward(s, prompt, 8, NULL, NULL) == LM_OK, "%s", lm_last_error());
            size_t len;
            FUZZ_ASSERT(lm_state_save(s, out) == LM_OK && lm_read_file(out, &data, &len) == LM_OK, "%s",
                        lm_last_error());
            char name[32];
            snprintf(name, sizeof name, "%s_%s.lms", k ? "pot8" : "float", i ? "prompt" : "fresh");
            unsigned char *buf = malloc(len + 1);
            FUZZ_ASSERT(buf, "out of memory");
            buf[0] = (unsigned char)k;
            memcpy(buf + 1, data, len);
            put("fuzz_state", name, buf, len + 1);
            free(buf);
            free(data);
        }
    remove(out);
    free(out);
    small_sessions_free(&ss);
}

/* The PyTorch checkpoints of tests/data/formats (stored, and one deflated), whole for fuzz_torch
 * and their ARCHIVE/data.pkl (read with minizip) for fuzz_pickle. */
static const char *const torch_fixtures[][3] = {
    {"tiny.bin", "tiny.pkl", "tests/data/formats/tiny-torch/pytorch_model.bin"},
    {"grouped.bin", "grouped.pkl", "tests/data/formats/grouped-torch/pytorch_model.bin"},
    {"deflated.pt", "deflated.pkl", "tests/data/formats/deflated.pt"}};

static void torch_seeds(void) {
    for (size_t i = 0; i < sizeof torch_fixtures / sizeof *torch_fixtures; i++) {
        put_copy("fuzz_torch", torch_fixtures[i][0], torch_fixtures[i][2]);
        char *path = lm_path_join(fuzz_root(), torch_fixtures[i][2]), name[256];
        unzFile z = path ? unzOpen64(path) : NULL;
        int found = 0;
        for (int r = z ? unzGoToFirstFile(z) : UNZ_END_OF_LIST_OF_FILE; r == UNZ_OK && !found; r = unzGoToNextFile(z)) {
            unz_file_info64 fi;
            FUZZ_ASSERT(unzGetCurrentFileInfo64(z, &fi, name, sizeof name, NULL, 0, NULL, 0) == UNZ_OK, "%s", path);
            const char *slash = strchr(name, '/');
            if (!slash || strcmp(slash, "/data.pkl")) continue;
            unsigned char *data = malloc(fi.uncompressed_size + 1);
            FUZZ_ASSERT(data && unzOpenCurrentFile(z) == UNZ_OK &&
                            unzReadCurrentFile(z, data, (unsigned)fi.uncompressed_size) == (int)fi.uncompressed_size &&
                            unzCloseCurrentFile(z) == UNZ_OK,
                        "cannot read %s of %s", name, path);
            put("fuzz_pickle", torch_fixtures[i][1], data, fi.uncompressed_size);
            free(data);
            found = 1;
        }
        FUZZ_ASSERT(found, "no */data.pkl in %s", path ? path : torch_fixtures[i][2]);
        unzClose(z);
        free(path);
    }
}

/* GGUF files: the fixtures of tests/data/formats (F32 with a tokenizer; Q8_0 with groups and
 * none) and the small model (small_model.h) written as F16 with its 302-token tokenizer. The
 * tokenizer harness takes those with a tokenizer. */
static void gguf_seeds(void) {
    static const char *const with[] = {"fuzz_gguf", "fuzz_gguf_model", "fuzz_gguf_tokenizer"};
    for (int k = 0; k < 3; k++) put_copy(with[k], "tiny.gguf", "tests/data/formats/tiny.gguf");
    for (int k = 0; k < 2; k++) put_copy(with[k], "grouped-q8_0.gguf", "tests/data/formats/grouped-q8_0.gguf");
    char dir[64];
    lm_model *m;
    FUZZ_ASSERT(small_model_dir(dir) == 0 && lm_model_init(&m, dir) == LM_OK, "%s", lm_last_error());
    char *out = lm_path_join(dir, "small.gguf"), *data;
    size_t len;
    FUZZ_ASSERT(out && lm_model_write_gguf(m, LM_GGUF_WEIGHTS_F16, out) == LM_OK && lm_read_file(out, &data, &len) == LM_OK,
                "%s", lm_last_error());
    for (int k = 0; k < 3; k++) put(with[k], "small_f16.gguf", data, len);
    free(data);
    free(out);
    lm_model_free(m);
    synth_remove_dir(dir);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    FUZZ_ASSERT(mkdir(out_dir, 0755) == 0 || lm_is_directory(out_dir), "cannot make %s", out_dir);
    DIR *d = opendir(out_dir); /* seeds of an earlier run go */
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char *sub = e->d_name[0] != '.' ? lm_path_join(out_dir, e->d_name) : NULL;
        if (sub) synth_remove_dir(sub);
        free(sub);
    }
    if (d) closedir(d);
    config_seeds();
    safetensors_seeds();
    index_seeds();
    tokenizer_seeds();
    tokenize_seeds();
    platform_seeds();
    qfile_seeds();
    state_seeds();
    torch_seeds();
    gguf_seeds();
    return 0;
}
