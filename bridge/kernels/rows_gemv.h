/* Exact int8 GEMV for a few rows on AVX2 (rows_gemv.c) and AVX-512 VNNI (rows_gemv_vnni.c): the
 * arithmetic of ORT's MatMulIntegerToFloat in the rows schemes (onnx_export/precision.py), at
 * the core's read bandwidth for 1-3 rows. */
#ifndef MRT_ROWS_GEMV_H
#define MRT_ROWS_GEMV_H
#include <stddef.h>
#include <stdint.h>

/* Weights packed once: columns in blocks of 32, each block K/4 quads of 4 input rows x 32
 * columns (128 bytes, a column's 4 weights adjacent); K and N padded with zeros. */
typedef struct {
  int64_t k, n;          /* logical shape */
  int64_t k4, n32;       /* padded to multiples of 4 and 32 */
  int8_t* data;          /* n32 / 32 blocks of k4 * 32 bytes, 64-byte aligned */
  int32_t* column_sums;  /* n32 sums of each column's weights, 64-byte aligned (for VNNI) */
} PackedWeights;

/* Pack w [k][n] (int8, or uint8 around 128 when unsigned_weights). Returns 0, or -1 when a
 * weight is -128 (its sign cannot be flipped in int8) or memory runs out. */
int pack_weights(const void* w, int64_t k, int64_t n, int unsigned_weights, PackedWeights* out);
void free_weights(PackedWeights* w);

/* Prefetch distance in bytes of packed weights (32 quads), both variants. The matmuls of one
 * mrt2_small frame on a 2-core EPYC (AVX2), one row, p50 ms, depth decoder / temporal step: no
 * prefetch 6.3 / 10.6, 2 KiB 5.2 / 9.8, 4 KiB 5.0 / 10.5, 8 KiB 5.1 / 10.5 (runs on this VM
 * vary by ~10%). */
#define PREFETCH_AHEAD 4096

/* The rows schemes' activation quantization (onnx_export/precision.py, to_int8_rows), as ORT
 * computes it: per row s = max(max|x|, 1e-30) * (float)(1 / 127), q = round-half-even of x / s
 * clamped to [-128, 127] (QuantizeLinear with zero point 128, minus 128). x is rows x k floats;
 * q rows of k4 int8 (zero-padded); scale one float per row. */
void quantize_rows(const float* x, int64_t rows, int64_t k, int64_t k4, int8_t* q, float* scale);

/* One variant's work on one 32-column block (columns nb .. nb + 31, of which ``columns`` are
 * real, their b_scales in bs): y's columns of that block for every row. */
typedef void GemvBlock(const int8_t* q, int64_t rows, const PackedWeights* w, int64_t nb, int64_t columns,
                       const float bs[32], const float* a_scale, int a_per_row, float* y);
GemvBlock gemv_block_avx2;  /* rows_gemv.c */
GemvBlock gemv_block_vnni;  /* rows_gemv_vnni.c: AVX-512 VNNI (and BW, VL); only where gemv_variant() names it */

/* y[r][n] = (sum_k q[r][k] * w[k][n]) * b_scale[n] * a_scale[r], the sum exact in int32, for
 * rows q [rows][k4] of int8 in [-128, 127] (zero-padded to k4), on ``block``'s variant; y is
 * rows x n floats, of which the columns of 32-column blocks [first_block, end_block) are
 * written (threads split the blocks; n32 / 32 for all). A scale array of one element
 * (``*_per`` 0) applies to every row / column. */
void rows_gemv(GemvBlock* block, const int8_t* q, int64_t rows, const PackedWeights* w, const float* a_scale,
               int a_per_row, const float* b_scale, int b_per_column, float* y, int64_t first_block, int64_t end_block);

/* The variant for this CPU: "avx512-vnni" where the CPU has it, else "avx2"; "avx2" as well
 * when $MRT_BRIDGE_NATIVE_KERNELS is avx2 (to compare the two on one machine). */
const char* gemv_variant(void);
GemvBlock* gemv_for(const char* variant);

#endif
