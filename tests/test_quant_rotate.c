/* The offline transforms leave the float model's function unchanged: the LightMamba rotation
 * (norms folded, residual stream rotated, online Hadamard before out_proj) and SmoothQuant's
 * smoothing give the same logits as the original tiny model, within 1e-4. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/file.h"
#include "model/model.h"
#include "quant/transform.h"

#define N_TOK 80 /* more than one session chunk */

static float *run_logits(const lm_model *m, const int32_t *tokens, int n) {
    lm_session *s;
    float *logits = malloc((size_t)n * m->cfg.vocab_size * sizeof *logits);
    CHECK_OK(test_session(&s, m, 2));
    CHECK_OK(lm_session_forward(s, tokens, (size_t)n, logits, NULL));
    lm_session_free(s);
    return logits;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

int main(void) {
    char *dir = lm_path_join(test_root(), "models/mamba2-tiny"), *tok_path = lm_path_join(dir, "reference/tokens.i32");
    char *raw;
    size_t len;
    lm_model *orig, *rot, *smooth;
    CHECK_OK(lm_model_init(&orig, dir));
    CHECK_OK(lm_read_file(tok_path, &raw, &len));
    if (test_failures) return test_finish();
    const int32_t *tokens = (const int32_t *)raw;
    const size_t n_logits = (size_t)N_TOK * orig->cfg.vocab_size;
    float *ref = run_logits(orig, tokens, N_TOK);

    /* Rotation: a genuinely different set of weights computing the same function. */
    CHECK_OK(lm_model_clone_f32(&rot, orig));
    CHECK_OK(lm_fuse_rotation(rot));
    CHECK(rot->rot_inner != NULL && rot->quant.rotated, "no online rotation set");
    CHECK(rot->layers[0].norm[0] == 1.0f && rot->norm_f[0] == 1.0f, "norm weights not folded");
    CHECK(max_diff(rot->layers[0].in_proj.w, orig->layers[0].in_proj.w, (size_t)orig->layers[0].in_proj.rows * orig->cfg.d_model) > 1e-3,
          "in_proj unchanged by the rotation");
    float *got = run_logits(rot, tokens, N_TOK);
    double d = max_diff(ref, got, n_logits);
    printf("rotated + fused float model: max |logit difference| %.3g\n", d);
    CHECK(d < 1e-4, "rotated model logits differ by %g", d);
    free(got);

    /* Each part alone (the ablations): the residual rotation, and the online rotation. */
    for (int part = 0; part < 2; part++) {
        lm_model *half;
        CHECK_OK(lm_model_clone_f32(&half, orig));
        CHECK_OK(lm_fuse_rotation_parts(half, part == 0, part == 1));
        CHECK((half->rot_inner != NULL) == (part == 1), "online rotation %s", part ? "missing" : "set");
        got = run_logits(half, tokens, N_TOK);
        d = max_diff(ref, got, n_logits);
        printf("%s rotation only: max |logit difference| %.3g\n", part ? "online" : "residual", d);
        CHECK(d < 1e-4, "%s-only rotated model logits differ by %g", part ? "online" : "residual", d);
        free(got);
        lm_model_free(half);
    }

    /* Smoothing with arbitrary positive activation maxima: also function-preserving. */
    CHECK_OK(lm_model_clone_f32(&smooth, orig));
    float *amax = malloc((size_t)orig->cfg.d_inner * sizeof *amax);
    for (int l = 0; l < orig->cfg.n_layer; l++)
        for (int site = 0; site < 2; site++) {
            int K = site == LM_SITE_IN_PROJ ? orig->cfg.d_model : orig->cfg.d_inner;
            for (int j = 0; j < K; j++) amax[j] = 0.1f + (float)((j * 7919 + l * 31 + site) % 97);
            lm_fuse_smoothing(smooth, l, (lm_site)site, amax, 0.5f);
        }
    got = run_logits(smooth, tokens, N_TOK);
    d = max_diff(ref, got, n_logits);
    printf("smoothed float model: max |logit difference| %.3g\n", d);
    CHECK(d < 1e-4, "smoothed model logits differ by %g", d);
    free(got);

    /* The source model is never modified, and a transformed model cannot be cloned again. */
    float *again = run_logits(orig, tokens, N_TOK);
    CHECK(memcmp(again, ref, n_logits * sizeof(float)) == 0, "the source model changed");
    lm_model *twice = NULL;
    CHECK(lm_model_clone_f32(&twice, rot) != LM_OK && twice == NULL, "a rotated model was accepted as a float source");

    free(again);
    free(amax);
    free(ref);
    free(raw);
    free(tok_path);
    free(dir);
    lm_model_free(smooth);
    lm_model_free(rot);
    lm_model_free(orig);
    return test_finish();
}
