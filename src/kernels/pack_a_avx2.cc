// AVX2 gather of up to six rows into the packed-A layout: 8 k at a time, an 8×8 transpose (the
// missing rows zero) turns the row vectors into eight columns of `rows` values.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/lanes_avx2.h"
#include "kernels/pack_a_isa.h"

namespace flamingo::kernels::avx2 {
namespace {

template <int kRows>
void interleave(const float* const* src, int64_t len, float* dst) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= len; t += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = i < kRows && src[i] ? _mm256_loadu_ps(src[i] + t) : zero;
    transpose8x32(r);
    float* d = dst + t * kRows;
    if constexpr (kRows == 6) {
      // Column c holds k = t + c for rows 0..5, then two zeros that the next store
      // overwrites; the last column stores its six values only, so a tile ends where its data
      // does (matmul packs neighbouring tiles on other threads).
      for (int c = 0; c < 7; ++c) _mm256_storeu_ps(d + ptrdiff_t{6} * c, r[c]);
      _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 46), _mm256_extractf128_ps(r[7], 1));
    } else {
      // The short tile at the end of a block (the pixels of a 16×16 conv are 42 tiles of six
      // and one of four): its values through masked stores rather than one at a time.
      const __m256i m = tail_mask(kRows);
      for (int c = 0; c < 8; ++c) _mm256_maskstore_ps(d + ptrdiff_t{kRows} * c, m, r[c]);
    }
  }
  for (; t < len; ++t)
    for (int r = 0; r < kRows; ++r) dst[t * kRows + r] = src[r] ? src[r][t] : 0.f;
}

}  // namespace

void interleave_rows(const float* const* src, int rows, int64_t len, float* dst) {
  switch (rows) {
    case 1:
      return interleave<1>(src, len, dst);
    case 2:
      return interleave<2>(src, len, dst);
    case 3:
      return interleave<3>(src, len, dst);
    case 4:
      return interleave<4>(src, len, dst);
    case 5:
      return interleave<5>(src, len, dst);
    default:
      return interleave<6>(src, len, dst);
  }
}

}  // namespace flamingo::kernels::avx2
