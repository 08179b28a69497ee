/* ELU then uint8 quantization in one pass (elu_quantize.h): the int8 codec decoder quantizes
 * every ELU's output for the int8 conv after it, and ORT runs that chain as five passes over
 * the tensor (Min, Exp, Sub, Max, QuantizeLinear).
 *
 * exp is the usual range reduction, exp(x) = 2^n e^r with n = round(x log2 e) and |r| <= ln 2 / 2,
 * and a polynomial for e^r (Cephes' expf coefficients; no FMA, which AVX2 does not promise):
 * within a few ulp of the exact value, as ORT's own vectorised exp is; x is first raised to
 * -87.3 (e^x < FLT_MIN below), where e^x - 1 is -1 in float anyway. The quantization is
 * MLAS's: x / scale (a division), clamped to [-zero_point, 255 - zero_point], rounded half to
 * even (the default MXCSR mode), plus zero_point. */
#include "elu_quantize.h"

#include <immintrin.h>
#include <string.h>

static inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365448f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  /* r = x - n ln 2, with ln 2 split in two so that n * high is exact */
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 8 values: ELU, quantized, as 8 int32 lanes. */
static inline __m256i elu_q8(__m256 x, __m256 scale, __m256 lo, __m256 hi, __m256i zp) {
  const __m256 e = exp_nonpositive(_mm256_min_ps(x, _mm256_setzero_ps()));
  const __m256 elu = _mm256_max_ps(x, _mm256_sub_ps(e, _mm256_set1_ps(1.0f)));
  const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(elu, scale), lo), hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
}

void elu_quantize(const float* x, size_t n, float scale, uint8_t zero_point, uint8_t* y) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(-(float)zero_point), hi = _mm256_set1_ps(255.0f - (float)zero_point);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  /* int32 lanes -> bytes: packs work per 128-bit half, so gather lanes 0 and 4 back in order */
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = elu_q8(_mm256_loadu_ps(x + i), s, lo, hi, zp);
    const __m256i b = elu_q8(_mm256_loadu_ps(x + i + 8), s, lo, hi, zp);
    const __m256i c = elu_q8(_mm256_loadu_ps(x + i + 16), s, lo, hi, zp);
    const __m256i d = elu_q8(_mm256_loadu_ps(x + i + 24), s, lo, hi, zp);
    /* values are already in 0..255: the saturating packs only narrow them */
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256((__m256i*)(y + i), _mm256_permutevar8x32_epi32(bytes, order));
  }
  for (; i < n; i += 8) {  /* the last values, through the same arithmetic */
    float in[8] = {0};
    int32_t out[8];
    const size_t m = n - i < 8 ? n - i : 8;
    memcpy(in, x + i, m * sizeof(float));
    _mm256_storeu_si256((__m256i*)out, elu_q8(_mm256_loadu_ps(in), s, lo, hi, zp));
    for (size_t j = 0; j < m; j++) y[i + j] = (uint8_t)out[j];
  }
}
