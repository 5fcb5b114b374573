/* The forward pass on synthetic checkpoints of non-default configurations (n_groups > 1,
 * untied lm_head, other conv widths, biases, a finite time_step_limit, BF16 storage):
 *  - against a deliberately naive reference written plainly below, in double precision,
 *    token by token, straight from the equations of docs/mamba2.md sections 3-6;
 *  - one prefill == token-by-token decode == uneven pieces, with 1 and 3 threads;
 *  - the calibration observer sees every in_proj / out_proj input, with the right values;
 *  - bad token ids are rejected and leave the state unchanged. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "model/session.h"
#include "synth_checkpoint.h"

#define TOL 1e-4

/* ---- the naive reference: one token at a time, double precision ---- */
typedef struct {
    const lm_model *m;
    double *hist;  /* [n_layer, d_conv, conv_dim]: the last d_conv conv inputs, oldest first */
    double *h;     /* [n_layer, H, P, N] */
} naive;

static void naive_init(naive *r, const lm_model *m) {
    const lm_config *c = &m->cfg;
    size_t conv_dim = (size_t)c->d_inner + 2 * c->n_groups * c->d_state;
    r->m = m;
    r->hist = calloc((size_t)c->n_layer * c->d_conv * conv_dim, sizeof(double));
    r->h = calloc((size_t)c->n_layer * c->n_heads * c->head_dim * c->d_state, sizeof(double));
}

static void naive_free(naive *r) {
    free(r->hist);
    free(r->h);
}

static double silu(double x) { return x / (1.0 + exp(-x)); }
static double softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }

/* out[o] = sum_k W[o][k] in[k] (+ b[o]) */
static void naive_linear(double *out, const lm_linear *L, const double *in) {
    for (int o = 0; o < L->rows; o++) {
        double s = L->bias ? L->bias[o] : 0.0;
        for (int k = 0; k < L->cols; k++) s += (double)L->w[(size_t)o * L->cols + k] * in[k];
        out[o] = s;
    }
}

/* out = in / sqrt(mean(in^2) + eps) * w over n values */
static void naive_rmsnorm(double *out, const double *in, const float *w, int n, double eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += in[i] * in[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) out[i] = in[i] * r * w[i];
}

/* Feeds one token; logits [vocab]; in_proj_in0 [d_model] receives layer 0's in_proj input. */
static void naive_step(naive *r, int32_t token, double *logits, double *in_proj_in0) {
    const lm_model *m = r->m;
    const lm_config *c = &m->cfg;
    const int D = c->d_model, DI = c->d_inner, H = c->n_heads, P = c->head_dim, N = c->d_state, G = c->n_groups;
    const int W = c->d_conv, CD = DI + 2 * G * N, E = 2 * DI + 2 * G * N + H;
    double *u = calloc(D, sizeof(double)), *t = calloc(D, sizeof(double)), *zxbcdt = calloc(E, sizeof(double));
    double *xbc = calloc(CD, sizeof(double)), *y = calloc(DI, sizeof(double)), *out = calloc(D, sizeof(double));
    for (int i = 0; i < D; i++) u[i] = m->embedding[(size_t)token * D + i];

    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        naive_rmsnorm(t, u, L->norm, D, c->eps);
        if (l == 0) memcpy(in_proj_in0, t, D * sizeof(double));
        naive_linear(zxbcdt, &L->in_proj, t);
        const double *z = zxbcdt, *xBC_in = zxbcdt + DI, *dt_in = zxbcdt + 2 * DI + 2 * G * N;

        /* conv over the window of the last W inputs, this one last */
        double *hist = r->hist + (size_t)l * W * CD;
        memmove(hist, hist + CD, (size_t)(W - 1) * CD * sizeof(double));
        memcpy(hist + (size_t)(W - 1) * CD, xBC_in, CD * sizeof(double));
        for (int ch = 0; ch < CD; ch++) {
            double s = L->conv_b ? L->conv_b[ch] : 0.0;
            for (int k = 0; k < W; k++) s += (double)L->conv_w[(size_t)ch * W + k] * hist[(size_t)k * CD + ch];
            xbc[ch] = silu(s);
        }
        const double *x = xbc, *B = xbc + DI, *C = xbc + DI + G * N;

        double *h = r->h + (size_t)l * H * P * N;
        for (int hd = 0; hd < H; hd++) {
            int g = hd / (H / G);
            double dt = softplus(dt_in[hd] + L->dt_bias[hd]);
            dt = fmin(fmax(dt, c->dt_limit_min), c->dt_limit_max);
            double dA = exp(dt * L->A[hd]);
            for (int p = 0; p < P; p++) {
                double acc = 0.0;
                for (int n = 0; n < N; n++) {
                    double *hv = &h[((size_t)hd * P + p) * N + n];
                    *hv = dA * *hv + dt * x[hd * P + p] * B[g * N + n];
                    acc += *hv * C[g * N + n];
                }
                y[hd * P + p] = acc + L->D[hd] * x[hd * P + p];
            }
        }
        for (int i = 0; i < DI; i++) y[i] *= silu(z[i]);
        for (int g = 0; g < G; g++) naive_rmsnorm(y + g * (DI / G), y + g * (DI / G), L->gnorm + g * (DI / G), DI / G, c->eps);
        naive_linear(out, &L->out_proj, y);
        for (int i = 0; i < D; i++) u[i] += out[i];
    }
    naive_rmsnorm(t, u, m->norm_f, D, c->eps);
    naive_linear(logits, &m->lm_head, t);
    free(u), free(t), free(zxbcdt), free(xbc), free(y), free(out);
}

