// AVX2 packing of one full weight panel (16 rows) into the layout of matmul_kernels.h: every
// layout is a transpose of small tiles (f32 and 16-bit values, or 4-byte code groups), done in
// registers. The scalar packing moved one value per load and store, and loading a model is
// mostly packing (docs/performance.md).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/lanes_avx2.h"
#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

using avx2::transpose8x32;

// In each 128-bit lane, r[j] ← column j of the 8×8 matrix of 16-bit values whose rows are
// r[0..7] (lane 0 holds columns 0-7 of the rows' first 8 values, lane 1 of the next 8).
inline void transpose8x16_lanes(__m256i r[8]) {
  const __m256i s0 = _mm256_unpacklo_epi16(r[0], r[1]), s1 = _mm256_unpackhi_epi16(r[0], r[1]);
  const __m256i s2 = _mm256_unpacklo_epi16(r[2], r[3]), s3 = _mm256_unpackhi_epi16(r[2], r[3]);
  const __m256i s4 = _mm256_unpacklo_epi16(r[4], r[5]), s5 = _mm256_unpackhi_epi16(r[4], r[5]);
  const __m256i s6 = _mm256_unpacklo_epi16(r[6], r[7]), s7 = _mm256_unpackhi_epi16(r[6], r[7]);
  const __m256i u0 = _mm256_unpacklo_epi32(s0, s2), u1 = _mm256_unpackhi_epi32(s0, s2);
  const __m256i u2 = _mm256_unpacklo_epi32(s1, s3), u3 = _mm256_unpackhi_epi32(s1, s3);
  const __m256i u4 = _mm256_unpacklo_epi32(s4, s6), u5 = _mm256_unpackhi_epi32(s4, s6);
  const __m256i u6 = _mm256_unpacklo_epi32(s5, s7), u7 = _mm256_unpackhi_epi32(s5, s7);
  r[0] = _mm256_unpacklo_epi64(u0, u4);
  r[1] = _mm256_unpackhi_epi64(u0, u4);
  r[2] = _mm256_unpacklo_epi64(u1, u5);
  r[3] = _mm256_unpackhi_epi64(u1, u5);
  r[4] = _mm256_unpacklo_epi64(u2, u6);
  r[5] = _mm256_unpackhi_epi64(u2, u6);
  r[6] = _mm256_unpacklo_epi64(u3, u7);
  r[7] = _mm256_unpackhi_epi64(u3, u7);
}

// x[g] ← dword g of the four rows x[0..3].
inline void transpose4x32(__m128i x[4]) {
  const __m128i t0 = _mm_unpacklo_epi32(x[0], x[1]), t1 = _mm_unpackhi_epi32(x[0], x[1]);
  const __m128i t2 = _mm_unpacklo_epi32(x[2], x[3]), t3 = _mm_unpackhi_epi32(x[2], x[3]);
  x[0] = _mm_unpacklo_epi64(t0, t2);
  x[1] = _mm_unpackhi_epi64(t0, t2);
  x[2] = _mm_unpacklo_epi64(t1, t3);
  x[3] = _mm_unpackhi_epi64(t1, t3);
}

void copy_scales(const uint16_t* scales, int64_t nb, int64_t b, uint8_t* blk) {
  for (int r = 0; r < kPanelRows; ++r) std::memcpy(blk + ptrdiff_t{2} * r, &scales[r * nb + b], 2);
}

}  // namespace

void pack_panel_f32_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                         uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_f32_scalar(rows, nr, scales, k, dst);
  const float* src[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) src[r] = reinterpret_cast<const float*>(rows[r]);
  float* d = reinterpret_cast<float*>(dst);
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int h = 0; h < kPanelRows; h += 8) {
      __m256 x[8];
      for (int j = 0; j < 8; ++j) x[j] = _mm256_loadu_ps(src[h + j] + i);
      transpose8x32(x);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d + (i + j) * kPanelRows + h, x[j]);
    }
  }
  for (; i < k; ++i)
    for (int r = 0; r < kPanelRows; ++r) d[i * kPanelRows + r] = src[r][i];
}

void pack_panel_x16_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                         uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_x16_scalar(rows, nr, scales, k, dst);
  const uint16_t* src[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) src[r] = reinterpret_cast<const uint16_t*>(rows[r]);
  uint16_t* d = reinterpret_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m256i lo[8], hi[8];  // rows 0-7 and 8-15, 16 values each
    for (int j = 0; j < 8; ++j) {
      lo[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[j] + i));
      hi[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[8 + j] + i));
    }
    transpose8x16_lanes(lo);
    transpose8x16_lanes(hi);
    for (int j = 0; j < 8; ++j) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (i + j) * kPanelRows),
                          _mm256_permute2x128_si256(lo[j], hi[j], 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (i + 8 + j) * kPanelRows),
                          _mm256_permute2x128_si256(lo[j], hi[j], 0x31));
    }
  }
  for (; i < k; ++i)
    for (int r = 0; r < kPanelRows; ++r) d[i * kPanelRows + r] = src[r][i];
}

void pack_panel_q8_0_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                          uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_q8_0_scalar(rows, nr, scales, k, dst);
  const int64_t nb = k / kQBlock;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ8BlockBytes;
    copy_scales(scales, nb, b, blk);
    // A row's 32 codes are 8 groups of 4: one 32-bit lane per group, transposed so that each
    // store holds one group of 8 rows.
    float* codes = reinterpret_cast<float*>(blk + kQScaleBytes);
    for (int h = 0; h < kPanelRows; h += 8) {
      __m256 x[8];
      for (int j = 0; j < 8; ++j)
        x[j] = _mm256_loadu_ps(reinterpret_cast<const float*>(rows[h + j] + b * kQBlock));
      transpose8x32(x);
      for (int g = 0; g < 8; ++g) _mm256_storeu_ps(codes + ptrdiff_t{g} * kPanelRows + h, x[g]);
    }
  }
}

void pack_panel_q4_0_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                          uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_q4_0_scalar(rows, nr, scales, k, dst);
  const int64_t nb = k / kQBlock;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ4BlockBytes;
    copy_scales(scales, nb, b, blk);
    // A row's 16 code bytes are 4 groups of 4, transposed four rows at a time.
    uint8_t* codes = blk + kQScaleBytes;
    for (int h = 0; h < kPanelRows; h += 4) {
      __m128i x[4];
      for (int j = 0; j < 4; ++j)
        x[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[h + j] + b * kQBlock / 2));
      transpose4x32(x);
      for (int g = 0; g < 4; ++g)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + (ptrdiff_t{g} * kPanelRows + h) * 4),
                         x[g]);
    }
  }
}

}  // namespace flamingo::kernels::detail
