/* Compute kernels: the thread pool, float32 matrix products and the integer
 * (quantized) linear layers. Every kernel has a portable scalar reference; SIMD
 * variants (AVX2, AVX-512 with VNNI) are chosen at run time from the CPU's
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
 *   one power-of-two exponent e_g per group g of 8 consecutive channels (the last group
 *   may be shorter): with m = max |x| over the group, e_g = floor(log2 m) - (abits - 2),
 *   so m / 2^e_g lies in [2^(abits-2), 2^(abits-1)) before rounding (docs/integer-datapath.md
 *   section 1's s = bitlength(m) - (bits-1) for integer m); a group with m = 0 takes eb;
 *   q = clamp(round_half_up(x / 2^e_g), -qmax, qmax), half up = toward +inf (-2.5 -> -2).
 *   Stored relative to a per-token base: eb = max_g e_g - SA_MAX, sa_g = e_g - eb in
 *   [0, SA_MAX] (groups whose own exponent is below eb use eb; a token of zeros has
 *   eb = 0), SA_MAX = 15 for 4-bit
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
/* One call at a time per pool: a call made while the pool is busy (from inside a task,
 * or from another thread) runs its n tasks one after another on its own caller. */
void lm_pool_run(lm_pool *pool, lm_task_fn fn, void *ctx);
/* Part i of n of [0, count) in whole chunks of `align` (the last chunk may be short):
 * [*begin, *end), empty when there is less work than parts. */
void lm_pool_split(int count, int i, int n, int align, int *begin, int *end);

/* ---- SIMD level, chosen at run time ----
 * LM_SIMD_AVX2 needs AVX2 + FMA; LM_SIMD_AVX512 needs AVX-512 F + BW + VNNI (every
 * AVX-512 CPU since Cascade Lake / Zen 4; older AVX-512 parts use the AVX2 path).
 * The level in use is the best the CPU has, capped by lm_set_kernels (lightmamba.h) or
 * set by lm_simd_level_set (for tests). */
typedef enum { LM_SIMD_SCALAR = 0, LM_SIMD_AVX2 = 1, LM_SIMD_AVX512 = 2 } lm_simd_level;
lm_simd_level lm_simd_detect(void);
lm_simd_level lm_simd_level_get(void);
/* LM_ERR_UNSUPPORTED when the CPU lacks the level. Not meant to race with running kernels. */
lm_status lm_simd_level_set(lm_simd_level level);
const char *lm_simd_level_name(lm_simd_level level);

/* A quantized weight matrix, laid out as in the contract above. */
typedef struct {
    int rows, cols;             /* O x K */
    int wbits;                  /* 4 or 8 */
    const uint8_t *q;           /* packed weights, rows * row_stride bytes */
    size_t row_stride;          /* ceil(K/2) for 4-bit, K for 8-bit */
    const uint8_t *scale;       /* rows * ceil(K/128) bytes, s1 | s2 << 4 */
    const int8_t *e0;           /* rows: base exponent */
} lm_qweight;

/* ---- weight packing (shared with src/quant) ----
 * 4-bit rows: K values in [-8, 7] -> ceil(K/2) bytes, column k in the low nibble when k is
 * even, two's complement nibbles; the unused high nibble of an odd-length row is 0. */
void lm_pack_int4_row(uint8_t *dst, const int8_t *src, int K);
void lm_unpack_int4_row(int8_t *dst, const uint8_t *src, int K);
/* The weight scale byte of one (row, 128-column group): s1 | s2 << 4, s1, s2 in [0, 7]. */
static inline uint8_t lm_wscale_byte(int s1, int s2) { return (uint8_t)((s1 & 7) | (s2 & 7) << 4); }
static inline int lm_wscale_s1(uint8_t b) { return b & 7; }
static inline int lm_wscale_s2(uint8_t b) { return (b >> 4) & 7; }
/* The integer multiplier 2^s1 + 2^s2 that the byte stands for. */
static inline int lm_wscale_mult(uint8_t b) { return (1 << lm_wscale_s1(b)) + (1 << lm_wscale_s2(b)); }

/* ---- power-of-two group quantization (the rule of the contract) ----
 * The exponent of a group with absmax m > 0 at `bits` bits: e = floor(log2 m) - (bits - 2),
 * so m / 2^e lies in [2^(bits-2), 2^(bits-1)) before rounding (for an integer m this is
 * docs/integer-datapath.md section 1's s = bitlength(m) - (bits - 1)). m == 0 (or only
 * NaNs) gives LM_ACT_EXP_ZERO; an infinite m counts as FLT_MAX. */