/* ---- the observer: checks shapes, counts tokens per (layer, site), keeps layer 0's in_proj input rows ---- */
typedef struct {
    int n_layer, d_model, d_inner;
    long tokens[64][2];
    float *in0;  /* [n_tokens, d_model] */
    int bad;
} observed;

static void observer(void *ctx, int layer, lm_site site, const float *x, int T, int K) {
    observed *o = ctx;
    if (layer < 0 || layer >= o->n_layer || (site != LM_SITE_IN_PROJ && site != LM_SITE_OUT_PROJ) || T < 1 ||
        K != (site == LM_SITE_IN_PROJ ? o->d_model : o->d_inner)) {
        o->bad++;
        return;
    }
    if (layer == 0 && site == LM_SITE_IN_PROJ) memcpy(o->in0 + o->tokens[0][0] * K, x, (size_t)T * K * sizeof(float));
    o->tokens[layer][site] += T;
}

/* ---- the checks ---- */
static const int n_tokens = 150; /* crosses two chunk boundaries */

static void make_tokens(int32_t *ids, int n, int vocab, uint64_t seed) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(synth_mix(seed + (uint64_t)i) % (uint64_t)vocab);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0.0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Runs ids through a fresh state in pieces of the given sizes (cycled), all logits kept. */
static void run_pieces(lm_session *s, const int32_t *ids, int n, const int *pieces, int n_pieces, float *logits) {
    size_t V = (size_t)lm_session_vocab_size(s);
    lm_session_reset(s);
    for (int done = 0, i = 0; done < n; i++) {
        int len = pieces[i % n_pieces] < n - done ? pieces[i % n_pieces] : n - done;
        CHECK_OK(lm_session_forward(s, ids + done, (size_t)len, logits + done * V, NULL));
        done += len;
    }
}

