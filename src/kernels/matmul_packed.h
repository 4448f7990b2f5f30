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
  LargeBuffer data;  // 64-byte aligned

  const uint8_t* panel(int64_t p) const {
    return data.get() + static_cast<size_t>(p) * panel_stride;
  }
};

}  // namespace flamingo::kernels
