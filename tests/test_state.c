/* Session state in files and memory, and session copies (src/model/state.c, docs/state-format.md).
 *   - resuming: a state saved after a prompt and loaded into a fresh session continues exactly
 *     as the original session does (greedy tokens and every logit bit for bit), with and without
 *     more prompt tokens appended, for the float tiny model, a LightMamba W4A4 quantization of it
 *     and a LightMamba* (pot8) one; the same through lm_state_get / lm_state_set (whose bytes are
 *     the file's) and through lm_session_copy into several forks;
 *   - bad files: a flipped byte in the header and in the data, a truncated file, a header-only
 *     stub, a newer version, an array offset outside the file (CRC made valid again), a state of
 *     another model (other config, same config with other weights, float vs quantized), a missing
 *     file, a file that is not a state: each refused with a one-line error and the session's state
 *     (conv, SSM, last hidden, token count) left exactly as it was;
 *   - the same checks through lm_state_set on a buffer, a buffer too small for lm_state_get, a
 *     copy between sessions of different models: refused, nothing changed;
 *   - saving to an unwritable path fails and leaves no file. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/crc32c.h"
#include "common/file.h"
#include "model/session.h"
#include "synth_checkpoint.h"

#define N_THREADS 2
#define N_DECODE 12

static const int32_t prompt[] = {510, 2892, 273, 253, 2846, 310, 247, 1048, 285, 2570, 581, 13, 285, 352};
static const int32_t more[] = {187, 510, 806, 2159, 273};
#define N_PROMPT (sizeof prompt / sizeof prompt[0])
#define N_MORE (sizeof more / sizeof more[0])

typedef struct {
    int32_t tokens[N_DECODE];
    float *logits; /* [N_DECODE + 1, V]: after the prompt, then after each decoded token */
} run;

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy decode from s whose logits after its last token are in r->logits[0]. */
static void decode(lm_session *s, run *r, int V) {
    for (int i = 0; i < N_DECODE; i++) {
        r->tokens[i] = argmax(r->logits + (size_t)i * V, V);
        CHECK_OK(lm_session_forward(s, &r->tokens[i], 1, NULL, r->logits + (size_t)(i + 1) * V));
    }
}

static int same_run(const run *a, const run *b, int V) {
    return memcmp(a->tokens, b->tokens, sizeof a->tokens) == 0 &&
           memcmp(a->logits, b->logits, (size_t)(N_DECODE + 1) * V * sizeof(float)) == 0;
}

/* How the state after the prompt goes from one session to another. */
typedef enum { VIA_FILE, VIA_MEMORY, VIA_COPY } transfer;
static const char *const transfer_name[] = {"file", "memory", "copy"};

/* b's state into c by way t (b is not changed). */
static void move_state(lm_session *b, lm_session *c, transfer t, const char *path) {
    switch (t) {
    case VIA_FILE:
        CHECK_OK(lm_state_save(b, path));
        CHECK_OK(lm_state_load(c, path));
        break;
    case VIA_MEMORY: {
        size_t n = lm_state_size(b), file_n = 0;
        char *buf = malloc(n ? n : 1), *file = NULL;
        CHECK(n > 0 && buf, "no state size: %s", lm_last_error());
        CHECK_OK(lm_state_get(b, buf, n));
        CHECK_OK(lm_state_set(c, buf, n));
        /* the bytes are the file's */
        CHECK_OK(lm_state_save(b, path));
        CHECK_OK(lm_read_file(path, &file, &file_n));
        CHECK(file && file_n == n && memcmp(file, buf, n) == 0, "lm_state_get's bytes are not the state file's");
        free(file);
        free(buf);
        break;
    }
    case VIA_COPY:
        CHECK_OK(lm_session_copy(c, b));
        break;
    }
}

/* Straight on: prompt (and optionally more) then greedy decode, in one session; the state after
 * the prompt is taken from a second session by way t; a third one (with another thread count)
 * resumes from it. */
