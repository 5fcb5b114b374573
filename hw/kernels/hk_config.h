/* Compile-time parameters of the LightMamba kernels (hw/kernels): parallelism factors and the
 * maximum model sizes that size the on-chip buffers. Each is a #define overridable with -D
 * (or #define before including the kernels). The defaults are the paper's VCK190 factors and
 * maxima that hold mamba2-tiny; Mamba2-2.7B needs -DHK_MAX_D=2560 -DHK_MAX_DI=5120
 * -DHK_MAX_H=80 -DHK_MAX_N=128 (the buffers are sized, not the logic). */
#ifndef HK_CONFIG_H
#define HK_CONFIG_H

/* ---- the datapath ----
 * HK_DATAPATH: 0 ours (docs/integer-datapath.md), or the release's choices (docs/release-datapath.md;
 * the flags' values are lightmamba.h's LM_DP_*, the testbench checks they agree): HK_DP_RELEASE
 * gives the authors' released golden model. A compile-time constant, so each unit keeps one form. */
#define HK_DP_TRUNC 1          /* rescales floor; the conv sums exactly and floors once */
#define HK_DP_QRULE 2          /* group quantizer: bitlength(max - 1), q in [-2^(b-1), 2^(b-1) - 1] */
#define HK_DP_LUT8 4           /* int8 LUT entries, no identity tail (the tables' content: the host's) */
#define HK_DP_NORM8 8          /* RMSNorm by 8 tables of 512 uint8 entries on the raw sum of squares */
#define HK_DP_DB_HEADS 16      /* dB exponents per 8 heads of each state */
#define HK_DP_SITES 32         /* fixed points and weight formats (parameters only: no logic changes) */
#define HK_DP_RELEASE 63
#ifndef HK_DATAPATH
#define HK_DATAPATH 0
#endif

/* ---- parallelism ---- */
#ifndef HK_CIP
#define HK_CIP 8            /* MMU input channels per cycle: a multiple of 8 dividing 128 */
#endif
#ifndef HK_COP
#define HK_COP 8            /* MMU output rows per cycle (any >= 1) */
#endif
#ifndef HK_SSMU_LANES
#define HK_SSMU_LANES 8     /* elements per cycle of each SSMU stage (unroll factor) */
#endif
#ifndef HK_NP
#define HK_NP 8             /* SSM tile: n_p states (a multiple of 8 dividing d_state) */
#endif
#ifndef HK_PP
#define HK_PP 8             /* SSM tile: p_p head_dim channels (a multiple of 8 dividing head_dim) */
#endif
#ifndef HK_HTU_WIDTH
#define HK_HTU_WIDTH 8      /* HTU butterflies per cycle x 2 (unroll factor) */
#endif

/* ---- maximum sizes (run-time sizes are checked against them) ---- */
#ifndef HK_MAX_D
#define HK_MAX_D 256        /* d_model */
#endif
#ifndef HK_MAX_DI
#define HK_MAX_DI 512       /* d_inner */
#endif
#ifndef HK_MAX_H
#define HK_MAX_H 16         /* heads */
#endif
#ifndef HK_MAX_P
#define HK_MAX_P 64         /* head_dim */
#endif
#ifndef HK_MAX_N
#define HK_MAX_N 128        /* d_state */
#endif
#ifndef HK_MAX_G
#define HK_MAX_G 2          /* n_groups */
#endif
#ifndef HK_MAX_W
#define HK_MAX_W 4          /* conv width */
#endif
#define HK_HTU_MAX_BASE 40  /* the +-1 matrix unit: m in {1, 12, 20, 28, 40} */

#define HK_GROUP 8                                  /* PoT group */
#define HK_WGROUP 128                               /* inputs per weight scale */
#define HK_MAX_C (HK_MAX_DI + 2 * HK_MAX_G * HK_MAX_N)  /* conv channels */
#define HK_MAX_E (HK_MAX_DI + HK_MAX_C + HK_MAX_H)      /* in_proj rows */
#define HK_MAX_K (((HK_MAX_D > HK_MAX_DI ? HK_MAX_D : HK_MAX_DI) + HK_WGROUP - 1) / HK_WGROUP * HK_WGROUP)
#define HK_MAX_HG ((HK_MAX_H + HK_GROUP - 1) / HK_GROUP)
#define HK_MAX_NORM (HK_MAX_D > HK_MAX_DI ? HK_MAX_D : HK_MAX_DI)

#if HK_CIP % 8 != 0 || 128 % HK_CIP != 0
#error "HK_CIP must be a multiple of 8 dividing 128"
#endif
#if HK_NP % 8 != 0 || HK_PP % 8 != 0 || HK_COP < 1 || HK_SSMU_LANES < 1 || HK_HTU_WIDTH < 2
#error "HK_NP and HK_PP must be multiples of 8; HK_COP, HK_SSMU_LANES >= 1; HK_HTU_WIDTH >= 2"
#endif

/* Pragmas are written as HK_PRAGMA(HLS ...): Vitis HLS sees #pragma HLS ...; gcc drops them
 * (no -Wunknown-pragmas noise) unless HK_KEEP_PRAGMAS is defined (the synthesizability check
 * compiles with it to see that they are well formed). */
#if defined(__SYNTHESIS__) || defined(HK_KEEP_PRAGMAS)
#define HK_PRAGMA_STR(x) #x
#define HK_PRAGMA(x) _Pragma(HK_PRAGMA_STR(x))   /* two levels: HK_* constants in x expand */
#else
#define HK_PRAGMA(x)
#endif
#endif
