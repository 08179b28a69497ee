/* gemv_block_vnni: a block of rows_gemv on AVX-512 VNNI (see rows_gemv.h), from the same packed
 * weights to the same exact sums as gemv_block_avx2.
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds each group of four products into an
 * int32 lane, without the int16 step that saturates AVX2's vpmaddubsw: one instruction per 64
 * multiply-adds of a zmm, against three per 32 on AVX2 (vpsignb, vpmaddubsw, vpmaddwd) plus the
 * add. The activation enters as q + 128 (unsigned) and each column's sum is corrected by
 * 128 * sum_k w[k][n] (PackedWeights.column_sums), so the result is sum_k q * w exactly. A quad
 * block (4 inputs x 32 columns, 128 bytes) is two zmm; up to four rows share each weight load.
 *
 * Only this file is compiled for AVX-512: it runs only where gemv_variant() names it. */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#include <immintrin.h>
#include <string.h>

#include "rows_gemv.h"

#define ROWS_PER_PASS 4

/* acc[r][h] += (x[r] + 128) . w for the two 16-column halves h of one 32-column block. */
static inline __attribute__((always_inline)) void dot(const int32_t* const x[ROWS_PER_PASS], const int rows,
                                                      int64_t quads, const int8_t* p,
                                                      __m512i acc[ROWS_PER_PASS][2]) {
  const __m512i bias = _mm512_set1_epi32((int)0x80808080u);
  for (int64_t kq = 0; kq < quads; kq++, p += 128) {
    _mm_prefetch((const char*)p + PREFETCH_AHEAD, _MM_HINT_T0);
    _mm_prefetch((const char*)p + PREFETCH_AHEAD + 64, _MM_HINT_T0);
    const __m512i w0 = _mm512_load_si512((const void*)p), w1 = _mm512_load_si512((const void*)(p + 64));
    for (int r = 0; r < rows; r++) {
      const __m512i a = _mm512_xor_si512(_mm512_set1_epi32(x[r][kq]), bias);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, w0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, w1);
    }
  }
}

void gemv_block_vnni(const int8_t* q, int64_t rows, const PackedWeights* w, int64_t nb, int64_t columns,
                     const float bs[32], const float* a_scale, int a_per_row, float* y) {
  const int64_t quads = w->k4 / 4;
  const int8_t* p = w->data + nb * w->k4;
  /* 128 * column sum, to take off the biased activation's excess. */
  const __m512i excess[2] = {_mm512_slli_epi32(_mm512_load_si512((const void*)(w->column_sums + nb)), 7),
                             _mm512_slli_epi32(_mm512_load_si512((const void*)(w->column_sums + nb + 16)), 7)};
  for (int64_t r0 = 0; r0 < rows; r0 += ROWS_PER_PASS) {
    const int rr = rows - r0 < ROWS_PER_PASS ? (int)(rows - r0) : ROWS_PER_PASS;
    const int32_t* x[ROWS_PER_PASS];
    __m512i acc[ROWS_PER_PASS][2];
    for (int r = 0; r < ROWS_PER_PASS; r++) {
      x[r] = (const int32_t*)(q + (r0 + (r < rr ? r : rr - 1)) * w->k4);
      acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    }
    switch (rr) { /* the row count a constant in each copy, so the accumulators stay in registers */
      case 1: dot(x, 1, quads, p, acc); break;
      case 2: dot(x, 2, quads, p, acc); break;
      case 3: dot(x, 3, quads, p, acc); break;
      default: dot(x, 4, quads, p, acc); break;
    }
    for (int r = 0; r < rr; r++) {
      float out[32];
      const __m512 as = _mm512_set1_ps(a_scale[a_per_row ? r0 + r : 0]);
      for (int h = 0; h < 2; h++) { /* (sum * b_scale) * a_scale: ORT's order, as rows_gemv.c */
        const __m512i sum = _mm512_sub_epi32(acc[r][h], excess[h]);
        const __m512 column = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_loadu_ps(bs + 16 * h));
        _mm512_storeu_ps(out + 16 * h, _mm512_mul_ps(column, as));
      }
      memcpy(y + (r0 + r) * w->n + nb, out, (size_t)columns * sizeof(float));
    }
  }
}
