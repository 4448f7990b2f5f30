// AVX2 packing of activation rows into the GEMM micro-kernel's packed-A layout, shared by
// matmul.cc (rows of A) and conv.cc (implicit im2col patch rows).
#pragma once

#include <cstdint>

namespace flamingo::kernels::avx2 {

// dst[t·rows + r] = src[r] ? src[r][t] : 0 for t < len, r < rows ≤ 6: one run of a tile of
// `rows` rows in the packed-A layout. Writes nothing outside dst[0, rows·len).
void interleave_rows(const float* const* src, int rows, int64_t len, float* dst);

}  // namespace flamingo::kernels::avx2
