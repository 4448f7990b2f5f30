// PackedMatrix's private state, shared by packing (matmul_pack.cc) and the dispatcher
// (matmul.cc). Baseline-compiled files only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"
#include "util/large_buffer.h"

namespace flamingo::kernels {

struct PackedMatrix::Impl {
  WeightType type = WeightType::kF32;
  int64_t n = 0, k = 0;
  int64_t num_panels = 0;
  size_t panel_stride = 0;  // bytes from one panel to the next (a multiple of 64)
  size_t bytes = 0;
  const uint8_t* data = nullptr;      // 64-byte aligned: owned, or adopted from `owner`
  LargeBuffer owned;                  // what pack_matrix allocated and wrote
  std::shared_ptr<const void> owner;  // what keeps adopted bytes alive

  const uint8_t* panel(int64_t p) const { return data + static_cast<size_t>(p) * panel_stride; }
};

// What a blocked GEMM over panels [p0, p1) and k blocks of k_block columns reads after the
// sub-panel (p, k0): the next panel's k block, or after the last panel the first one's next
// k block. The first of the block's `row_tiles` row tiles prefetch it a slice each (GemmFn
// pulls kc/4 · lines lines), so that its cache misses overlap with the FMAs instead of
// stalling the next panel's first tile. Many tiles take one line per 4 k each; a block of one
// or two (a prompt of 8 to 23 tokens) takes 2 or 4, or most of a sub-panel streamed from DRAM
// would arrive only when its FMAs ask for it.
struct NextWeights {
  const uint8_t* at = nullptr;
  int64_t tiles = 0;        // row tiles that prefetch a slice
  int64_t slice_bytes = 0;  // bytes each one prefetches
  int lines = 1;            // lines per 4 k
  const void* slice(int64_t tile) const { return tile < tiles ? at + tile * slice_bytes : nullptr; }
};
NextWeights next_weights(const PackedMatrix::Impl& w, int64_t p, int64_t p0, int64_t p1, int64_t k0,
                         int64_t kc, int64_t k_block, int64_t row_tiles);

// The active ISA's register tile, and how it widens `type`'s panels to fp32 for that tile
// (null for f32, whose panels it reads in place): the GEMM's choices, which the convolution
// shares.
detail::GemmFn panel_gemm();
detail::DequantFn panel_dequant(WeightType type);
// The active ISA's packing of one panel of `type` (null for an unknown type); every ISA
// writes the same bytes.
detail::PackPanelFn pack_panel_fn(WeightType type);

// Sub-panel (p, k0) of w as kc×16 fp32 values: an f32 panel in place, any other type widened
// into scratch (kc·16 floats) by `dequant`, the value panel_dequant(w.type) gave.
inline const float* sub_panel(detail::DequantFn dequant, const PackedMatrix::Impl& w, int64_t p,
                              int64_t k0, int64_t kc, float* scratch) {
  if (!dequant) return reinterpret_cast<const float*>(w.panel(p)) + k0 * detail::kPanelRows;
  dequant(w.panel(p), k0, kc, scratch);
  return scratch;
}

// One weight sub-panel b (kc×16, columns [0, nr) of C) against a packed block of `rows` rows of
// A: the row tiles of gemm_tile_rows in turn, tile t prefetching next.slice(t). The GEMM and
// the convolution share it, so the tiles they run are the ones their packing laid out.
void run_row_tiles(detail::GemmFn gemm, const float* a_block, int64_t rows, int64_t kc,
                   const float* b, float* c, int64_t ldc, int nr, bool add,
                   const NextWeights& next);

// Columns [n0, n1) of `rows` rows of C (row stride ldc) hold A·Wᵀ: add ep.bias[n0..n1) and
// apply ep's activation. The GEMM and the convolution call it on each block they complete.
void finish_block(float* c, int64_t ldc, int64_t rows, int64_t n0, int64_t n1,
                  const MatmulEpilogue& ep);
bool has_activation(const MatmulEpilogue& ep);

}  // namespace flamingo::kernels
