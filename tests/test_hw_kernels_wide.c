/* The HLS kernels against the golden model with other parallelism factors: a wider MMU whose
 * COP does not divide the row counts (padded row groups), 16 x 32 SSM tiles and wider lanes.
 * The results must not change (hw_kernels_tb.h is the body). */
#define HK_CIP 32
#define HK_COP 12
#define HK_SSMU_LANES 16
#define HK_NP 16
#define HK_PP 32
#define HK_HTU_WIDTH 16
#include "hw_kernels_tb.h"

int main(void) { return tb_main("wide factors"); }
