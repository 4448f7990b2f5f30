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

// A as the quantised GEMV sees it (kernels/matmul.h: M < 8 with Q8_0/Q4_0 weights): every
// block of 32 of each row rounded to d·q with d = absmax/127, q = nearest-even(x·127/absmax).
// Written from that definition, not from the kernels' code. Same shape and stride as A.
std::vector<float> round_rows_q8(const float* a, int64_t lda, int64_t m, int64_t k);

// ref[m×N] (row stride ldc) = (accumulate ? c0 : 0) + A·Wᵀ + bias, in double precision.
std::vector<float> reference_matmul(const float* a, int64_t lda, int64_t m, const float* w,
                                    int64_t n, int64_t k, const float* bias, const float* c0,
                                    int64_t ldc);

}  // namespace flamingo::testing
