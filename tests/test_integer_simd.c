/* The SIMD paths of the integer datapath against its scalar golden code, bit for bit: each unit
 * with a SIMD path runs at every level the CPU has (lm_simd_level_set) on the same random
 * inputs, ragged sizes included (widths that leave a scalar tail), operands like a model's,
 * extreme ones (every shift far left or far right, saturating sums, full int8 range) and ones at
 * the bounds, and must give exactly the scalar level's outputs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "integer/integer.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static int rng_int(int a, int b) { return a + (int)(rng_u64() % (uint64_t)(b - a + 1)); }

/* Operand draws by mode: MODEL sites and ranges like a model's (docs/integer-datapath.md section
 * 5), where every shift of the state update is at most 15 (the SIMD paths' short shift); EXTREME
 * sites anywhere in [-8, 30] (shifts far left and right, saturating products and sums: their
 * general shift) and int8 operands over the full range; EDGE the bounds: operands mostly in
 * {-128, -127, -1, 0, 1, 127}, exponents mostly 0, 14 or 15, and sites that put the largest
 * shift of each product at 14..17 (either side of the short shift's limit). */
enum { MODEL, EXTREME, EDGE };
static const char *mode_name[] = {"", " extreme", " edge"};

static void fill_i8(int8_t *q, int n, int mode) {
    static const int8_t edges[6] = {-128, -127, -1, 0, 1, 127};
    for (int i = 0; i < n; i++)
        q[i] = (int8_t)(mode == EDGE && rng_int(0, 3) ? edges[rng_int(0, 5)] : rng_int(mode == MODEL ? -127 : -128, 127));
}
static void fill_u8(uint8_t *s, int n, int mode) {
    static const uint8_t edges[3] = {0, 14, 15};
    for (int i = 0; i < n; i++) s[i] = (uint8_t)(mode == EDGE && rng_int(0, 3) ? edges[rng_int(0, 2)] : rng_int(0, 15));
}

/* ---- the state step of one head ---- */

/* One head's operands and outputs; the state is carried over steps. */
typedef struct {
    int P, N;
    lm_int_head_sites f;
    int8_t *h_q, *h2_q, *dB_q, *x_q, *C_q;
    uint8_t *h_s, *h2_s, *dB_s, *x_s, *C_s;
    int32_t *hw, *y;
    int8_t dA_q; uint8_t dA_s;
    int16_t qD; int eD;
} head_case;

static void head_alloc(head_case *c, int P, int N) {
    memset(c, 0, sizeof *c);
    c->P = P; c->N = N;
    const size_t PN = (size_t)P * N;
    c->h_q = calloc(PN, 1); c->h2_q = calloc(PN, 1); c->h_s = calloc(PN / 8, 1); c->h2_s = calloc(PN / 8, 1);
    c->dB_q = calloc((size_t)N, 1); c->dB_s = calloc((size_t)N, 1); c->C_q = calloc((size_t)N, 1);
    c->C_s = calloc((size_t)N / 8, 1); c->x_q = calloc((size_t)P, 1); c->x_s = calloc((size_t)P / 8, 1);
    c->hw = calloc(PN, sizeof *c->hw); c->y = calloc((size_t)P, sizeof *c->y);
}

static void head_free(head_case *c) {
    free(c->h_q); free(c->h2_q); free(c->h_s); free(c->h2_s); free(c->dB_q); free(c->dB_s);
    free(c->C_q); free(c->C_s); free(c->x_q); free(c->x_s); free(c->hw); free(c->y);
}

/* dst gets src's state and operands (the inputs of a step). */
static void head_copy_inputs(head_case *dst, const head_case *src) {
    const int P = src->P, N = src->N;
    memcpy(dst->h_q, src->h_q, (size_t)P * N);
    memcpy(dst->h_s, src->h_s, (size_t)P * N / 8);
    memcpy(dst->dB_q, src->dB_q, (size_t)N); memcpy(dst->dB_s, src->dB_s, (size_t)N);
    memcpy(dst->x_q, src->x_q, (size_t)P); memcpy(dst->x_s, src->x_s, (size_t)P / 8);
    memcpy(dst->C_q, src->C_q, (size_t)N); memcpy(dst->C_s, src->C_s, (size_t)N / 8);
    dst->f = src->f; dst->dA_q = src->dA_q; dst->dA_s = src->dA_s; dst->qD = src->qD; dst->eD = src->eD;
}

/* New operands for one step (mode: see fill_i8). The datapath: ours or the release's (floored
 * shifts, the release's quantizer rule), drawn per step; dB's exponents one per state (either
 * grouping reaches the step as that). */
