/* Exact int8 GEMV for a few rows on AVX2 (see rows_gemv.h); the AVX-512 VNNI variant is in
 * rows_gemv_vnni.c, the choice between them in gemv_variant.
 *
 * AVX2 has no int8 dot product. ORT's u8 x s8 kernel (vpmaddubsw) saturates the int16 sum of
 * two products of an unsigned activation (up to 255) and a signed weight; its u8 x u8 kernel is
 * exact but widens every weight to int16 first. Here the activation stays signed: vpmaddubsw
 * multiplies |q| (unsigned, <= 128) by the weight with q's sign moved onto it (vpsignb), so
 * each pair sums to at most 2 * 128 * 127 = 32512 and never saturates; vpmaddwd with ones
 * widens the pairs to int32. Weights are read from memory once per call for all rows, two rows
 * at a time, in the packed order, with a software prefetch PREFETCH_AHEAD bytes ahead. */
#include "rows_gemv.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

int pack_weights(const void* w, int64_t k, int64_t n, int unsigned_weights, PackedWeights* out) {
  out->k = k;
  out->n = n;
  out->k4 = (k + 3) / 4 * 4;
  out->n32 = (n + 31) / 32 * 32;
  size_t bytes = (size_t)out->k4 * (size_t)out->n32;
  out->data = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!out->data) return -1;
  out->column_sums = aligned_alloc(64, (size_t)out->n32 * sizeof(int32_t));
  if (!out->column_sums) { free_weights(out); return -1; }
  memset(out->data, 0, bytes);
  memset(out->column_sums, 0, (size_t)out->n32 * sizeof(int32_t));
  const uint8_t* src = (const uint8_t*)w;
  int8_t* dst = out->data;
  for (int64_t nb = 0; nb < out->n32; nb += 32)
    for (int64_t kq = 0; kq < out->k4; kq += 4)
      for (int64_t j = 0; j < 32; j++)
        for (int64_t i = 0; i < 4; i++, dst++) {
          int64_t row = kq + i, col = nb + j;
          if (row >= k || col >= n) continue;
          int v = unsigned_weights ? (int)src[row * n + col] - 128 : (int)(int8_t)src[row * n + col];
          if (v == -128) { free_weights(out); return -1; }
          *dst = (int8_t)v;
          out->column_sums[col] += v;
        }
  return 0;
}

void free_weights(PackedWeights* w) {
  free(w->data);
  free(w->column_sums);
  w->data = NULL;
  w->column_sums = NULL;
}

const char* gemv_variant(void) {
  const char* forced = getenv("MRT_BRIDGE_NATIVE_KERNELS");
  if (forced && strcmp(forced, "avx2") == 0) return "avx2";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "avx512-vnni";
  return "avx2";
}

GemvBlock* gemv_for(const char* variant) {
  return strcmp(variant, "avx512-vnni") == 0 ? gemv_block_vnni : gemv_block_avx2;
}

/* acc[r][g] += the int32 sums of column group g (8 columns) of one 32-column block, for
 * ``rows`` (1 or 2, a constant after inlining) rows. Two rows x 4 groups keep 8 accumulators,
 * 4 weight vectors and the operands in the 16 ymm registers; three rows spilled (slower than ORT). */
static inline __attribute__((always_inline)) void dot(const int32_t* const x[2], const int rows, int64_t quads,
                                                      const int8_t* p, __m256i acc[2][4]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t kq = 0; kq < quads; kq++, p += 128) {
    _mm_prefetch((const char*)p + PREFETCH_AHEAD, _MM_HINT_T0);
    _mm_prefetch((const char*)p + PREFETCH_AHEAD + 64, _MM_HINT_T0);
    __m256i w[4];
    for (int g = 0; g < 4; g++) w[g] = _mm256_load_si256((const __m256i*)(p + 32 * g));
    for (int r = 0; r < rows; r++) {
      const __m256i a = _mm256_set1_epi32(x[r][kq]);
      const __m256i ua = _mm256_abs_epi8(a);
      for (int g = 0; g < 4; g++)
        acc[r][g] = _mm256_add_epi32(acc[r][g], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(w[g], a)), ones));
    }
  }
}

