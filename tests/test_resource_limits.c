/* Inputs that claim huge sizes fail with a one-line LM_ERR_FORMAT naming the problem, in bounded
 * memory: a tensor of 2^60 or 2^96 elements (safetensors and quantized file), header and JSON files of
 * 4 GiB (sparse files: no disk space used), a vocabulary with ids up to 2^31, 2^20 and 2^24 layers,
 * 2^31 state arrays, a 4 GiB embedded tokenizer.
 *
 * Each case runs in a child process. Outside the sanitizer build the child first limits its data
 * segment (RLIMIT_DATA: heap and anonymous mappings, not the read-only file maps the loaders use)
 * to what it has plus 64 MB, so a loader that allocated what the input claims would get
 * LM_ERR_NOMEM instead of the format error. In every build the child's peak resident memory may
 * grow by at most 64 MB (ASan reserves address space, so only this second check runs there). */
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/crc32c.h"
#include "common/file.h"
#include "format/config.h"
#include "format/safetensors.h"
#include "synth_checkpoint.h"

#define GROWTH_LIMIT_KB (64 << 10)
#define GIB4 (4ull << 30)

static char dir[64];

static char *in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Writes data at the start of path and extends the file (sparse) to size bytes. */
static void write_sparse(const char *path, const void *data, size_t len, uint64_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || ftruncate(fd, (off_t)size) != 0) {
        perror(path);
        exit(1);
    }
    close(fd);
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The binary formats' CRC-32C at byte 24, over the file with that field read as zero. */
static void fix_crc(unsigned char *d, size_t n) {
    memset(d + 24, 0, 4);
    uint32_t crc = lm_crc32c(0, d, n);
    memcpy(d + 24, &crc, 4);
}

