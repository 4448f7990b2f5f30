// AVX2 packing of one full weight panel (16 rows) into the layout of matmul_kernels.h: every
// layout is a transpose of small tiles (f32 and 16-bit values, or 4-byte code groups), done in
// registers. The scalar packing moved one value per load and store, and loading a model is
// mostly packing (docs/performance.md). Whole lines are written with streaming stores.
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

// The quantised panels read 16 rows of codes at once, 16-32 bytes of each per block: each row's
// next lines are prefetched by hand, kAheadBytes ahead, once per line (q8_0's packing took
// 2-14 % fewer samples with it, three pairs of 1-thread loads; q4_0's did not differ). A
// prefetch past the end of a row's tensor never faults.
constexpr int64_t kAheadBytes = 512;

inline void prefetch_rows(const uint8_t* const* rows, int64_t offset) {
  for (int r = 0; r < kPanelRows; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(rows[r] + offset + kAheadBytes), _MM_HINT_T0);
}

// Streaming stores: the packed weights are not read again while a model loads, and ordinary
// stores would first read every line they fill. In 1-thread loads (perf, 2026-12-07) the
// packing kernels took 15-16 % fewer samples with them (f32, bf16, q4_0; 4-7 pairs) and f32
// and bf16 loads about 15 % less time; each kernel writes whole 64-byte lines in order.
// Panels are 64-byte aligned (matmul_pack.cc); a destination that is not gets ordinary stores.
// The closing fence orders the streamed lines before the pool reports the task done.
inline bool aligned32(const void* p) { return reinterpret_cast<uintptr_t>(p) % 32 == 0; }

inline void store_ps(float* p, __m256 v, bool stream) {
  if (stream)
    _mm256_stream_ps(p, v);
  else
    _mm256_storeu_ps(p, v);
}

template <typename T>
inline void store_si256(T* p, __m256i v, bool stream) {
  if (stream)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
  else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}

// The 16 fp16 scales that open a block: row r's scale of block b is scales[r·nb + b]. For
// blocks [b, b + 8) they are a 16×8 transpose of 16-bit values (rows 0-7 in the low lanes,
// 8-15 in the high ones), written to out[i] for block b + i; fewer than 8 blocks left go one
// value at a time.
void block_scales8(const uint16_t* scales, int64_t nb, int64_t b, __m256i out[8]) {
  if (b + 8 <= nb) {
    for (int j = 0; j < 8; ++j)
      out[j] = _mm256_inserti128_si256(
          _mm256_castsi128_si256(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + j * nb + b))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + (8 + j) * nb + b)), 1);
    transpose8x16_lanes(out);
    return;
  }
  alignas(32) uint16_t v[8][kPanelRows] = {};
  for (int64_t i = 0; i < nb - b; ++i)
    for (int r = 0; r < kPanelRows; ++r) v[i][r] = scales[r * nb + b + i];
  for (int i = 0; i < 8; ++i) out[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(v[i]));
}

}  // namespace

void pack_panel_f32_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                         uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_f32_scalar(rows, nr, scales, k, dst);
  const float* src[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) src[r] = reinterpret_cast<const float*>(rows[r]);
  float* d = reinterpret_cast<float*>(dst);
  const bool stream = aligned32(dst);
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 lo[8], hi[8];  // rows 0-7 and 8-15
    for (int j = 0; j < 8; ++j) {
      lo[j] = _mm256_loadu_ps(src[j] + i);
      hi[j] = _mm256_loadu_ps(src[8 + j] + i);
    }
    transpose8x32(lo);
    transpose8x32(hi);
    // Value i + j of the 16 rows is one whole 64-byte line.
    for (int j = 0; j < 8; ++j) {
      float* line = d + (i + j) * kPanelRows;
      store_ps(line, lo[j], stream);
      store_ps(line + 8, hi[j], stream);
    }
  }
  for (; i < k; ++i)
    for (int r = 0; r < kPanelRows; ++r) d[i * kPanelRows + r] = src[r][i];
  if (stream) _mm_sfence();
}