void quantize_rows(const float* x, int64_t rows, int64_t k, int64_t k4, int8_t* q, float* scale) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  const float inv127 = (float)(1.0 / 127.0), eps = 1e-30f;  /* the graph's constants, rounded as numpy does */
  for (int64_t r = 0; r < rows; r++) {
    const float* src = x + r * k;
    int8_t* dst = q + r * k4;
    __m256 vmax = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(src + i), magnitude));
    float lanes[8], amax = 0.0f;
    _mm256_storeu_ps(lanes, vmax);
    for (int j = 0; j < 8; j++) amax = lanes[j] > amax ? lanes[j] : amax;
    for (; i < k; i++) {
      const float a = src[i] < 0.0f ? -src[i] : src[i];
      amax = a > amax ? a : amax;
    }
    const float s = (amax > eps ? amax : eps) * inv127;
    scale[r] = s;
    /* x / s (a division, as MLAS's QuantizeLinear), clamped to [-128, 127], rounded half to
     * even (the default MXCSR mode). */
    const __m256 vs = _mm256_set1_ps(s);
    for (i = 0; i + 8 <= k; i += 8) {
      const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(src + i), vs), lo), hi);
      const __m256i i32 = _mm256_cvtps_epi32(v);
      const __m256i i16 = _mm256_packs_epi32(i32, i32);  /* per 128-bit lane */
      const __m256i i8 = _mm256_packs_epi16(i16, i16);    /* bytes 0-3: lane 0, 16-19: lane 1 */
      const __m128i d = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0)));
      _mm_storel_epi64((__m128i*)(dst + i), d);
    }
    for (; i < k; i++) {
      const float v = src[i] / s;
      dst[i] = (int8_t)_mm_cvtss_si32(_mm_set_ss(v < -128.0f ? -128.0f : v > 127.0f ? 127.0f : v));
    }
    for (; i < k4; i++) dst[i] = 0;
  }
}

void rows_gemv(GemvBlock* block, const int8_t* q, int64_t rows, const PackedWeights* w, const float* a_scale,
               int a_per_row, const float* b_scale, int b_per_column, float* y, int64_t first_block, int64_t end_block) {
  /* Blocks outer, rows inner: a block (k4 x 32 bytes, at most 128 KiB for K 4096) comes from
   * memory once and from L2 for the next rows. */
  for (int64_t nb = 32 * first_block; nb < 32 * end_block; nb += 32) {
    const int64_t columns = w->n - nb < 32 ? w->n - nb : 32;
    float bs[32];
    for (int64_t j = 0; j < 32; j++) bs[j] = b_scale[b_per_column && j < columns ? nb + j : 0];
    block(q, rows, w, nb, columns, bs, a_scale, a_per_row, y);
  }
}

void gemv_block_avx2(const int8_t* q, int64_t rows, const PackedWeights* w, int64_t nb, int64_t columns,
                     const float bs[32], const float* a_scale, int a_per_row, float* y) {
  const int64_t quads = w->k4 / 4;
  const int8_t* p = w->data + nb * w->k4;
  for (int64_t r0 = 0; r0 < rows; r0 += 2) {
    const int rr = rows - r0 < 2 ? 1 : 2;
    const int32_t* const x[2] = {(const int32_t*)(q + r0 * w->k4), (const int32_t*)(q + (r0 + rr - 1) * w->k4)};
    __m256i acc[2][4];
    for (int r = 0; r < 2; r++)
      for (int g = 0; g < 4; g++) acc[r][g] = _mm256_setzero_si256();
    if (rr == 2) dot(x, 2, quads, p, acc);
    else dot(x, 1, quads, p, acc);
    for (int r = 0; r < rr; r++) {
      float out[32];
      const __m256 as = _mm256_set1_ps(a_scale[a_per_row ? r0 + r : 0]);
      for (int g = 0; g < 4; g++) {  /* (sum * b_scale) * a_scale: ORT's order, so results match it bit for bit */
        const __m256 column = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][g]), _mm256_loadu_ps(bs + 8 * g));
        _mm256_storeu_ps(out + 8 * g, _mm256_mul_ps(column, as));
      }
      memcpy(y + (r0 + r) * w->n + nb, out, (size_t)columns * sizeof(float));
    }
  }
}