static void check_resume(const lm_model *m, const char *path, int with_more, transfer t, const char *model_name) {
    char what[128];
    snprintf(what, sizeof what, "%s via %s", model_name, transfer_name[t]);
    const int V = lm_model_config(m)->vocab_size;
    run straight = {{0}, calloc((size_t)(N_DECODE + 1) * V, sizeof(float))};
    run resumed = {{0}, calloc((size_t)(N_DECODE + 1) * V, sizeof(float))};
    lm_session *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(test_session(&a, m, N_THREADS));
    CHECK_OK(test_session(&b, m, N_THREADS));
    CHECK_OK(test_session(&c, m, 1));
    if (!a || !b || !c || !straight.logits || !resumed.logits) goto out;

    CHECK_OK(lm_session_forward(a, prompt, N_PROMPT, NULL, straight.logits));
    if (with_more) CHECK_OK(lm_session_forward(a, more, N_MORE, NULL, straight.logits));
    decode(a, &straight, V);

    CHECK_OK(lm_session_forward(b, prompt, N_PROMPT, NULL, NULL));
    CHECK_OK(lm_session_forward(c, more, N_MORE, NULL, NULL)); /* another state, to be replaced */
    move_state(b, c, t, path);
    lm_session_free(b);
    b = NULL;
    CHECK(lm_session_n_tokens(c) == N_PROMPT, "%s: %llu tokens after load", what,
          (unsigned long long)lm_session_n_tokens(c));
    if (with_more)
        CHECK_OK(lm_session_forward(c, more, N_MORE, NULL, resumed.logits));
    else
        CHECK_OK(lm_session_last_logits(c, resumed.logits));
    decode(c, &resumed, V);
    CHECK(same_run(&straight, &resumed, V), "%s%s: the resumed continuation differs from the straight one", what,
          with_more ? " (more prompt after the state)" : "");
    CHECK(lm_session_n_tokens(a) == lm_session_n_tokens(c), "%s: token counts differ", what);
    /* the continuation is not trivially equal: it depends on the state */
    lm_session_reset(c);
    run fresh = {{0}, resumed.logits};
    CHECK_OK(lm_session_forward(c, more, N_MORE, NULL, fresh.logits));
    decode(c, &fresh, V);
    CHECK(!same_run(&straight, &fresh, V), "%s: a run without the state gives the same logits", what);
out:
    lm_session_free(a);
    lm_session_free(b);
    lm_session_free(c);
    free(straight.logits);
    free(resumed.logits);
}

/* One prompt forked into N_FORKS sessions, each sampling with its own seed: each continues exactly
 * as a session that ran the prompt itself and sampled with that seed (tokens and logits). */
#define N_FORKS 3
static void check_forks(const lm_model *m) {
    const int V = lm_model_config(m)->vocab_size;
    lm_session *prompt_s = NULL, *fork[N_FORKS] = {NULL}, *alone = NULL;
    float *fl = malloc((size_t)V * sizeof(float)), *al = malloc((size_t)V * sizeof(float));
    CHECK_OK(test_session(&prompt_s, m, N_THREADS));
    if (!prompt_s || !fl || !al) goto out;
    CHECK_OK(lm_session_forward(prompt_s, prompt, N_PROMPT, NULL, NULL));
    for (int i = 0; i < N_FORKS; i++) {
        CHECK_OK(test_session(&fork[i], m, 1 + i % 2));
        if (fork[i]) CHECK_OK(lm_session_copy(fork[i], prompt_s));
    }
    for (int i = 0; i < N_FORKS; i++) {
        lm_sampler_params sp = lm_sampler_default_params();
        sp.seed = 100 + (uint64_t)i;
        lm_sampler *fs = NULL, *as = NULL;
        CHECK_OK(lm_sampler_init(&fs, V, &sp));
        CHECK_OK(lm_sampler_init(&as, V, &sp));
        CHECK_OK(test_session(&alone, m, N_THREADS));
        if (!fs || !as || !alone || !fork[i]) goto next;
        CHECK_OK(lm_session_forward(alone, prompt, N_PROMPT, NULL, al));
        CHECK_OK(lm_session_last_logits(fork[i], fl));
        int same = 1;
        for (int t = 0; t < N_DECODE && same; t++) {
            same = memcmp(fl, al, (size_t)V * sizeof(float)) == 0;
            int32_t f = lm_sampler_sample(fs, fl), a = lm_sampler_sample(as, al);
            same = same && f == a;
            CHECK_OK(lm_session_forward(fork[i], &f, 1, NULL, fl));
            CHECK_OK(lm_session_forward(alone, &a, 1, NULL, al));
        }
        CHECK(same, "fork %d differs from a session that ran the prompt itself", i);
    next:
        lm_sampler_free(fs);
        lm_sampler_free(as);
        lm_session_free(alone);
        alone = NULL;
    }
    CHECK(lm_session_n_tokens(prompt_s) == N_PROMPT, "forking changed the source session");
out:
    lm_session_free(prompt_s);
    for (int i = 0; i < N_FORKS; i++) lm_session_free(fork[i]);
    free(fl);
    free(al);
}

