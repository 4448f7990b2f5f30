// Portable packing of one weight panel into the layout of matmul_kernels.h.
#include <algorithm>
#include <cstring>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

// d[i·16 + r] = rows[r][i] for i < count: a cache line of every source row at a time, so the
// stores stay within 1 KiB of L1. (Row at a time over the whole row, each store went to
// another line of a panel larger than L1; element at a time across the 16 rows, whose starts
// are a multiple of 4 KiB apart, the reads thrash one L1 set. Either made packing, i.e.
// loading, several times slower than copying the bytes.)
template <int kRows, typename T>
void interleave_rows(const uint8_t* const* rows, int n_rows, int64_t count, uint8_t* dst) {
  constexpr int64_t kLine = 64 / sizeof(T);
  const int nr = kRows > 0 ? kRows : n_rows;
  T* d = reinterpret_cast<T*>(dst);
  for (int64_t i0 = 0; i0 < count; i0 += kLine) {
    const int64_t i1 = std::min(count, i0 + kLine);
    for (int r = 0; r < nr; ++r) {
      const T* src = reinterpret_cast<const T*>(rows[r]);
      for (int64_t i = i0; i < i1; ++i) d[i * kPanelRows + r] = src[i];
    }
  }
}

template <typename T>
void interleave(const uint8_t* const* rows, int n_rows, int64_t count, uint8_t* dst) {
  if (n_rows == kPanelRows)
    interleave_rows<kPanelRows, T>(rows, n_rows, count, dst);
  else
    interleave_rows<0, T>(rows, n_rows, count, dst);
}

// Per block of 32 k: the rows' fp16 scales, then their codes (kCodeBytes per row) in groups
// of 4 bytes per row. A block is at most 544 bytes, so row at a time is fine here, and the
// constant code length lets the compiler unroll it.
template <int kCodeBytes, size_t kBlockBytes>
void pack_q(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k, uint8_t* dst) {
  const int64_t nb = k / kQBlock;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + static_cast<size_t>(b) * kBlockBytes;
    for (int r = 0; r < nr; ++r) {
      std::memcpy(blk + 2 * static_cast<size_t>(r), &scales[r * nb + b], 2);
      const uint8_t* src = rows[r] + b * kCodeBytes;
      for (int64_t g = 0; g < kCodeBytes / 4; ++g)
        std::memcpy(blk + kQScaleBytes + (g * kPanelRows + r) * 4, src + 4 * g, 4);
    }
  }
}

}  // namespace

void pack_panel_f32_scalar(const uint8_t* const* rows, int nr, const uint16_t*, int64_t k,
                           uint8_t* dst) {
  interleave<float>(rows, nr, k, dst);
}

void pack_panel_x16_scalar(const uint8_t* const* rows, int nr, const uint16_t*, int64_t k,
                           uint8_t* dst) {
  interleave<uint16_t>(rows, nr, k, dst);
}

void pack_panel_q8_0_scalar(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                            uint8_t* dst) {
  pack_q<kQBlock, kQ8BlockBytes>(rows, nr, scales, k, dst);
}

void pack_panel_q4_0_scalar(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                            uint8_t* dst) {
  pack_q<kQBlock / 2, kQ4BlockBytes>(rows, nr, scales, k, dst);
}

}  // namespace flamingo::kernels::detail
