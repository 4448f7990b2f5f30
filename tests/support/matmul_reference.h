// Weight matrices in every storage type plus a double-precision reference matmul, shared by
// the matmul tests.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"

namespace flamingo::testing {

// An n×k weight matrix stored as `type`, built from random fp32 values.
struct TestWeights {
  kernels::WeightType type;
  int64_t n, k;
  std::vector<float> original;     // the fp32 values before conversion
  std::vector<float> dequantised;  // what the stored type actually represents
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
  kernels::WeightView view() const;
};

TestWeights make_weights(kernels::WeightType type, int64_t n, int64_t k, uint64_t seed,
                         float scale = 1.f);

// ref[m×N] (row stride ldc) = (accumulate ? c0 : 0) + A·Wᵀ + bias, in double precision.
std::vector<float> reference_matmul(const float* a, int64_t lda, int64_t m, const float* w,
                                    int64_t n, int64_t k, const float* bias, const float* c0,
                                    int64_t ldc);

}  // namespace flamingo::testing