/* ---- bad files ---- */

typedef struct {
    size_t conv, ssm, hidden; /* floats */
    float *data;
    uint64_t n_tokens;
} snapshot;

static void take(snapshot *p, const lm_session *s) {
    const lm_config *c = lm_model_config(s->m);
    p->conv = (size_t)c->n_layer * (c->d_conv - 1) * ((size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state);
    p->ssm = (size_t)c->n_layer * c->n_heads * c->head_dim * c->d_state;
    p->hidden = (size_t)c->d_model;
    p->data = malloc((p->conv + p->ssm + p->hidden) * sizeof(float));
    memcpy(p->data, s->conv_state, p->conv * sizeof(float));
    memcpy(p->data + p->conv, s->ssm_state, p->ssm * sizeof(float));
    memcpy(p->data + p->conv + p->ssm, s->last_hidden, p->hidden * sizeof(float));
    p->n_tokens = s->n_tokens;
}

static int unchanged(const snapshot *p, const lm_session *s) {
    return s->n_tokens == p->n_tokens && memcmp(p->data, s->conv_state, p->conv * sizeof(float)) == 0 &&
           memcmp(p->data + p->conv, s->ssm_state, p->ssm * sizeof(float)) == 0 &&
           memcmp(p->data + p->conv + p->ssm, s->last_hidden, p->hidden * sizeof(float)) == 0;
}

static void write_bytes(const char *path, const char *d, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(d, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void fix_crc(char *d, size_t n) {
    const uint32_t zero = 0;
    uint32_t crc = lm_crc32c(0, d, 24);
    crc = lm_crc32c(crc, &zero, 4);
    crc = lm_crc32c(crc, d + 28, n - 28);
    memcpy(d + 24, &crc, 4);
}

/* Loading path into s (or, path NULL, setting buf [n]) fails with status want and a one-line
 * message containing needle; s is unchanged. */
static void expect_refused_from(lm_session *s, const char *path, const char *buf, size_t n, lm_status want,
                                const char *needle, const char *what) {
    snapshot before;
    take(&before, s);
    lm_status st = path ? lm_state_load(s, path) : lm_state_set(s, buf, n);
    const char *msg = lm_last_error();
    CHECK(st == want, "%s: status %s, expected %s (%s)", what, lm_status_name(st), lm_status_name(want), msg);
    CHECK(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
    CHECK(msg[0] && !strchr(msg, '\n'), "%s: not a one-line message: '%s'", what, msg);
    CHECK(unchanged(&before, s), "%s: the failed load changed the session", what);
    free(before.data);
}

static void expect_refused(lm_session *s, const char *path, lm_status want, const char *needle, const char *what) {
    expect_refused_from(s, path, NULL, 0, want, needle, what);
}

/* The bytes d [n] refused both as a file written at path and as a buffer. */
static void refuse_both(lm_session *s, const char *path, const char *d, size_t n, lm_status want, const char *needle,
                        const char *what) {
    write_bytes(path, d, n);
    expect_refused(s, path, want, needle, what);
    expect_refused_from(s, NULL, d, n, want, needle, what);
}

static void check_bad_files(const lm_model *tiny, const lm_model *quantized, const char *dir) {
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/good.lms", dir);
    snprintf(bad, sizeof bad, "%s/bad.lms", dir);
    lm_session *s = NULL, *q = NULL;
    CHECK_OK(test_session(&s, tiny, N_THREADS));
    CHECK_OK(test_session(&q, quantized, N_THREADS));
    if (!s || !q) goto out;
    CHECK_OK(lm_session_forward(s, prompt, N_PROMPT, NULL, NULL));
    CHECK_OK(lm_state_save(s, good));
    /* the session under test holds another state, so an accidental load would show */
    CHECK_OK(lm_session_forward(s, more, N_MORE, NULL, NULL));

    char *d = NULL;
    size_t n = 0;
    CHECK_OK(lm_read_file(good, &d, &n));
    if (!d || n < 1024) goto out;

    d[40] ^= 0x01; /* the token count, in the header */
    refuse_both(s, bad, d, n, LM_ERR_FORMAT, "checksum mismatch", "flipped header byte");
    d[40] ^= 0x01;
    d[n - 5] ^= 0x10; /* inside last_hidden, the last array */
    refuse_both(s, bad, d, n, LM_ERR_FORMAT, "checksum mismatch", "flipped data byte");
    d[n - 5] ^= 0x10;
    refuse_both(s, bad, d, n - 100, LM_ERR_FORMAT, "truncated", "truncated file");
    refuse_both(s, bad, d, 100, LM_ERR_FORMAT, "truncated", "file shorter than its header");
    refuse_both(s, bad, d, 0, LM_ERR_FORMAT, "not a lightmamba state", "empty file");
    expect_refused_from(s, NULL, NULL, 0, LM_ERR_FORMAT, "state buffer: not a lightmamba state", "no buffer");
    char *longer = malloc(n + 1);
    if (longer) {
        memcpy(longer, d, n);
        longer[n] = 0;
        refuse_both(s, bad, longer, n + 1, LM_ERR_FORMAT, "trailing data", "a byte after the state");
    }
    free(longer);
    /* lm_state_get into too small a buffer: refused, the buffer untouched */
    char small[64] = {0};
    CHECK(lm_state_get(s, small, sizeof small) == LM_ERR_ARG && strstr(lm_last_error(), "takes") && !small[0],
          "a 64-byte buffer for the state: %s", lm_last_error());
    d[8] = 2; /* version 2, checksum valid */
    fix_crc(d, n);
    refuse_both(s, bad, d, n, LM_ERR_UNSUPPORTED, "version 2", "newer version");
    d[8] = 1;
    uint64_t off = (uint64_t)n; /* array 0's offset (table at 256, offset field at 120) -> past the end */
    memcpy(d + 256 + 120, &off, 8);
    fix_crc(d, n);
    refuse_both(s, bad, d, n, LM_ERR_FORMAT, "misaligned or outside", "array offset past the end");
    free(d);

    char path[512];
    snprintf(path, sizeof path, "%s/none.lms", dir);
    expect_refused(s, path, LM_ERR_IO, "none.lms", "missing file");
    snprintf(path, sizeof path, "%s/models/mamba2-tiny/config.json", test_root());
    expect_refused(s, path, LM_ERR_FORMAT, "not a lightmamba state file", "a JSON file");

    /* another model: quantized vs float, both ways */
    expect_refused(q, good, LM_ERR_ARG, "saved from a float", "float state into the quantized model");
    snprintf(path, sizeof path, "%s/q.lms", dir);
    CHECK_OK(lm_state_save(q, path));
    expect_refused(s, path, LM_ERR_ARG, "lightmamba W4A4", "quantized state into the float model");

    /* another model: the tiny model's exact configuration with random weights, and a smaller one */
    synth_config c;
    synth_default(&c);
    c.d_model = 128, c.n_layer = 4, c.d_state = 128, c.head_dim = 64, c.vocab_size = 50288;
    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/synth", dir);
    for (int i = 0; i < 2; i++) {
        lm_model *other = NULL;
        lm_session *o = NULL;
        CHECK(mkdir(mdir, 0700) == 0 && synth_write_checkpoint(mdir, &c) == 0, "cannot write a synthetic checkpoint");
        CHECK_OK(lm_model_init(&other, mdir));
        if (other) CHECK_OK(test_session(&o, other, N_THREADS));
        if (o) {
            const char *want = i == 0 ? "same configuration, other weights" : "its d_model is 128, this model's is 64";
            expect_refused(o, good, LM_ERR_ARG, want, i == 0 ? "same config, other weights" : "other config");
            snprintf(path, sizeof path, "%s/synth.lms", dir);
            CHECK_OK(lm_state_save(o, path));
            expect_refused(s, path, LM_ERR_ARG, "another model", "a synthetic model's state into the tiny model");
            snapshot before;
            take(&before, s);
            CHECK(lm_session_copy(s, o) == LM_ERR_ARG && strstr(lm_last_error(), "different models") && unchanged(&before, s),
                  "a copy between sessions of different models: %s", lm_last_error());
            free(before.data);
        }
        lm_session_free(o);
        lm_model_free(other);
        synth_remove_dir(mdir);
        c.d_model = 64, c.d_state = 16, c.head_dim = 16, c.vocab_size = 300, c.n_layer = 2;
    }

    /* saving where it cannot be written: an error, no file */
    CHECK(lm_state_save(s, "/nonexistent-dir/x.lms") == LM_ERR_IO && !lm_file_exists("/nonexistent-dir/x.lms"),
          "saving into a missing directory: %s", lm_last_error());
    /* the good file still loads after all that */
    CHECK_OK(lm_state_load(s, good));
    CHECK(s->n_tokens == N_PROMPT, "%llu tokens after loading the good state", (unsigned long long)s->n_tokens);
    /* an empty session's state saves and loads; it has no logits to give */
    lm_session *e = NULL;
    CHECK_OK(test_session(&e, tiny, N_THREADS));
    if (e) {
        float dummy[1];
        CHECK(lm_session_last_logits(e, dummy) == LM_ERR_ARG, "logits of an empty session were given");
        CHECK_OK(lm_state_save(e, path));
        CHECK_OK(lm_state_load(s, path));
        CHECK(s->n_tokens == 0 && lm_session_last_logits(s, dummy) == LM_ERR_ARG, "the empty state did not load as empty");
    }
    lm_session_free(e);
out:
    lm_session_free(s);
    lm_session_free(q);
}

int main(void) {
    char dir[64], path[512], model_dir[512], qpath[512];
    if (synth_tempdir(dir)) return 1;
    snprintf(path, sizeof path, "%s/prompt.lms", dir);
    snprintf(qpath, sizeof qpath, "%s/w4a4.lmq", dir);
    snprintf(model_dir, sizeof model_dir, "%s/models/mamba2-tiny", test_root());

    lm_model *tiny = NULL, *quantized = NULL;
    CHECK_OK(lm_model_init(&tiny, model_dir));
    if (tiny) {
        lm_quant_settings qs = lm_quant_defaults(); /* lightmamba W4A4, round to nearest: no calibration */
        CHECK_OK(lm_quantize(tiny, &qs, NULL, N_THREADS, qpath, NULL, NULL));
        CHECK_OK(lm_model_init(&quantized, qpath));
    }
    if (tiny && quantized) {
        for (transfer t = VIA_FILE; t <= VIA_COPY; t++)
            for (int with_more = 0; with_more < 2; with_more++) {
                check_resume(tiny, path, with_more, t, "float");
                check_resume(quantized, path, with_more, t, "lightmamba W4A4");
            }
        check_forks(tiny);
        check_bad_files(tiny, quantized, dir);
    }
    /* LightMamba* (SSM mode pot8, state kind 1), once this build loads such models */
    snprintf(qpath, sizeof qpath, "%s/pot8.lmq", dir);
    lm_model *pot8 = NULL;
    if (tiny) {
        lm_quant_settings qs = lm_quant_defaults();
        qs.ssm_mode = LM_SSM_POT8, qs.calib_samples = 4, qs.calib_len = 64;
        CHECK_OK(lm_quantize(tiny, &qs, NULL, N_THREADS, qpath, NULL, NULL));
        if (lm_model_init(&pot8, qpath) == LM_ERR_UNSUPPORTED)
            printf("note: pot8 models do not load in this build (%s): their state files are not checked\n", lm_last_error());
    }
    if (pot8) {
        for (transfer t = VIA_FILE; t <= VIA_COPY; t++)
            for (int with_more = 0; with_more < 2; with_more++) check_resume(pot8, path, with_more, t, "lightmamba* W4A4 pot8");
        lm_session *p = NULL;
        CHECK_OK(test_session(&p, pot8, N_THREADS));
        if (p) {
            snprintf(path, sizeof path, "%s/good.lms", dir); /* the float model's, left by check_bad_files */
            CHECK(lm_state_load(p, path) == LM_ERR_ARG && strstr(lm_last_error(), "state kind 0"),
                  "a float state loaded into a pot8 session: %s", lm_last_error());
        }
        lm_session_free(p);
    }
    lm_model_free(pot8);
    lm_model_free(tiny);
    lm_model_free(quantized);
    synth_remove_dir(dir);
    return test_finish();
}
