/* lm_quantize: float model -> quantized model file.
 *   1. a private float copy of the model;
 *   2. smoothquant: activation maxima from calibration, smoothing folded into the norms;
 *      lightmamba: the Hadamard rotations fused into the weights (transform.h);
 *   3. gptq: Hessians from calibration on the transformed copy (the inputs the quantized model sees);
 *   4. every in_proj and out_proj quantized (quantize.h), then the file written (qfile.h). */
#include <stdlib.h>
#include <string.h>

#include "common/datadir.h"
#include "common/error.h"
#include "common/file.h"
#include "quant/calib.h"
#include "quant/intcalib.h"
#include "model/qfile.h"
#include "quant/quantize.h"
#include "quant/transform.h"

#define GPTQ_DAMP 0.01

lm_quant_settings lm_quant_defaults(void) {
    return (lm_quant_settings){.method = LM_QUANT_LIGHTMAMBA, .wbits = 4, .abits = 4, .gptq = 0, .alpha = 0.5f,
                               .ssm_mode = LM_SSM_FLOAT, .datapath = 0, .act_group = LM_ACT_GROUP,
                               .act_scale = LM_ACT_SCALE_POW2, .head_bits = 0, .embedding_bits = 0, .calib_samples = 128, .calib_len = 512,
                               .rotated = 0};
}

const char *lm_quant_method_name(lm_quant_method m) {
    switch (m) {
    case LM_QUANT_NONE: return "float";
    case LM_QUANT_RTN: return "rtn";
    case LM_QUANT_SMOOTHQUANT: return "smoothquant";
    case LM_QUANT_LIGHTMAMBA: return "lightmamba";
    }
    return "unknown";
}

const lm_quant_settings *lm_model_quant(const lm_model *m) { return &m->quant; }

static lm_status check_settings(const lm_quant_settings *q) {
    if (q->method < LM_QUANT_RTN || q->method > LM_QUANT_LIGHTMAMBA)
        return lm_fail(LM_ERR_ARG, "quantize: unknown method %d", (int)q->method);
    if ((q->wbits != 4 && q->wbits != 8) || (q->abits != 4 && q->abits != 8))
        return lm_fail(LM_ERR_ARG, "quantize: --wbits and --abits must be 4 or 8 (got %d and %d)", q->wbits, q->abits);
    if (q->wbits == 8 && q->abits == 4)
        return lm_fail(LM_ERR_UNSUPPORTED, "quantize: W8A4 is not supported by the integer kernels (use W4A4, W4A8 or W8A8)");
    if (!(q->alpha >= 0 && q->alpha <= 1)) return lm_fail(LM_ERR_ARG, "quantize: --alpha %g must lie in [0, 1]", q->alpha);
    if (q->calib_samples < 1 || q->calib_len < 1)
        return lm_fail(LM_ERR_ARG, "quantize: calibration needs at least one sample of one token");
    if (q->ssm_mode != LM_SSM_FLOAT && q->ssm_mode != LM_SSM_POT8)
        return lm_fail(LM_ERR_UNSUPPORTED, "quantize: SSM mode %d is not supported", (int)q->ssm_mode);
    if (q->datapath & ~LM_DP_RELEASE) return lm_fail(LM_ERR_ARG, "quantize: unknown datapath flags 0x%x", (unsigned)q->datapath);
    if (q->datapath && q->ssm_mode != LM_SSM_POT8)
        return lm_fail(LM_ERR_ARG, "quantize: --datapath applies to --ssm pot8 only");
    if ((q->datapath & LM_DP_QRULE) && q->abits == 8)
        return lm_fail(LM_ERR_UNSUPPORTED, "quantize: the release's quantizer rule has no 8-bit linear inputs (its "
                       "-128 does not fit the 8-bit kernels); use --abits 4");
    if ((q->head_bits != 0 && q->head_bits != 8 && q->head_bits != 4) ||
        (q->embedding_bits != 0 && q->embedding_bits != 8 && q->embedding_bits != 4))
        return lm_fail(LM_ERR_ARG, "quantize: lm_head / embedding format %d / %d: 0 (float16), 8 or 4 bits", q->head_bits,
                       q->embedding_bits);
    if (!lm_act_format_valid(q->act_group, q->act_scale))
        return lm_fail(LM_ERR_ARG, "quantize: activation group %d and scale type %d: the group must be 8, 16, 32, 64, "
                       "128 or per token, the scale a power of two or real", q->act_group, (int)q->act_scale);
    if (q->ssm_mode == LM_SSM_POT8 && (q->act_group != LM_ACT_GROUP || q->act_scale != LM_ACT_SCALE_POW2))
        return lm_fail(LM_ERR_UNSUPPORTED, "quantize: --ssm pot8 (the integer datapath) takes only the hardware's "
                       "activation format (8 channels, power of two)");
    return LM_OK;
}

