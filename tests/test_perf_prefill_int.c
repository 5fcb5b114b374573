/* Quantized models (integer in_proj/out_proj) from lm_synth_quantized, small shapes:
 *  - prefill of a prompt in one call (chunks of 64 with T > 1 integer GEMMs) gives the same
 *    last-token logits, bit for bit, as feeding it one token at a time (T = 1 GEMVs), for
 *    W4A4, W4A8 and W8A8, rotated and not, with 1 and 2 threads;
 *  - the per-token logits of a prefill match decode within 1e-4 (lm_head is float: T > 1 goes
 *    through sgemm, T = 1 through the GEMV, so only the rounding of that last product differs);
 *  - the same seed gives the same file whatever the thread count, and the decode traffic
 *    count matches the bytes of the model's tensors. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "model/model.h"
#include "model/traffic.h"
#include "quant/synth.h"

static lm_config tiny_config(void) {
    return (lm_config){.d_model = 64, .n_layer = 2, .d_inner = 128, .n_heads = 8, .head_dim = 16, .d_state = 16,
                       .n_groups = 2, .d_conv = 4, .vocab_size = 500, .eps = 1e-5f, .dt_limit_min = 0.0f,
                       .dt_limit_max = INFINITY, .tie_embeddings = 0, .conv_bias = 1, .proj_bias = 0};
}

#define N_TOKENS 150 /* two full chunks of 64 and a ragged one */

static void check_prefill_equals_decode(const char *path, int wbits, int abits, int threads) {
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    if (!m) return;
    const int V = m->cfg.vocab_size;
    CHECK(m->layers[0].in_proj.kind == LM_LINEAR_INT && m->layers[0].in_proj.q.wbits == wbits &&
              m->layers[0].out_proj.abits == abits, "W%dA%d model not loaded as integer", wbits, abits);
    int32_t tokens[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++) tokens[i] = (int32_t)((i * 7919 + 13) % V);
    float *all = malloc(sizeof(float) * N_TOKENS * V), *last = malloc(sizeof(float) * V),
          *step = malloc(sizeof(float) * V);
    lm_session *a = NULL, *b = NULL;
    CHECK_OK(test_session(&a, m, threads));
    CHECK_OK(test_session(&b, m, threads));
    if (a && b && all && last && step) {
        CHECK_OK(lm_session_forward(a, tokens, N_TOKENS, NULL, last));
        lm_session_reset(a);
        CHECK_OK(lm_session_forward(a, tokens, N_TOKENS, all, NULL));
        double worst = 0;
        for (int i = 0; i < N_TOKENS; i++) {
            CHECK_OK(lm_session_forward(b, &tokens[i], 1, NULL, step));
            for (int v = 0; v < V; v++) {
                double d = fabs((double)all[(size_t)i * V + v] - step[v]) / (1.0 + fabs(step[v]));
                if (d > worst) worst = d;
            }
        }
        CHECK(memcmp(last, step, sizeof(float) * V) == 0,
              "W%dA%d, %d threads: prefill's last logits differ from token-by-token decode", wbits, abits, threads);
        CHECK(worst < 1e-4, "W%dA%d, %d threads: prefill logits differ from decode by %g", wbits, abits, threads, worst);
        for (int v = 0; v < V; v++) CHECK(isfinite(step[v]), "logit %d is not finite", v);
    }
    lm_session_free(a);
    lm_session_free(b);
    free(all), free(last), free(step);
    lm_model_free(m);
}

int main(void) {
    char path[] = "/tmp/lm_test_perf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return test_finish();
    close(fd);
    const lm_config c = tiny_config();
    const int bits[][2] = {{4, 4}, {4, 8}, {8, 8}};
    for (int i = 0; i < 3; i++) {
        lm_quant_settings q = lm_quant_defaults();
        q.wbits = bits[i][0], q.abits = bits[i][1];
        q.method = i == 1 ? LM_QUANT_RTN : LM_QUANT_LIGHTMAMBA;
        CHECK_OK(lm_synth_quantized(path, &c, &q, 7, 2));
        for (int threads = 1; threads <= 2; threads++) check_prefill_equals_decode(path, q.wbits, q.abits, threads);
    }

    /* the same seed, another thread count: the same bytes */
    lm_quant_settings q = lm_quant_defaults();
    char *one = NULL, *two = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK_OK(lm_synth_quantized(path, &c, &q, 3, 1));
    CHECK_OK(lm_read_file(path, &one, &n1));
    CHECK_OK(lm_synth_quantized(path, &c, &q, 3, 2));
    CHECK_OK(lm_read_file(path, &two, &n2));
    CHECK(one && two && n1 == n2 && memcmp(one, two, n1) == 0, "seed 3 gives different files with 1 and 2 threads");
    free(one), free(two);

    /* decode traffic: integer weights packed (+ scale and e0 bytes), the untied lm_head and the
     * embedding row float16 (as stored, used in place) */
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    if (m) {
        lm_decode_traffic t;
        lm_decode_traffic_count(m, &t);
        const uint64_t E = 2 * 128 + 2 * 2 * 16 + 8, CD = 128 + 2 * 2 * 16;
        uint64_t layer = 64 * 4 + E * (32 + 1 + 1) + CD * 4 * 4 + CD * 4 + 3 * 8 * 4 + 128 * 4 + 64 * (64 + 1 + 1);
        CHECK(t.lm_head == 500 * 64 * 2, "lm_head bytes %llu", (unsigned long long)t.lm_head);
        CHECK(t.weights == 2 * layer + 64 * 4 + t.lm_head + 64 * 2, "weight bytes %llu", (unsigned long long)t.weights);
        CHECK(t.state == 2 * (3 * CD + 8 * 16 * 16) * 4, "state bytes %llu", (unsigned long long)t.state);
        CHECK(t.total == t.weights + 2 * t.state, "total");
        lm_model_free(m);
    }

    /* an inconsistent config is refused and writes nothing */
    lm_config bad = c;
    bad.n_heads = 7;
    unlink(path);
    CHECK(lm_synth_quantized(path, &bad, &q, 1, 1) == LM_ERR_ARG, "inconsistent config accepted");
    CHECK(!lm_file_exists(path), "a refused synth left a file");
    unlink(path);
    return test_finish();
}
