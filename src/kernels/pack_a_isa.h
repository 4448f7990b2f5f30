// AVX2 packing of activation rows into the GEMM micro-kernel's 6-row packed-A layout, shared by
// matmul.cc (rows of A) and conv.cc (implicit im2col patch rows).
#pragma once

#include <cstdint>

namespace flamingo::kernels::avx2 {

// dst[t·6 + r] = src[r] ? src[r][t] : 0 for t < len, r < 6: one run of six rows in the
// packed-A layout. Writes nothing outside dst[0, 6·len).
void interleave6(const float* const* src, int64_t len, float* dst);

}  // namespace flamingo::kernels::avx2
