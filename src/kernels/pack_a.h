// Packing rows of activations into the GEMM micro-kernel's packed-A layout, shared by the
// matmul (rows of A) and the convolution (implicit im2col patch rows). Baseline-compiled.
#pragma once

#include <cstdint>

namespace flamingo::kernels::detail {

// dst[t·rows + r] = src[r] ? src[r][t] : 0 for t < len, r < rows, 1 ≤ rows ≤ 6: one run of
// a row tile, on the active ISA. Writes nothing outside dst[0, rows·len).
void interleave_rows(const float* const* src, int rows, int64_t len, float* dst);

}  // namespace flamingo::kernels::detail