/* W [O, K] -> *out, integer of `bits`, its storage owned by m. H: the input Hessian (float, K x K)
 * for GPTQ, or NULL for round to nearest. */
static lm_status quantize_matrix(lm_model *m, const float *W, int O, int K, int bits, const float *H, lm_pool *pool,
                                 lm_qweight *out) {
    lm_qweight_buf b;
    lm_status s;
    if (H) {
        double *Hd = malloc((size_t)K * K * sizeof *Hd);
        if (!Hd) return lm_fail(LM_ERR_NOMEM, "out of memory for a %d x %d Hessian", K, K);
        for (size_t i = 0; i < (size_t)K * K; i++) Hd[i] = H[i];
        s = lm_quantize_gptq(&b, W, O, K, bits, Hd, GPTQ_DAMP, pool);
        free(Hd);
    } else {
        s = lm_quantize_rtn(&b, W, O, K, bits, pool);
    }
    LM_TRY(s);
    *out = b.view;
    return lm_qweight_buf_give(&b, m);
}

/* One linear layer of the copy becomes integer. H as for quantize_matrix. The float weights stay in
 * the copy's owned memory; only the integer ones are written. */
static lm_status quantize_linear(lm_model *m, lm_linear *lin, const float *H, const lm_quant_settings *q, lm_pool *pool) {
    LM_TRY(quantize_matrix(m, lin->w, lin->rows, lin->cols, q->wbits, H, pool, &lin->q));
    lin->kind = LM_LINEAR_INT;
    lin->abits = q->abits;
    return LM_OK;
}

/* embedding_bits, head_bits: the embedding and lm_head become integer (either alone, or both), by
 * round to nearest (calibration collects no Hessian of lm_head's input). A tied lm_head of the
 * embedding's format is the integer embedding; of another format it is untied (the file then
 * stores both). */
static lm_status quantize_head(lm_model *m, int embedding_bits, int head_bits, lm_pool *pool) {
    lm_config *c = &m->cfg;
    if (c->tie_embeddings && embedding_bits != head_bits) {
        c->tie_embeddings = 0;
        m->lm_head = (lm_linear){.kind = LM_LINEAR_F32, .rows = c->vocab_size, .cols = c->d_model, .w = m->embedding};
    }
    if (embedding_bits)
        LM_TRY(quantize_matrix(m, m->embedding, c->vocab_size, c->d_model, embedding_bits, NULL, pool, &m->embedding_q));
    if (!head_bits) return LM_OK;
    if (c->tie_embeddings)
        m->lm_head.q = m->embedding_q;
    else
        LM_TRY(quantize_matrix(m, m->lm_head.w, c->vocab_size, c->d_model, head_bits, NULL, pool, &m->lm_head.q));
    m->lm_head.kind = LM_LINEAR_INT;
    m->lm_head.abits = LM_HEAD_ABITS;
    return LM_OK;
}

/* The calibration text (calib_path, else the bundled WikiText-2 validation text) as the model's tokens. */
static lm_status load_calibration_ids(const lm_model *src, const char *calib_path, int32_t **ids, size_t *n_ids) {
    char *text = NULL, *fallback = NULL;
    size_t len = 0;
    lm_tokenizer *tok = NULL;
    if (!calib_path) LM_TRY(lm_data_path("calib_wikitext2_valid.txt", &fallback));
    if (!calib_path) calib_path = fallback;
    lm_status s = lm_read_file(calib_path, &text, &len);
    if (s == LM_OK && len == 0) s = lm_fail(LM_ERR_ARG, "calibration text %s is empty", calib_path);
    if (s == LM_OK) s = lm_tokenizer_init_for_model(&tok, src);
    if (s == LM_OK) s = lm_tokenizer_encode(tok, text, len, ids, n_ids);
    lm_tokenizer_free(tok);
    free(text);
    free(fallback);
    return s;
}