static void check_config(const char *name, const synth_config *sc, int against_naive) {
    char dir[64];
    if (synth_tempdir(dir) || synth_write_checkpoint(dir, sc)) {
        CHECK(0, "%s: cannot write the synthetic checkpoint", name);
        return;
    }
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, dir));
    synth_remove_dir(dir);
    if (!m) return;
    const lm_config *c = &m->cfg;
    const size_t V = (size_t)c->vocab_size;
    int32_t ids[150];
    make_tokens(ids, n_tokens, sc->vocab_size, sc->seed);
    float *prefill = malloc(n_tokens * V * sizeof(float)), *other = malloc(n_tokens * V * sizeof(float));

    for (int threads = 1; threads <= 3; threads += 2) {
        lm_session *s;
        CHECK_OK(test_session(&s, m, threads));
        const int whole[] = {n_tokens}, one[] = {1}, uneven[] = {1, 63, 2, 70, 5};
        run_pieces(s, ids, n_tokens, whole, 1, prefill);
        run_pieces(s, ids, n_tokens, one, 1, other);
        double d_decode = max_abs_diff(prefill, other, n_tokens * V);
        run_pieces(s, ids, n_tokens, uneven, 5, other);
        double d_uneven = max_abs_diff(prefill, other, n_tokens * V);
        CHECK(d_decode <= TOL, "%s, %d thread(s): prefill and token-by-token decode differ by %g", name, threads, d_decode);
        CHECK(d_uneven <= TOL, "%s, %d thread(s): prefill and uneven pieces differ by %g", name, threads, d_uneven);

        /* a bad id anywhere in the input: an error, and the state is not advanced */
        int32_t bad[3] = {ids[0], (int32_t)V, ids[1]};
        lm_session_reset(s);
        CHECK(lm_session_forward(s, bad, 3, NULL, NULL) == LM_ERR_ARG, "%s: token id %zu accepted", name, V);
        bad[1] = -1;
        CHECK(lm_session_forward(s, bad, 3, NULL, NULL) == LM_ERR_ARG, "%s: token id -1 accepted", name);
        CHECK(lm_session_forward(s, ids, 1, NULL, other) == LM_OK, "%s: %s", name, lm_last_error());
        CHECK(memcmp(other, prefill, V * sizeof(float)) == 0 || max_abs_diff(other, prefill, V) <= TOL,
              "%s: a rejected call changed the state", name);
        fprintf(stderr, "%-34s %d thread(s): |prefill - decode| %.1e, |prefill - uneven pieces| %.1e\n", name, threads,
                d_decode, d_uneven);
        lm_session_free(s);
    }

    if (against_naive) {
        naive r;
        naive_init(&r, m);
        double *ref = malloc(V * sizeof(double)), *in0 = malloc(n_tokens * c->d_model * sizeof(double));
        double d = 0.0, d_in0 = 0.0;
        for (int i = 0; i < n_tokens; i++) {
            naive_step(&r, ids[i], ref, in0 + (size_t)i * c->d_model);
            for (size_t v = 0; v < V; v++) d = fmax(d, fabs(prefill[i * V + v] - ref[v]));
        }
        CHECK(d <= TOL, "%s: prefill differs from the naive double-precision forward by %g", name, d);

        /* the observer, on a prefill in uneven pieces */
        observed o = {.n_layer = c->n_layer, .d_model = c->d_model, .d_inner = c->d_inner};
        o.in0 = calloc((size_t)n_tokens * c->d_model, sizeof(float));
        lm_session *s;
        CHECK_OK(test_session(&s, m, 2));
        lm_session_set_observer(s, observer, &o);
        const int uneven[] = {100, 50};
        run_pieces(s, ids, n_tokens, uneven, 2, other);
        CHECK(o.bad == 0, "%s: observer called with wrong arguments %d time(s)", name, o.bad);
        for (int l = 0; l < c->n_layer; l++)
            for (int site = 0; site < 2; site++)
                CHECK(o.tokens[l][site] == n_tokens, "%s: observer saw %ld tokens at layer %d site %d", name,
                      o.tokens[l][site], l, site);
        for (size_t i = 0; i < (size_t)n_tokens * c->d_model; i++) d_in0 = fmax(d_in0, fabs(o.in0[i] - in0[i]));
        CHECK(d_in0 <= TOL, "%s: observed in_proj input differs from the naive one by %g", name, d_in0);
        lm_session_set_observer(s, NULL, NULL);
        long before = o.tokens[0][0];
        CHECK_OK(lm_session_forward(s, ids, 3, NULL, NULL));
        CHECK(o.tokens[0][0] == before, "%s: observer still called after removal", name);
        lm_session_free(s);
        fprintf(stderr, "%-34s |prefill - naive double| %.1e, |observed in_proj input - naive| %.1e\n", name, d, d_in0);
        free(o.in0);
        free(ref);
        free(in0);
        naive_free(&r);
    }
    free(prefill);
    free(other);
    lm_model_free(m);
}

int main(void) {
    synth_config c;

    /* the naive comparison: two groups, untied head, biases everywhere, conv width 3,
     * a time_step_limit that clamps, padded vocabulary */
    synth_default(&c);
    c.n_groups = 2, c.tied = 0, c.proj_bias = 1, c.d_conv = 3, c.dt_limit_min = 0.01, c.dt_limit_max = 0.05;
    c.pad_multiple = 16, c.seed = 7;
    check_config("groups 2, untied, biases, conv 3", &c, 1);

    synth_default(&c);
    check_config("default (F32, tied, conv 4)", &c, 1);

    synth_default(&c);
    c.n_groups = 4, c.d_conv = 2, c.dtype = "BF16", c.conv_bias = 0, c.d_state = 24, c.seed = 3;
    check_config("groups 4, conv 2, no conv bias, BF16", &c, 0);

    synth_default(&c);
    c.d_conv = 1, c.head_dim = 8, c.n_layer = 3, c.dtype = "F16", c.seed = 11;
    check_config("conv 1 (no conv state), F16", &c, 0);

    synth_default(&c);
    c.d_conv = 6, c.d_model = 48, c.head_dim = 32, c.d_state = 40, c.seed = 5;
    check_config("conv 6, 3 heads, d_state 40", &c, 0);
    return test_finish();
}
