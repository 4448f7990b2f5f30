// AVX2 helpers of conv.cc's implicit im2col.
#pragma once

#include <cstdint>

namespace flamingo::kernels::avx2 {

// dst[t·6 + r] = src[r] ? src[r][t] : 0 for t < len, r < 6: one run of six patch rows in the
// GEMM micro-kernel's packed-A layout. May write 2 floats past dst[6·len − 1] (the caller
// leaves room; the bytes belong to data written afterwards).
void interleave6(const float* const* src, int64_t len, float* dst);

}  // namespace flamingo::kernels::avx2