lm_status lm_quantize(const lm_model *src, const lm_quant_settings *settings, const char *calib_path, int n_threads,
                      const char *out_path, lm_quant_progress_fn progress, void *progress_ctx) {
    lm_quant_settings q = *settings;
    LM_TRY(check_settings(&q));
    q.rotated = q.method == LM_QUANT_LIGHTMAMBA;
    const int need_amax = q.method == LM_QUANT_SMOOTHQUANT, need_hessian = q.gptq, need_int = q.ssm_mode == LM_SSM_POT8;
    if (!need_amax && !need_hessian && !need_int) q.calib_samples = q.calib_len = 0; /* no calibration happened */

    lm_model *m = NULL;
    lm_pool *pool = NULL;
    char *tok_json = NULL;
    size_t tok_len = 0, n_ids = 0;
    int32_t *ids = NULL;
    lm_calib_stats st = {0};
    lm_int_calib *int_cal = NULL;
    lm_int_layer *int_layers = NULL;
    lm_status s = lm_model_clone_f32(&m, src);
    if (!s) s = lm_model_tokenizer_json(src, &tok_json, &tok_len);
    if (!s && (need_amax || need_hessian || need_int)) s = load_calibration_ids(src, calib_path, &ids, &n_ids);
    if (!s && need_amax) {
        s = lm_calibrate(m, ids, n_ids, q.calib_samples, q.calib_len, n_threads, 1, 0, &st, progress, progress_ctx);
        for (int l = 0; !s && l < m->cfg.n_layer; l++)
            for (int site = 0; site < 2; site++)
                lm_fuse_smoothing(m, l, (lm_site)site, st.amax[site] + (size_t)l * st.K[site], q.alpha);
        lm_calib_stats_free(&st);
    }
    if (!s && q.rotated) s = lm_fuse_rotation(m);
    if (!s && need_hessian)
        s = lm_calibrate(m, ids, n_ids, q.calib_samples, q.calib_len, n_threads, 0, 1, &st, progress, progress_ctx);
    /* LightMamba*: the integer sites' ranges, from the transformed float model */
    if (!s && need_int) s = lm_calloc(&int_cal, (size_t)m->cfg.n_layer, sizeof *int_cal, "integer calibration");
    if (!s && need_int)
        s = lm_int_calibrate(m, ids, n_ids, q.calib_samples, q.calib_len, n_threads, int_cal, progress, progress_ctx);
    if (!s) s = lm_pool_init(&pool, n_threads);
    for (int l = 0; !s && l < m->cfg.n_layer; l++) {
        lm_layer *L = &m->layers[l];
        const float *Hin = need_hessian ? st.hessian[0] + (size_t)l * st.K[0] * st.K[0] : NULL;
        const float *Hout = need_hessian ? st.hessian[1] + (size_t)l * st.K[1] * st.K[1] : NULL;
        s = quantize_linear(m, &L->in_proj, Hin, &q, pool);
        if (!s) s = quantize_linear(m, &L->out_proj, Hout, &q, pool);
        if (!s) s = lm_quant_report(progress, progress_ctx, "quantize", (size_t)l + 1, (size_t)m->cfg.n_layer);
    }
    if (!s && (q.head_bits || q.embedding_bits)) s = quantize_head(m, q.embedding_bits, q.head_bits, pool);
    if (!s && need_int) s = lm_calloc(&int_layers, (size_t)m->cfg.n_layer, sizeof *int_layers, "integer layers");
    if (!s && need_int && !(s = lm_int_build_layers(int_layers, m, int_cal, q.abits, q.datapath))) m->int_layers = int_layers;
    if (!s) {
        m->quant = q;
        s = lm_qfile_write(out_path, m, tok_json, tok_len);
    }
    if (m && m->int_layers)
        for (int l = 0; l < m->cfg.n_layer; l++) lm_int_layer_free(&m->int_layers[l]);
    if (m) m->int_layers = NULL;
    free(int_layers);
    free(int_cal);
    lm_calib_stats_free(&st);
    lm_pool_free(pool);
    free(ids);
    free(tok_json);
    lm_model_free(m);
    return s;
}