void pack_panel_x16_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                         uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_x16_scalar(rows, nr, scales, k, dst);
  const uint16_t* src[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) src[r] = reinterpret_cast<const uint16_t*>(rows[r]);
  uint16_t* d = reinterpret_cast<uint16_t*>(dst);
  const bool stream = aligned32(dst);
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m256i lo[8], hi[8];  // rows 0-7 and 8-15, 16 values each
    for (int j = 0; j < 8; ++j) {
      lo[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[j] + i));
      hi[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[8 + j] + i));
    }
    transpose8x16_lanes(lo);
    transpose8x16_lanes(hi);
    // Values i + j and i + j + 1 of the 16 rows share one 64-byte line: stored in that order.
    __m256i v[16];
    for (int j = 0; j < 8; ++j) {
      v[j] = _mm256_permute2x128_si256(lo[j], hi[j], 0x20);
      v[8 + j] = _mm256_permute2x128_si256(lo[j], hi[j], 0x31);
    }
    for (int j = 0; j < 16; ++j) store_si256(d + (i + j) * kPanelRows, v[j], stream);
  }
  for (; i < k; ++i)
    for (int r = 0; r < kPanelRows; ++r) d[i * kPanelRows + r] = src[r][i];
  if (stream) _mm_sfence();
}

void pack_panel_q8_0_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                          uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_q8_0_scalar(rows, nr, scales, k, dst);
  const int64_t nb = k / kQBlock;
  const bool stream = aligned32(dst);
  __m256i sc[8];
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ8BlockBytes;
    if (b % 8 == 0) block_scales8(scales, nb, b, sc);
    if (b % 2 == 0) prefetch_rows(rows, b * kQBlock);
    store_si256(blk, sc[b % 8], stream);
    // A row's 32 codes are 8 groups of 4: one 32-bit lane per group, transposed so that group
    // g of rows 0-7 and then of rows 8-15 fill the 64-byte line of group g.
    __m256 x[2][8];
    for (int h = 0; h < 2; ++h) {
      for (int j = 0; j < 8; ++j)
        x[h][j] = _mm256_loadu_ps(reinterpret_cast<const float*>(rows[8 * h + j] + b * kQBlock));
      transpose8x32(x[h]);
    }
    uint8_t* codes = blk + kQScaleBytes;
    for (int g = 0; g < 8; ++g)
      for (int h = 0; h < 2; ++h)
        store_si256(codes + ptrdiff_t{64} * g + ptrdiff_t{32} * h, _mm256_castps_si256(x[h][g]),
                    stream);
  }
  if (stream) _mm_sfence();
}

void pack_panel_q4_0_avx2(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                          uint8_t* dst) {
  if (nr < kPanelRows) return pack_panel_q4_0_scalar(rows, nr, scales, k, dst);
  const int64_t nb = k / kQBlock;
  const bool stream = aligned32(dst);
  __m256i sc[8];
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + static_cast<size_t>(b) * kQ4BlockBytes;
    if (b % 8 == 0) block_scales8(scales, nb, b, sc);
    if (b % 4 == 0) prefetch_rows(rows, b * kQBlock / 2);
    store_si256(blk, sc[b % 8], stream);
    // A row's 16 code bytes are 4 groups of 4, transposed four rows at a time; group g of
    // rows 0-15 is one 64-byte line, stored as two halves of 8 rows.
    __m128i x[4][4];
    for (int q = 0; q < 4; ++q) {
      for (int j = 0; j < 4; ++j)
        x[q][j] =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[4 * q + j] + b * kQBlock / 2));
      transpose4x32(x[q]);
    }
    uint8_t* codes = blk + kQScaleBytes;
    for (int g = 0; g < 4; ++g)
      for (int64_t h = 0; h < 2; ++h)
        store_si256(codes + ptrdiff_t{64} * g + ptrdiff_t{32} * h,
                    _mm256_set_m128i(x[2 * h + 1][g], x[2 * h][g]), stream);
  }
  if (stream) _mm_sfence();
}

}  // namespace flamingo::kernels::detail
