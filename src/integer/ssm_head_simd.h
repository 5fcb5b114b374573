/* The SIMD body of the head's state step (ssm_head.c has the golden code and the plan). It is
 * included once per instruction set, by ssm_head.c only, after defining VL (int32 lanes per
 * vector, a multiple of 8), the vector type vint, the V_* operations, SIMD_TARGET and
 * SIMD_SUFFIX; it defines state_cols##SIMD_SUFFIX and contract_row##SIMD_SUFFIX and undefines
 * those parameters at its end. No include guard: each inclusion is a new instance. */

/* lm_rescale(x, L, dp) for |x| <= 2^14 (a product of two int8) and any L, lane by lane. For
 * such x every right shift beyond 16 gives 0 (or -1 when flooring a negative x, which the
 * arithmetic shift by 16 gives too), so it is clamped to 16 (x + 2^15 fits int32); a left shift
 * by l saturates exactly when |x| > INT32_MAX >> l (l clamped to 31: then every x != 0
 * saturates). round: all ones to round half up, zero to floor (LM_DP_TRUNC). */
SIMD_TARGET static inline vint SIMD_FN(shift_product)(vint x, vint L, vint round) {
    const vint r = V_MIN(V_MAX(V_SUB(V_ZERO, L), V_ZERO), V_SET1(16));
    const vint l = V_MIN(V_MAX(L, V_ZERO), V_SET1(31));
    const vint half = V_AND(V_SRLI(V_SLLV(V_SET1(1), r), 1), round);
    const vint v = V_SLLV(V_SRAV(V_ADD(x, half), r), l);
    const vint sat = V_GT_SELECT(V_ZERO, x, V_SET1(-INT32_MAX), V_SET1(INT32_MAX));
    return V_GT_SELECT(V_ABS(x), V_SRLV(V_SET1(INT32_MAX), l), sat, v);
}

/* The same where L <= 15 in every lane (as in every model: section 5's sites give L <= 12), so
 * no left shift saturates: x * 2^15 (|.| <= 2^29) takes one rounding right shift by 15 - L,
 * clamped to 31 (for |x| <= 2^14 any shift beyond 16 gives 0 either way; 2^29 + 2^30 fits). */
SIMD_TARGET static inline vint SIMD_FN(shift_product_short)(vint x, vint L, vint round) {
    const vint r = V_MIN(V_SUB(V_SET1(15), L), V_SET1(31));
    const vint half = V_AND(V_SRLI(V_SLLV(V_SET1(1), r), 1), round);
    return V_SRAV(V_ADD(V_SLLI(x, 15), half), r);
}

/* lm_sat32(a + b) for a, b in [-INT32_MAX, INT32_MAX] in int32 lanes: b is clamped to the room
 * beside a (a > 0: at most INT32_MAX - a; a <= 0: at least -INT32_MAX - a). The bound of the
 * side not taken may wrap; it is discarded. */
SIMD_TARGET static inline vint SIMD_FN(add_sat)(vint a, vint b) {
    const vint up = V_MIN(b, V_SUB(V_SET1(INT32_MAX), a));
    const vint down = V_MAX(b, V_SUB(V_SET1(-INT32_MAX), a));
    return V_ADD(a, V_GT_SELECT(a, V_ZERO, up, down));
}

/* lm_pot_exponent_dp(m, 8, dp) = clamp(bitlength(m - dec) - 7, 0, 15) for m >= 0 (dec 1 under
 * LM_DP_QRULE, m = 0 kept 0, else 0), from the float exponent of min(m - dec, 2^22): exact in
 * float, and every m >= 2^22 has exponent 15 either way (m = 0: 0). */
SIMD_TARGET static inline vint SIMD_FN(pot8_exponent)(vint m, vint dec) {
    m = V_MAX(V_SUB(m, dec), V_ZERO);
    const vint e = V_SUB(V_SRLI(V_F32_BITS(V_MIN(m, V_SET1(1 << 22))), 23), V_SET1(127 + 7 - 1));
    return V_MIN(V_MAX(e, V_ZERO), V_SET1(LM_POT_SMAX));
}

/* clamp(lm_shift_sat32(x, -e), qmin, 127) where e is the pot8 exponent of a group holding x
 * (qmin -127, or -128 under LM_DP_QRULE). x is first clamped to +-2^30, which changes no result
 * (|x| >= 2^30 means e = 15 and a quotient beyond 127 either way) and keeps x + 2^(e-1) in int32. */
SIMD_TARGET static inline vint SIMD_FN(pot8_round)(vint x, vint e, vint qmin) {
    x = V_MIN(V_MAX(x, V_SET1(-(1 << 30))), V_SET1(1 << 30));
    const vint half = V_SRLI(V_SLLV(V_SET1(1), e), 1);
    return V_MIN(V_MAX(V_SRAV(V_ADD(x, half), e), qmin), V_SET1(127));
}

/* The datapath's constants as vectors: the rounding mask, the exponent rule's decrement, qmin. */
#define SIMD_DP_VECTORS(dp)                                                                     \
    const vint round = V_SET1((dp) & LM_DP_TRUNC ? 0 : -1), dec = V_SET1((dp) & LM_DP_QRULE ? 1 : 0), \
               qmin = V_SET1((dp) & LM_DP_QRULE ? -128 : -127)

