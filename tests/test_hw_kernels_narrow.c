/* The HLS kernels against the golden model with a third set of factors: one MMU row at a time
 * over a whole 128-input weight group per cycle, n_p 16 x p_p 8 tiles, 4 SSMU lanes, the
 * narrowest HTU. The results must not change (hw_kernels_tb.h is the body). */
#define HK_CIP 128
#define HK_COP 1
#define HK_SSMU_LANES 4
#define HK_NP 16
#define HK_PP 8
#define HK_HTU_WIDTH 2
#include "hw_kernels_tb.h"

int main(void) { return tb_main("narrow factors"); }
