// AVX2 gather of six rows into the 6-row packed-A layout: 8 k at a time, an 8×8 transpose (two
// zero rows) turns six row vectors into eight 6-wide columns.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/lanes_avx2.h"
#include "kernels/pack_a_isa.h"

namespace flamingo::kernels::avx2 {

void interleave6(const float* const* src, int64_t len, float* dst) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= len; t += 8) {
    __m256 r[8];
    for (int i = 0; i < 6; ++i) r[i] = src[i] ? _mm256_loadu_ps(src[i] + t) : zero;
    r[6] = r[7] = zero;
    transpose8x32(r);
    // Column c holds k = t + c for rows 0..5, then two zeros that the next store overwrites;
    // the last column stores its six values only, so a tile ends where its data does (matmul
    // packs neighbouring tiles on other threads).
    float* d = dst + t * 6;
    for (int c = 0; c < 7; ++c) _mm256_storeu_ps(d + ptrdiff_t{6} * c, r[c]);
    _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r[7]));
    _mm_storel_pi(reinterpret_cast<__m64*>(d + 46), _mm256_extractf128_ps(r[7], 1));
  }
  for (; t < len; ++t)
    for (int r = 0; r < 6; ++r) dst[t * 6 + r] = src[r] ? src[r][t] : 0.f;
}

}  // namespace flamingo::kernels::avx2
