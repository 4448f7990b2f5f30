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

void dequant_panel_q8_0_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ8BlockBytes;
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
    const uint8_t* q = blk + 32;
    for (int kk = 0; kk < kQBlock; ++kk) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + kk * kPanelRows));
      const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
      const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(x, 8)));
      _mm256_storeu_ps(out + kk * kPanelRows, _mm256_mul_ps(w0, d0));
      _mm256_storeu_ps(out + kk * kPanelRows + 8, _mm256_mul_ps(w1, d1));
    }
    out += kQBlock * kPanelRows;
  }
}

void dequant_panel_q4_0_avx2(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  const __m128i low_mask = _mm_set1_epi8(15);
  const __m128i eight = _mm_set1_epi8(8);
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ4BlockBytes;
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
    const uint8_t* q = blk + 32;
    for (int kk = 0; kk < kQBlock / 2; ++kk) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + kk * kPanelRows));
      const __m128i lo = _mm_sub_epi8(_mm_and_si128(x, low_mask), eight);
      const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), low_mask), eight);
      float* o_lo = out + kk * kPanelRows;
      float* o_hi = out + (kk + kQBlock / 2) * kPanelRows;
      _mm256_storeu_ps(o_lo, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d0));
      _mm256_storeu_ps(
          o_lo + 8,
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d1));
      _mm256_storeu_ps(o_hi, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d0));
      _mm256_storeu_ps(
          o_hi + 8,
          _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d1));
    }
    out += kQBlock * kPanelRows;
  }
}

}  // namespace flamingo::kernels::detail