static void head_draw(head_case *c, int mode) {
    const int P = c->P, N = c->N;
    if (mode == MODEL)
        c->f = (lm_int_head_sites){.P = P, .N = N, .F_x = rng_int(16, 20), .F_dA = 21, .F_dB = rng_int(18, 24),
                                   .F_h = rng_int(15, 19), .F_C = rng_int(16, 20), .F_y = rng_int(13, 17)};
    else
        c->f = (lm_int_head_sites){.P = P, .N = N, .F_x = rng_int(-8, 30), .F_dA = rng_int(-8, 30),
                                   .F_dB = rng_int(-8, 30), .F_h = rng_int(-8, 30), .F_C = rng_int(-8, 30),
                                   .F_y = rng_int(-8, 30)};
    c->f.dp = rng_int(0, 1) ? LM_DP_RELEASE : 0;
    fill_i8(c->dB_q, N, mode); fill_u8(c->dB_s, N, mode);
    fill_i8(c->x_q, P, mode); fill_u8(c->x_s, P / 8, mode);
    fill_i8(c->C_q, N, mode); fill_u8(c->C_s, N / 8, mode);
    fill_i8(&c->dA_q, 1, mode); fill_u8(&c->dA_s, 1, mode);
    if (mode == MODEL) c->dA_q = (int8_t)rng_int(64, 127);
    if (mode == EDGE) {   /* largest shifts: dAh s_dA + 15 - F_dA, dBx 30 - F_dB - F_x + F_h, each 14..17 */
        c->f.F_dA = c->dA_s + 15 - rng_int(14, 17);
        c->f.F_h = rng_int(14, 17) - 30 + c->f.F_dB + c->f.F_x;
    }
    c->qD = (int16_t)rng_int(-127, 127);
    c->eD = rng_int(-12, 0);
}

static void head_run(head_case *c) {
    lm_int_ssm_head(c->y, c->h_q, c->h_s, c->h2_q, c->h2_s, c->hw, c->dA_q, c->dA_s, c->dB_q, c->dB_s, c->x_q,
                    c->x_s, c->C_q, c->C_s, c->qD, c->eD, &c->f);
}

/* Where a and b (after one step each) differ, or NULL. */
static const char *head_diff(const head_case *a, const head_case *b) {
    const size_t PN = (size_t)a->P * a->N;
    if (memcmp(a->y, b->y, sizeof(int32_t) * a->P)) return "y";
    if (memcmp(a->hw, b->hw, sizeof(int32_t) * PN)) return "wide state";
    if (memcmp(a->h_q, b->h_q, PN) || memcmp(a->h_s, b->h_s, PN / 8)) return "stored state";
    if (memcmp(a->h2_q, b->h2_q, PN) || memcmp(a->h2_s, b->h2_s, PN / 8)) return "state per 8 states";
    return NULL;
}

static void test_ssm_head(lm_simd_level best) {
    static const int sizes[][2] = {{8, 8}, {8, 16}, {16, 24}, {8, 40}, {24, 56}, {64, 128}, {64, 136}, {16, 64}};
    int cases = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        const int P = sizes[z][0], N = sizes[z][1];
        for (int mode = MODEL; mode <= EDGE; mode++) {
            head_case ref, got, start;
            head_alloc(&ref, P, N);
            head_alloc(&got, P, N);
            head_alloc(&start, P, N);
            /* a random start state, then steps carrying it on */
            fill_i8(ref.h_q, P * N, mode);
            fill_u8(ref.h_s, P * N / 8, mode);
            for (int step = 0; step < 12; step++) {
                if (mode == EDGE) {   /* the stored state at its bounds on every step */
                    fill_i8(ref.h_q, P * N, mode);
                    fill_u8(ref.h_s, P * N / 8, mode);
                }
                head_draw(&ref, mode);
                head_copy_inputs(&start, &ref);
                CHECK_OK(lm_simd_level_set(LM_SIMD_SCALAR));
                head_run(&ref);
                for (int level = LM_SIMD_AVX2; level <= (int)best; level++) {
                    head_copy_inputs(&got, &start);
                    CHECK_OK(lm_simd_level_set((lm_simd_level)level));
                    head_run(&got);
                    const char *d = head_diff(&ref, &got);
                    CHECK(!d, "ssm head P %d N %d%s step %d: %s differs at %s from scalar", P, N,
                          mode_name[mode], step, d, lm_simd_level_name((lm_simd_level)level));
                    cases++;
                }
            }
            head_free(&start);
            head_free(&ref);
            head_free(&got);
        }
    }
    printf("ssm head: %d steps compared with scalar at SIMD levels up to %s\n", cases, lm_simd_level_name(best));
}

int main(void) {
    const lm_simd_level best = lm_simd_detect();
    if (best == LM_SIMD_SCALAR) {
        printf("SKIP: this CPU has no SIMD level (AVX2 or AVX-512) to compare with the scalar code\n");
        return 77;
    }
    test_ssm_head(best);
    CHECK_OK(lm_simd_level_set(best));
    return test_finish();
}
