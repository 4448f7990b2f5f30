// Tail masks and horizontal reductions shared by the AVX2 kernels. Include only from
// *_avx2.cc files: the functions use AVX2 intrinsics and have internal linkage, so each AVX2
// translation unit gets its own copy and none leaks into code compiled for baseline x86-64.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace flamingo::kernels::avx2 {
namespace {

alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// Lanes [0, rem) set, rem in 1..7.
inline __m256i tail_mask(int64_t rem) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - rem));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace flamingo::kernels::avx2
