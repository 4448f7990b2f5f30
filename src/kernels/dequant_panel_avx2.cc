// AVX2+F16C expansion of packed weight sub-panels to fp32 for the GEMM path: a kc×16 block
// at a time, into a buffer that stays in L1 while every row tile of A passes over it.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {

void dequant_panel_f16_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(panel) + k0 * kPanelRows;
  for (int64_t i = 0; i < kc * kPanelRows; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
}

void dequant_panel_bf16_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(panel) + k0 * kPanelRows;
  for (int64_t i = 0; i < kc * kPanelRows; i += 8) {
    const __m256i x =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)));
  }
}

namespace {

// Byte I of every 32-bit lane (4 codes of one row), sign-extended.
template <int I>
inline __m256i byte_i8(__m256i x) {
  if constexpr (I == 3) return _mm256_srai_epi32(x, 24);
  return _mm256_srai_epi32(_mm256_slli_epi32(x, 24 - 8 * I), 24);
}

// The 4 k of code group g (cols 0-7 in x0, 8-15 in x1) scaled into rows 4g..4g+3 of out.
template <int I = 0>
inline void store_q8_group(__m256i x0, __m256i x1, __m256 d0, __m256 d1, float* out) {
  _mm256_storeu_ps(out + int64_t{I} * kPanelRows,
                   _mm256_mul_ps(_mm256_cvtepi32_ps(byte_i8<I>(x0)), d0));
  _mm256_storeu_ps(out + int64_t{I} * kPanelRows + 8,
                   _mm256_mul_ps(_mm256_cvtepi32_ps(byte_i8<I>(x1)), d1));
  if constexpr (I < 3) store_q8_group<I + 1>(x0, x1, d0, d1, out);
}

// Nibble S/4 (S = 0, 4, 8, ..., 28) of every lane, minus 8, scaled.
template <int S>
inline __m256 nibble_ps(__m256i x, __m256 d) {
  const __m256i v = _mm256_and_si256(_mm256_srli_epi32(x, S), _mm256_set1_epi32(15));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, _mm256_set1_epi32(8))), d);
}

template <int I = 0>
inline void store_q4_group(__m256i x0, __m256i x1, __m256 d0, __m256 d1, float* lo, float* hi) {
  _mm256_storeu_ps(lo + int64_t{I} * kPanelRows, nibble_ps<8 * I>(x0, d0));
  _mm256_storeu_ps(lo + int64_t{I} * kPanelRows + 8, nibble_ps<8 * I>(x1, d1));
  _mm256_storeu_ps(hi + int64_t{I} * kPanelRows, nibble_ps<8 * I + 4>(x0, d0));
  _mm256_storeu_ps(hi + int64_t{I} * kPanelRows + 8, nibble_ps<8 * I + 4>(x1, d1));
  if constexpr (I < 3) store_q4_group<I + 1>(x0, x1, d0, d1, lo, hi);
}

inline __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

}  // namespace

void dequant_panel_q8_0_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ8BlockBytes;
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
    const uint8_t* q = blk + 32;
    for (int64_t g = 0; g < kQBlock / 4; ++g)
      store_q8_group(load256(q + g * 64), load256(q + g * 64 + 32), d0, d1,
                     out + 4 * g * kPanelRows);
    out += int64_t{kQBlock} * kPanelRows;
  }
}

void dequant_panel_q4_0_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ4BlockBytes;
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
    const uint8_t* q = blk + 32;
    for (int64_t g = 0; g < kQBlock / 8; ++g)
      store_q4_group(load256(q + g * 64), load256(q + g * 64 + 32), d0, d1,
                     out + 4 * g * kPanelRows, out + (4 * g + kQBlock / 2) * kPanelRows);
    out += int64_t{kQBlock} * kPanelRows;
  }
}

}  // namespace flamingo::kernels::detail
