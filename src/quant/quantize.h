/* Weight quantization into the integer linear format of kernels.h:
 *   W[o][k] ~= qw[o][k] * (2^s1 + 2^s2) * 2^e0[o],   s1, s2 in [0, 7] per (row o, group of 128 columns),
 * qw symmetric in [-qmax, qmax], qmax = 2^(wbits-1) - 1.
 *
 * Scale choice: for each row, every base exponent e0 near log2(max|W[o]| / qmax) is tried; for
 * each, every group takes the exponent pair whose scale minimizes the group's squared error
 * sum_k (W - q * scale)^2 (q rounded to nearest); the row keeps the e0 of least total error.
 *
 * Round to nearest (lm_quantize_rtn) or GPTQ (lm_quantize_gptq: Frantar et al. 2022, columns
 * quantized in order, each one's error spread over the not yet quantized columns through the
 * inverse Hessian of the layer's inputs, H = X^T X). Same format either way.
 *
 * Shape legend: O rows (outputs), K columns (inputs), W [O, K] row-major. */
#ifndef LM_QUANT_QUANTIZE_H
#define LM_QUANT_QUANTIZE_H
#include <stdint.h>
#include "kernels/kernels.h"
#include "model/model.h"

/* Writable storage of one quantized matrix; `view` points into it (what lm_linear holds). */
typedef struct {
    lm_qweight view;
    uint8_t *q;        /* [rows, row_stride] packed weights */
    uint8_t *scale;    /* [rows, groups] s1 | s2 << 4 */
    int8_t *e0;        /* [rows] */
} lm_qweight_buf;


/* Allocates (zeroed) storage for an O x K matrix of wbits (4 or 8). */
lm_status lm_qweight_buf_init(lm_qweight_buf *b, int rows, int cols, int wbits);
void lm_qweight_buf_free(lm_qweight_buf *b);
/* Hands b's buffers to m (lm_model_free frees them; on failure they are freed here). */
lm_status lm_qweight_buf_give(lm_qweight_buf *b, lm_model *m);

/* lm_qweight_scale, lm_qweight_row, lm_qweight_dequantize: kernels.h. */

/* Best exponent pair for one group given the row's e0: minimizes sum (w - round(w/s)*s)^2 over
 * the n values, s = (2^s1 + 2^s2) 2^e0. Returns the error; *pair = s1 | s2 << 4 (s1 <= s2). */
double lm_wgroup_best_pair(const float *w, int n, int e0, int qmax, uint8_t *pair);

/* Round to nearest with the searched scales. W [O, K]; *out is initialised here (not before). */
lm_status lm_quantize_rtn(lm_qweight_buf *out, const float *W, int O, int K, int wbits, lm_pool *pool);

/* GPTQ. H [K, K] = sum over calibration tokens of x x^T (double); a multiple of the identity
 * (damp * mean diagonal, damp e.g. 0.01) is added before inverting. Columns whose diagonal is zero
 * (inputs never seen) are quantized by rounding alone. Scales: e0 per row from the round-to-nearest
 * search on W, each group's pair chosen on the error-updated weights when the group is reached. */
lm_status lm_quantize_gptq(lm_qweight_buf *out, const float *W, int O, int K, int wbits,
                           const double *H, double damp, lm_pool *pool);

#endif