#define LM_ACT_EXP_ZERO (-100000)
int lm_act_exponent(float absmax, int bits);
/* clamp(round_half_up(x / 2^e), -qmax, qmax), qmax = 2^(bits-1) - 1, computed exactly
 * (floor(x * 2^-e + 0.5) in double); NaN -> 0, +-Inf -> +-qmax. */
int lm_act_quantize(float x, int e, int bits);

/* The weight scale of (row o, 128-column group g): (2^s1 + 2^s2) * 2^e0[o]. */
float lm_qweight_scale(const lm_qweight *w, int o, int g);
/* Row o's integer weights qw[o][:], unpacked.                                   out [K] */
void lm_qweight_row(const lm_qweight *w, int o, int8_t *out);
/* Rows [o0, o1) dequantized: out[o - o0][k] = qw[o][k] * scale(o, k / 128), exact in float. out [o1 - o0, K] */
void lm_qweight_dequantize_rows(const lm_qweight *w, int o0, int o1, float *out);
/* The whole matrix.                                                            out [O, K] */
void lm_qweight_dequantize(const lm_qweight *w, float *out);

/* ---- the integer linear layer ----
 * Quantized activations of up to max_T tokens of K channels, in the contract's form
 * (q, sa, eb) plus a copy laid out for the kernels of `wbits`-bit weights.
 *
 * Other activation formats, for research (lm_qact_set_format; lightmamba.h's act_group, act_scale):
 *   power-of-two scales over `group` channels (16, 32, 64, 128, or the whole token): one exponent
 *     per group, chosen by the contract's rule from the group's absmax, shared by its 8-channel
 *     groups; the per-token window (eb, sa <= SA_MAX) as in the contract. That is the contract's
 *     format, so the integer kernels run it unchanged.
 *   real-valued scales over `group` channels: s = absmax / qmax, q = clamp(round_half_up(x / s)),
 *     xhat = q * s in float (0 for a group of zeros). The product is a reference path in float32:
 *     xhat times the dequantized weights (exact in float), a tile of rows at a time, by sgemm. */
