// Per-ISA entry points behind norm.h (one row at a time; norm.cc loops and validates).
#pragma once

#include <cstdint>

namespace flamingo::kernels::avx2 {

void rmsnorm_row(const float* x, const float* weight, int64_t dim, float eps, float* y);
void layernorm_row(const float* x, const float* weight, const float* bias, int64_t dim, float eps,
                   float* y);

}  // namespace flamingo::kernels::avx2
