/* The core's int8 multiply throughput: independent vpmaddubsw / vpmaddwd chains (the two
 * instructions of every AVX2 int8 dot product: ORT's u8 x s8 conv and GEMM kernels, and
 * mrt-bridge's rows kernel). Prints one line: seconds, then giga multiply ops per second.
 * `vector_units read MB` instead streams MB megabytes from memory (as a one-row int8 matmul
 * reads its weights) and prints the best of four passes: seconds, then GB/s.
 * Run by benchmarks/vector_units.py. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS(op, v, k) v##0 = op(v##0, k); v##1 = op(v##1, k); v##2 = op(v##2, k); \
                         v##3 = op(v##3, k); v##4 = op(v##4, k); v##5 = op(v##5, k);

static int read_bandwidth(size_t bytes) {
  bytes &= ~(size_t)127;
  char* buf = aligned_alloc(64, bytes);
  if (!buf) return 1;
  memset(buf, 1, bytes);  /* touch every page before timing */
  double best = 1e30;
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (int pass = 0; pass < 4; pass++) {
    const double t0 = now();
    for (size_t i = 0; i < bytes; i += 128) {
      acc0 = _mm256_add_epi32(acc0, _mm256_load_si256((const __m256i*)(buf + i)));
      acc1 = _mm256_add_epi32(acc1, _mm256_load_si256((const __m256i*)(buf + i + 32)));
      acc2 = _mm256_add_epi32(acc2, _mm256_load_si256((const __m256i*)(buf + i + 64)));
      acc3 = _mm256_add_epi32(acc3, _mm256_load_si256((const __m256i*)(buf + i + 96)));
    }
    const double dt = now() - t0;
    if (dt < best) best = dt;
  }
  const __m256i sink = _mm256_add_epi32(_mm256_add_epi32(acc0, acc1), _mm256_add_epi32(acc2, acc3));
  printf("%.6f %.4f %d\n", best, bytes / best / 1e9, _mm256_extract_epi32(sink, 0) & 1);
  free(buf);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 2 && strcmp(argv[1], "read") == 0) return read_bandwidth((size_t)atol(argv[2]) << 20);
  const long n = argc > 1 ? atol(argv[1]) : 100000000L;
  const __m256i w = _mm256_set1_epi8(3), one = _mm256_set1_epi16(1);
  __m256i a0 = w, a1 = w, a2 = w, a3 = w, a4 = w, a5 = w, b0 = one, b1 = one, b2 = one, b3 = one, b4 = one, b5 = one;
  const double t0 = now();
  for (long i = 0; i < n; i++) {
    CHAINS(_mm256_maddubs_epi16, a, w)
    CHAINS(_mm256_madd_epi16, b, one)
    /* keep every chain in a register and every result live */
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                          "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3), "+x"(b4), "+x"(b5));
  }
  const double dt = now() - t0;
  const __m256i sink = _mm256_add_epi32(_mm256_add_epi32(a0, b0), _mm256_add_epi32(a5, b5));
  printf("%.6f %.4f %d\n", dt, n * 12 / dt / 1e9, _mm256_extract_epi32(sink, 0) & 1);
  return 0;
}