#define LM_ACT_GROUP 8      /* channels per activation exponent */
#define LM_WEIGHT_GROUP 128 /* input columns per weight scale */
#define LM_WEXP_MAX 7       /* s1, s2 in [0, LM_WEXP_MAX] */
static inline int lm_wgroups(int cols) { return (cols + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP; }
static inline int lm_qmax(int bits) { return (1 << (bits - 1)) - 1; }   /* weights in [-qmax, qmax] */
typedef struct {
    int max_T, K, abits, wbits;
    int T;                  /* tokens held */
    int8_t *q;              /* [max_T][K] */
    uint8_t *sa;            /* [max_T][ceil(K/8)], in [0, SA_MAX] */
    int32_t *eb;            /* [max_T] */
    /* Kernel layout (built by lm_qact_pack; read only by lm_qlinear). K is padded with
     * zeros to Kp = a multiple of 128. A lane is 8 channels for 4-bit weights (each
     * 128-block of kq stored as its 64 even channels, then its 64 odd ones, matching
     * the nibble order) and 4 channels for 8-bit weights (kq in natural order). */
    int Kp, lanes;          /* lanes per token: Kp/8 or Kp/4 */
    int8_t *kq;             /* [max_T][Kp] */
    int32_t *ksa;           /* [max_T][lanes]: sa of the lane's group */
    int32_t *kcorr;         /* [max_T][lanes]: -(2^(wbits-1)) * sum of the lane's q (unsigned weight offset) */
    int group;              /* channels per scale: LM_ACT_GROUP (the contract), a larger multiple of 8, or K */
    lm_act_scale scale;     /* power of two (the contract's form above) or real (xhat below) */
    float *xhat;            /* real scales: [max_T][K] the quantized activations times their scales */
} lm_qact;

/* abits 4 or 8; wbits 4 or 8; W8A4 is refused (its acc_G would overflow int32). The format is the
 * contract's (LM_ACT_GROUP channels, power of two) until lm_qact_set_format. */
lm_status lm_qact_init(lm_qact *a, int max_T, int K, int abits, int wbits);
/* group: LM_ACT_GROUP, 16, 32, 64, 128 or LM_ACT_PER_TOKEN; anything else -> LM_ERR_ARG. */
lm_status lm_qact_set_format(lm_qact *a, int group, lm_act_scale scale);
/* 1 when (group, scale) is a format lm_qact_set_format takes. */
int lm_act_format_valid(int group, lm_act_scale scale);
void lm_qact_free(lm_qact *a);
/* Quantizes x [T, K] in a's format: power of two (the contract: fills q, sa, eb, and builds the
 * kernel layout) or real (fills xhat). NaN -> 0, +-Inf -> +-qmax (see lm_act_quantize). */
lm_status lm_quantize_act(lm_qact *a, const float *x, int T);
/* Builds the kernel layout from q, sa, eb of T tokens filled by the caller. q may also hold
 * -qmax - 1 (the release datapath's quantizer, docs/release-datapath.md; every accumulator bound
 * above still holds). */
lm_status lm_qact_pack(lm_qact *a, int T);
/* y[t][o] = the contract's product of token t of a and row o of W.   y [a->T, W->rows]
 * q, qw must lie in the contract's ranges (the quantizers guarantee it); every SIMD level
 * gives the same bits. Rows are split over the pool; T > 1 reuses each unpacked weight
 * group across a block of tokens. Real scales: the float reference product of xhat and W. */
lm_status lm_qlinear(float *y, const lm_qact *a, const lm_qweight *W, lm_pool *pool);
/* The same product stopped before its one rounding: acc[t][o] = acc_o, exact (every SIMD level
 * and thread count gives the same integers). The integer datapath (src/integer) rounds it to its
 * own fixed point. Power-of-two scales only.                                   acc [a->T, W->rows] */
lm_status lm_qlinear_acc(int64_t *acc, const lm_qact *a, const lm_qweight *W, lm_pool *pool);

/* ---- memory bandwidth ----
 * Read bandwidth in GB/s (1e9 bytes/s) of all pool threads streaming disjoint parts of a
 * `bytes` buffer (make it several times the last-level cache), best of a few passes.
 * Returns a negative value if the buffer cannot be allocated. */
double lm_measure_read_bandwidth(lm_pool *pool, size_t bytes);
/* Peak int8 multiply-accumulates in GMAC/s (1e9 MACs/s) of all pool threads at the SIMD level in
 * use (AVX-512: vpdpbusd; AVX2: vpmaddubsw), best of a few passes of about 50 ms; negative at the
 * scalar level. The compute roofline of the integer kernels: prefill tokens/s <= this / MACs per token. */
double lm_measure_int8_peak(lm_pool *pool);

/* ---- float32 ----
 * y[t][o] = sum_k x[t][k] * W[o][k]      x [T, K], W [O, K], y [T, O] */
void lm_matmul_f32(float *y, const float *x, const float *W, int T, int K, int O, lm_pool *pool);
/* The float matmuls' common start: 0 when nothing is left to compute (T or O empty; K empty
 * sets y to 0), else 1. The first time a GEMM comes (T > 1) it makes OpenBLAS single-threaded:
 * our pool already splits the rows over the cores. */
int lm_matmul_start(float *y, int T, int K, int O);
/* One small product on the calling thread (a pool task's share of a larger step), row-major with
 * row strides lda, ldb, ldc, the operands cache-resident (a few tens of KB):
 *   c = beta * c + op(a) b      op(a) [M, K], b [K, N], c [M, N]; beta = 0 ignores c's old contents
 * trans_a: a is stored [K, M] and op(a) is its transpose (a is only ever read one element at a time).
 * lower: op(a) is lower triangular (op(a)[i][k] = 0 for k > i; those zeros must be stored, the
 * kernel skips the k beyond each block of four rows' diagonal). Each element sums k in order with
 * FMAs, so the same operands give the same bits whichever thread calls and whatever M is.
 * AVX-512: 4 rows x 64 columns of c in 16 registers per pass over k (OpenBLAS 0.3.21 runs its
 * Haswell kernel, AVX2, on Zen 4/5); other levels: OpenBLAS sgemm (its own threading off).
 * M, N >= 1, K >= 0. */
void lm_gemm_small(float *c, int ldc, float beta, const float *a, int lda, int trans_a, const float *b, int ldb, int M,
                   int N, int K, int lower);
/* out [cols, rows] (row stride ldo) = the transpose of in [rows, cols] (row stride ldi); 16 x 16
 * blocks in registers at AVX-512. */
void lm_transpose_f32(float *out, int ldo, const float *in, int ldi, int rows, int cols);

/* ---- float16 weights (a quantized file's embedding and lm_head, used as stored) ----
 * y[t][o] = sum_k x[t][k] * W[o][k]      x [T, K] float32, W [O, K] IEEE half bits, y [T, O] float32
 * Exactly lm_matmul_f32 of W converted to float32 but for the order of the float sums
 * (every half is a float). T == 1 streams W (memory bound); T > 1 converts tiles of rows
 * once and multiplies all T tokens by each. */
void lm_matmul_f16(float *y, const float *x, const uint16_t *W, int T, int K, int O, lm_pool *pool);

#endif
