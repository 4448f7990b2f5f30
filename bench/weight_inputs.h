// A weight matrix in each storage type, as a model file holds it (row-major N×K, quantised
// rows with their fp16 scales), made from deterministic random values: the input of
// pack_matrix in the benchmarks.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/matmul.h"
#include "random_inputs.h"

namespace flamingo::bench {

struct SourceWeights {
  std::vector<float> f32;
  std::vector<uint8_t> data;  // non-f32 types
  std::vector<uint16_t> scales;
  kernels::WeightView view{};
};

inline SourceWeights make_source_weights(kernels::WeightType type, int64_t k, int64_t n) {
  namespace fk = flamingo::kernels;
  SourceWeights s;
  s.f32 = random_vector(static_cast<size_t>(k * n), static_cast<uint32_t>(k * 31 + n));
  const size_t count = s.f32.size();
  s.view = fk::WeightView{type, nullptr, nullptr, n, k};
  switch (type) {
    case fk::WeightType::kF32:
      s.view.data = s.f32.data();
      break;
    case fk::WeightType::kF16:
    case fk::WeightType::kBF16: {
      s.data.resize(count * 2);
      auto* h = reinterpret_cast<uint16_t*>(s.data.data());
      for (size_t i = 0; i < count; ++i)
        h[i] =
            type == fk::WeightType::kF16 ? fk::fp32_to_fp16(s.f32[i]) : fk::fp32_to_bf16(s.f32[i]);
      s.view.data = s.data.data();
      break;
    }
    case fk::WeightType::kQ8_0:
    case fk::WeightType::kQ4_0:
      s.scales.resize(count / 32);
      s.data.resize(type == fk::WeightType::kQ8_0 ? count : count / 2);
      for (int64_t r = 0; r < n; ++r) {
        if (type == fk::WeightType::kQ8_0)
          fk::quantize_row_q8_0(&s.f32[r * k], k, reinterpret_cast<int8_t*>(s.data.data()) + r * k,
                                &s.scales[r * k / 32]);
        else
          fk::quantize_row_q4_0(&s.f32[r * k], k, s.data.data() + r * k / 2, &s.scales[r * k / 32]);
      }
      s.view.data = s.data.data();
      s.view.scales = s.scales.data();
      break;
  }
  return s;
}

}  // namespace flamingo::bench