static long resident_kb(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    if (f) fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static long data_segment_kb(void) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmData: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

typedef lm_status (*load_fn)(const char *path);

/* Runs load(path) in a child under the limits; the status must be LM_ERR_FORMAT and the message
 * one line containing `want`. */
static void expect_bounded_failure(const char *what, load_fn load, const char *path, const char *want) {
    fflush(stdout);
    long base_kb = resident_kb();
    int pipefd[2];
    if (pipe(pipefd)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__)
        long data_kb = data_segment_kb();
        struct rlimit rl = {(rlim_t)(data_kb + GROWTH_LIMIT_KB) * 1024, (rlim_t)(data_kb + GROWTH_LIMIT_KB) * 1024};
        if (data_kb < 0 || setrlimit(RLIMIT_DATA, &rl)) _exit(100);
#endif
        lm_status s = load(path);
        const char *e = lm_last_error();
        if (write(pipefd[1], e, strlen(e) + 1) < 0) _exit(101);
        _exit((int)s);
    }
    close(pipefd[1]);
    char msg[1024] = "";
    ssize_t got = read(pipefd[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = '\0';
    close(pipefd[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) exit(1);
    long growth = ru.ru_maxrss - base_kb;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECK(code == LM_ERR_FORMAT, "%s: child status %d (want format error %d): %s", what, code, LM_ERR_FORMAT, msg);
    CHECK(strstr(msg, want) && !strchr(msg, '\n'), "%s: message \"%s\" does not say \"%s\"", what, msg, want);
    CHECK(growth < GROWTH_LIMIT_KB, "%s: peak memory grew by %ld KB", what, growth);
    printf("%-40s %6ld KB  %s\n", what, growth > 0 ? growth : 0, msg);
}

static lm_status load_safetensors(const char *path) {
    lm_safetensors st;
    lm_status s = lm_safetensors_open(&st, path);
    if (!s) lm_safetensors_close(&st);
    return s;
}

static lm_status load_config(const char *path) {
    lm_config c;
    return lm_config_load(&c, path);
}

static lm_status load_tokenizer(const char *path) {
    lm_tokenizer *t;
    lm_status s = lm_tokenizer_init(&t, path);
    lm_tokenizer_free(t);
    return s;
}

static lm_status load_model(const char *path) {
    lm_model *m;
    lm_status s = lm_model_init(&m, path);
    lm_model_free(m);
    return s;
}

static char *state_model_dir;

static const lm_session_params one_thread = {.n_threads = 1};

static lm_status load_state(const char *path) {
    lm_model *m;
    lm_session *s;
    if (lm_model_init(&m, state_model_dir) || lm_session_init(&s, m, &one_thread)) return LM_ERR_ARG;
    lm_status st = lm_state_load(s, path);
    lm_session_free(s);
    lm_model_free(m);
    return st;
}

/* A safetensors file whose one header entry is `entry`, with data_size bytes of data. */
static void write_safetensors(const char *path, const char *entry, size_t data_size, uint64_t claimed_header) {
    char header[512];
    size_t n = (size_t)snprintf(header, sizeof header, "{\"t\": %s}", entry);
    unsigned char file[8 + 512 + 64] = {0};
    put_u64(file, claimed_header ? claimed_header : n);
    memcpy(file + 8, header, n);
    write_sparse(path, file, 8 + n + data_size, 8 + n + data_size);
}

static void safetensors_cases(void) {
    write_safetensors(in_dir("huge_tensor.safetensors"),
                      "{\"dtype\": \"F32\", \"shape\": [1073741824, 1073741824], \"data_offsets\": [0, 4]}", 4, 0);
    expect_bounded_failure("safetensors: 2^60 elements", load_safetensors, in_dir("huge_tensor.safetensors"),
                           "data_offsets span 4");
    write_safetensors(in_dir("overflow.safetensors"),
                      "{\"dtype\": \"F16\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 2]}",
                      2, 0);
    expect_bounded_failure("safetensors: 2^96 elements", load_safetensors, in_dir("overflow.safetensors"),
                           "need too many bytes");
    write_safetensors(in_dir("huge_header.safetensors"), "{}", 0, 1ull << 62);
    expect_bounded_failure("safetensors: 2^62-byte header", load_safetensors, in_dir("huge_header.safetensors"),
                           "exceeds the file size");
    unsigned char head[8];
    put_u64(head, GIB4);
    write_sparse(in_dir("sparse.safetensors"), head, 8, GIB4 + 8);
    expect_bounded_failure("safetensors: 4 GiB header (sparse file)", load_safetensors, in_dir("sparse.safetensors"),
                           "over the 100 MB limit");
    /* The same 2^60-element tensor met by lm_model_init in a model directory. */
    synth_config c;
    synth_default(&c);
    if (synth_write_config(dir, &c)) exit(1);
    write_safetensors(in_dir("model.safetensors"),
                      "{\"dtype\": \"BF16\", \"shape\": [1152921504606846976], \"data_offsets\": [0, 2]}", 2, 0);
    expect_bounded_failure("model directory: 2^60 elements", load_model, dir, "data_offsets span 2");
    /* A config claiming 2^20 layers over a checkpoint of 2. */
    c.n_layer = 1 << 20;
    char model_dir[64];
    if (synth_tempdir(model_dir) || synth_write_config(model_dir, &c)) exit(1);
    c.n_layer = 2;
    char *st = lm_path_join(model_dir, "model.safetensors");
    if (synth_write_checkpoint(dir, &c) || rename(in_dir("model.safetensors"), st)) exit(1);
    expect_bounded_failure("model directory: 2^20 layers", load_model, model_dir, "n_layer 1048576");
    free(st);
    synth_remove_dir(model_dir);
    remove(in_dir("model.safetensors"));
}

static void json_cases(void) {
    static const char start[] = "{\"hidden_size\": \"";
    write_sparse(in_dir("big_config.json"), start, sizeof start - 1, GIB4);
    expect_bounded_failure("config.json: a 4 GiB string", load_config, in_dir("big_config.json"), "over the 256 MB");
    write_sparse(in_dir("big_tokenizer.json"), start, sizeof start - 1, GIB4);
    expect_bounded_failure("tokenizer.json: a 4 GiB string", load_tokenizer, in_dir("big_tokenizer.json"),
                           "over the 256 MB");
    /* The bundled tokenizer with one more token, whose id claims a vocabulary of 2^31 - 1. */
    char *path = lm_path_join(test_root(), "data/tokenizer.json"), *text;
    size_t len;
    CHECK_OK(lm_read_file(path, &text, &len));
    char *vocab = strstr(text, "\"vocab\": {");
    CHECK(vocab != NULL, "no vocab in data/tokenizer.json");
    if (vocab) {
        vocab += strlen("\"vocab\": {");
        static const char extra[] = "\"<|claims a 2^31 vocabulary|>\": 2147483646, ";
        char *big = malloc(len + sizeof extra);
        size_t at = (size_t)(vocab - text);
        memcpy(big, text, at);
        memcpy(big + at, extra, sizeof extra - 1);
        memcpy(big + at + sizeof extra - 1, vocab, len - at);
        write_sparse(in_dir("ids_2g.json"), big, len + sizeof extra - 1, len + sizeof extra - 1);
        free(big);
        expect_bounded_failure("tokenizer.json: ids up to 2^31 - 2", load_tokenizer, in_dir("ids_2g.json"),
                               "ids run up to 2147483646");
    }
    free(text);
    free(path);
}

/* A small quantized model (RTN W4A4, no calibration needed), then copies of it with one claim
 * changed and the checksum made right again. */
static void qfile_cases(void) {
    char model_dir[64];
    synth_config c;
    synth_default(&c);
    lm_model *m;
    lm_quant_settings q = lm_quant_defaults();
    q.method = LM_QUANT_RTN;
    const char *qpath = in_dir("small.lmq");
    if (synth_tempdir(model_dir) || synth_write_checkpoint(model_dir, &c)) exit(1);
    CHECK_OK(lm_model_init(&m, model_dir));
    CHECK_OK(lm_quantize(m, &q, NULL, 1, qpath, NULL, NULL));
    lm_model_free(m);
    synth_remove_dir(model_dir);
    char *d;
    size_t n;
    CHECK_OK(lm_read_file(qpath, &d, &n));
    if (n < 512) exit(1);
    unsigned char *u = (unsigned char *)d;

    put_u32(u + 60, 1u << 24); /* config field 1: n_layer */
    fix_crc(u, n);
    write_sparse(in_dir("layers.lmq"), u, n, n);
    expect_bounded_failure("quantized file: 2^24 layers", load_model, in_dir("layers.lmq"), "n_layer");
    put_u32(u + 60, (uint32_t)c.n_layer);

    const uint64_t tok_bytes = get_u64(u + 48); /* the tokenizer.json bytes */
    put_u64(u + 48, GIB4);
    fix_crc(u, n);
    write_sparse(in_dir("tokenizer.lmq"), u, n, n);
    expect_bounded_failure("quantized file: 4 GiB tokenizer.json", load_model, in_dir("tokenizer.lmq"),
                           "lies outside the file");
    put_u64(u + 48, tok_bytes);

    unsigned char *entry = u + get_u64(u + 32); /* the first table entry */
    put_u64(entry + 88, 1ull << 30);
    put_u64(entry + 96, 1ull << 30);
    fix_crc(u, n);
    write_sparse(in_dir("tensor.lmq"), u, n, n);
    expect_bounded_failure("quantized file: 2^60 elements", load_model, in_dir("tensor.lmq"), "outside the file");
    free(d);
}

static void state_cases(void) {
    char model_dir[64];
    synth_config c;
    synth_default(&c);
    if (synth_tempdir(model_dir) || synth_write_checkpoint(model_dir, &c)) exit(1);
    state_model_dir = model_dir;
    lm_model *m;
    lm_session *s;
    CHECK_OK(lm_model_init(&m, model_dir));
    CHECK_OK(lm_session_init(&s, m, &one_thread));
    CHECK_OK(lm_state_save(s, in_dir("state.lms")));
    lm_session_free(s);
    lm_model_free(m);
    char *d;
    size_t n;
    CHECK_OK(lm_read_file(in_dir("state.lms"), &d, &n));
    put_u32((unsigned char *)d + 28, 0x7fffffffu); /* the number of arrays */
    fix_crc((unsigned char *)d, n);
    write_sparse(in_dir("arrays.lms"), d, n, n);
    expect_bounded_failure("state file: 2^31 arrays", load_state, in_dir("arrays.lms"), "lies outside the file");
    free(d);
    synth_remove_dir(model_dir);
}

int main(void) {
    if (synth_tempdir(dir)) return 1;
    safetensors_cases();
    json_cases();
    qfile_cases();
    state_cases();
    synth_remove_dir(dir);
    return test_finish();
}
