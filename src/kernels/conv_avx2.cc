// AVX2 gather of six patch rows into the 6-row packed-A layout: 8 k at a time, an 8×8
// transpose (two zero rows) turns six row vectors into eight 6-wide columns.
#include <immintrin.h>

#include <cstdint>

#include "kernels/conv_isa.h"

namespace flamingo::kernels::avx2 {

void interleave6(const float* const* src, int64_t len, float* dst) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= len; t += 8) {
    __m256 r0 = src[0] ? _mm256_loadu_ps(src[0] + t) : zero;
    __m256 r1 = src[1] ? _mm256_loadu_ps(src[1] + t) : zero;
    __m256 r2 = src[2] ? _mm256_loadu_ps(src[2] + t) : zero;
    __m256 r3 = src[3] ? _mm256_loadu_ps(src[3] + t) : zero;
    __m256 r4 = src[4] ? _mm256_loadu_ps(src[4] + t) : zero;
    __m256 r5 = src[5] ? _mm256_loadu_ps(src[5] + t) : zero;
    // Standard 8×8 transpose with rows 6 and 7 zero.
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, zero, 0x44), s5 = _mm256_shuffle_ps(t4, zero, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, zero, 0x44), s7 = _mm256_shuffle_ps(t5, zero, 0xEE);
    float* d = dst + t * 6;
    // Column c holds k = t + c for rows 0..5 (then two zeros, overwritten by the next store).
    _mm256_storeu_ps(d + 0, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(d + 6, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(d + 12, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(d + 18, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(d + 30, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(d + 36, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(d + 42, _mm256_permute2f128_ps(s3, s7, 0x31));
  }
  for (; t < len; ++t)
    for (int r = 0; r < 6; ++r) dst[t * 6 + r] = src[r] ? src[r][t] : 0.f;
}

}  // namespace flamingo::kernels::avx2
