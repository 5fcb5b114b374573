/* Compute kernels: the thread pool, float32 matrix products and the integer
 * (quantized) linear layers. Every kernel has a portable scalar reference; SIMD
 * variants (AVX2, AVX-512, AVX-512 VNNI) are chosen at run time from the CPU's
 * features and give bit-identical results on the integer paths.
 *
 * Shape legend: T tokens, K input channels, O output channels. Matrices are row-major.
 *
 * ---------------------------------------------------------------------------
 * The integer linear layer (the contract shared by src/quant and the kernels)
 * ---------------------------------------------------------------------------
 * Weights W [O, K], symmetric, `wbits` = 4 or 8:
 *   qw[o][k] in [-7, 7] (4-bit) or [-127, 127] (8-bit).
 *   4-bit: two per byte, row-major, row stride ceil(K/2) bytes, column k in the low
 *   nibble when k is even, two's complement nibbles. 8-bit: int8, row stride K.
 *   Scale per (row o, group G of 128 consecutive input columns; the last group may be
 *   shorter): w_scale = 2^(e0[o] + s1) + 2^(e0[o] + s2), s1, s2 in [0, 7] (the hardware's
 *   two 3-bit exponents), stored as one byte s1 | s2 << 4; e0[o] is an int8 per row.
 *   So W[o][k] ~= qw[o][k] * (2^s1 + 2^s2) * 2^e0[o].
 * Activations x [T, K], dynamic per token, symmetric, `abits` = 4 or 8, qmax = 2^(abits-1) - 1:
 *   one power-of-two exponent e_g per group g of 8 consecutive channels;
 *   q = clamp(round_half_up(x / 2^e_g), -qmax, qmax).
 *   Stored relative to a per-token base: eb = max_g e_g - SA_MAX, sa_g = e_g - eb in
 *   [0, SA_MAX] (groups whose own exponent is below eb use eb), SA_MAX = 15 for 4-bit
 *   activations and 7 for 8-bit, so every accumulator below fits its width.
 * Product, exact integer arithmetic (so any summation order gives the same bits):
 *   acc_G   = sum_{g in G} ( sum_{k in g} q[k] * qw[o][k] ) << sa_g        int32
 *   acc_o   = sum_G (acc_G << s1[o][G]) + (acc_G << s2[o][G])              int64
 *   y[t][o] = ldexpf((float)acc_o, eb + e0[o])   (one rounding: int64 -> float)
 * ------------------------------------------------------------------------- */
#ifndef LM_KERNELS_H
#define LM_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "lightmamba.h"

/* ---- thread pool ---- */
typedef struct lm_pool lm_pool;
/* n_threads workers in all, the calling thread included; n_threads <= 0 means all cores. */
lm_status lm_pool_init(lm_pool **pool, int n_threads);
void lm_pool_free(lm_pool *pool);
int lm_pool_size(const lm_pool *pool);
/* Calls fn(ctx, i, n) once for each i in [0, n) with n = lm_pool_size(pool), in parallel,
 * and returns when all are done. pool == NULL runs fn(ctx, 0, 1) on the caller. */
typedef void (*lm_task_fn)(void *ctx, int i, int n);
void lm_pool_run(lm_pool *pool, lm_task_fn fn, void *ctx);

/* A quantized weight matrix, laid out as in the contract above. */
typedef struct {
    int rows, cols;             /* O x K */
    int wbits;                  /* 4 or 8 */
    const uint8_t *q;           /* packed weights, rows * row_stride bytes */
    size_t row_stride;          /* ceil(K/2) for 4-bit, K for 8-bit */
    const uint8_t *scale;       /* rows * ceil(K/128) bytes, s1 | s2 << 4 */
    const int8_t *e0;           /* rows: base exponent */
} lm_qweight;

/* ---- float32 ----
 * y[t][o] = sum_k x[t][k] * W[o][k]      x [T, K], W [O, K], y [T, O] */
void lm_matmul_f32(float *y, const float *x, const float *W, int T, int K, int O, lm_pool *pool);

#endif