/* Columns [0, nv), VL at a time, as state_cols: for each group of 8 rows, the 8 wide rows go to
 * hw and stay in registers for their stored-state quantization (the group is per column).
 * short_shifts: every shift amount is <= 15 (shift_product_short); a constant in each caller. */
SIMD_TARGET __attribute__((always_inline)) static inline void SIMD_FN(state_cols_with)(const head_step *s, int nv,
                                                                                       int short_shifts) {
    const int N = s->N;
    SIMD_DP_VECTORS(s->dp);
    const vint q_dA = V_SET1(s->q_dA);
    for (int pg = 0; pg < s->P / LM_POT_GROUP; pg++) {
        const vint L_dBx = V_SET1(s->s_x[pg] + s->L_dBx);
        for (int n = 0; n < nv; n += VL) {
            uint8_t *h_s = s->h_s + (size_t)pg * N + n;
            const vint L_dA = V_ADD(V_SET1(s->L_dA), V_LOAD_U8(h_s));
            const vint L_dB = V_ADD(L_dBx, V_LOAD_U8(s->s_dB + n));
            const vint q_dB = V_LOAD_I8(s->q_dB + n);
            vint h[LM_POT_GROUP], m = V_ZERO;
            for (int r = 0; r < LM_POT_GROUP; r++) {
                const int p = pg * LM_POT_GROUP + r;
                const size_t i = (size_t)p * N + n;
                const vint xA = V_MUL(q_dA, V_LOAD_I8(s->h_q + i)), xB = V_MUL(q_dB, V_SET1(s->q_x[p]));
                const vint dAh = short_shifts ? SIMD_FN(shift_product_short)(xA, L_dA, round)
                                              : SIMD_FN(shift_product)(xA, L_dA, round);
                const vint dBx = short_shifts ? SIMD_FN(shift_product_short)(xB, L_dB, round)
                                              : SIMD_FN(shift_product)(xB, L_dB, round);
                h[r] = SIMD_FN(add_sat)(dAh, dBx);
                V_STORE_I32(s->hw + i, h[r]);
                m = V_MAX(m, V_ABS(h[r]));
            }
            const vint e = SIMD_FN(pot8_exponent)(m, dec);
            V_STORE_8(h_s, e);
            for (int r = 0; r < LM_POT_GROUP; r++)
                V_STORE_8(s->h_q + (size_t)(pg * LM_POT_GROUP + r) * N + n, SIMD_FN(pot8_round)(h[r], e, qmin));
        }
    }
}

SIMD_TARGET static void SIMD_FN(state_cols)(const head_step *s, int nv) {
    /* the largest shifts: h_s, s_dB, s_x <= 15 */
    if (s->L_dA + LM_POT_SMAX <= 15 && s->L_dBx + 2 * LM_POT_SMAX <= 15)
        SIMD_FN(state_cols_with)(s, nv, 1);
    else
        SIMD_FN(state_cols_with)(s, nv, 0);
}

/* Row p over columns [0, nv), as contract_row, lane by lane (exact, so equal to shifting each
 * group's sum): (h2_q * q_C) << h2_s fits int32 (|.| <= 2^14 * 2^15), then times 2^s_C (s_C <= 15,
 * the pot format's exponent) into int64 lanes. */
SIMD_TARGET static int64_t SIMD_FN(contract_row)(const head_step *s, int p, int nv) {
    const size_t row = (size_t)p * s->N;
    SIMD_DP_VECTORS(s->dp);
    (void)round;
    uint8_t *h2_s = s->h2_s + row / LM_POT_GROUP;
    vint acc[2] = {V_ZERO, V_ZERO};
    for (int n = 0; n < nv; n += VL) {
        const vint x = V_LOAD_I32(s->hw + row + n);
        const vint e = SIMD_FN(pot8_exponent)(V_GROUP_MAX(V_ABS(x)), dec);
        const vint q = SIMD_FN(pot8_round)(x, e, qmin);
        V_STORE_8(s->h2_q + row + n, q);
        V_GROUP_STORE_8(h2_s + n / LM_POT_GROUP, e);
        const vint pow_C = V_SLLV(V_SET1(1), V_GROUP_LOAD_U8(s->s_C + n / LM_POT_GROUP));
        V_MUL_ACC64(acc, V_SLLV(V_MUL(q, V_LOAD_I8(s->q_C + n)), e), pow_C);
    }
    return V_HSUM64(acc);
}

#undef SIMD_SUFFIX
#undef SIMD_TARGET
#undef VL
#undef vint
#undef V_ZERO
#undef V_SET1
#undef V_LOAD_I8
#undef V_LOAD_U8
#undef V_LOAD_I32
#undef V_STORE_I32
#undef V_STORE_8
#undef V_ADD
#undef V_SUB
#undef V_AND
#undef V_MUL
#undef V_MIN
#undef V_MAX
#undef V_ABS
#undef V_SRAV
#undef V_SLLV
#undef V_SRLV
#undef V_SRLI
#undef V_SLLI
#undef V_F32_BITS
#undef V_GT_SELECT
#undef V_GROUP_LOAD_U8
#undef V_GROUP_STORE_8
#undef V_GROUP_MAX
#undef V_MUL_ACC64
#undef V_HSUM64
#undef SIMD_DP_VECTORS
