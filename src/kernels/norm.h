// Row-wise normalisations over the last dimension, accumulated in fp32 (double for nothing).
// x and y may alias. weight/bias may be null (no affine part).
#pragma once

#include <cstdint>

namespace flamingo::kernels {

// y = x · rsqrt(mean(x²) + eps) · weight       (LLaMA / IDEFICS RMSNorm)
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y);

// y = (x − mean) · rsqrt(var + eps) · weight + bias   (biased variance, like torch LayerNorm)
void layernorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, float* y);

}  // namespace flamingo::kernels
