#include "support/matmul_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "support/test_util.h"

namespace flamingo::testing {

using kernels::WeightType;

kernels::WeightView TestWeights::view() const {
  kernels::WeightView v;
  v.type = type;
  v.data = data.data();
  v.scales = scales.empty() ? nullptr : scales.data();
  v.n = n;
  v.k = k;
  return v;
}

TestWeights make_weights(WeightType type, int64_t n, int64_t k, uint64_t seed, float scale) {
  TestWeights w{type, n,  k, random_floats(static_cast<size_t>(n * k), seed, -scale, scale),
                {},   {}, {}};
  const size_t count = static_cast<size_t>(n * k);
  switch (type) {
    case WeightType::kF32:
      w.data.resize(count * 4);
      std::memcpy(w.data.data(), w.original.data(), count * 4);
      break;
    case WeightType::kF16:
    case WeightType::kBF16: {
      w.data.resize(count * 2);
      uint16_t* h = reinterpret_cast<uint16_t*>(w.data.data());
      for (size_t i = 0; i < count; ++i)
        h[i] = type == WeightType::kF16 ? kernels::fp32_to_fp16(w.original[i])
                                        : kernels::fp32_to_bf16(w.original[i]);
      break;
    }
    case WeightType::kQ8_0:
    case WeightType::kQ4_0:
      w.scales.resize(count / 32);
      w.data.resize(type == WeightType::kQ8_0 ? count : count / 2);
      for (int64_t r = 0; r < n; ++r) {
        if (type == WeightType::kQ8_0) {
          kernels::quantize_row_q8_0(&w.original[r * k], k,
                                     reinterpret_cast<int8_t*>(w.data.data()) + r * k,
                                     &w.scales[r * k / 32]);
        } else {
          kernels::quantize_row_q4_0(&w.original[r * k], k, w.data.data() + r * k / 2,
                                     &w.scales[r * k / 32]);
        }
      }
      break;
  }
  w.dequantised.resize(count);
  const kernels::WeightView v = w.view();
  for (int64_t r = 0; r < n; ++r) kernels::dequantize_row(v, r, &w.dequantised[r * k]);
  return w;
}

std::vector<float> round_rows_q8(const float* a, int64_t lda, int64_t m, int64_t k) {
  std::vector<float> out(a, a + (m - 1) * lda + k);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t b0 = 0; b0 < k; b0 += 32) {
      float* x = out.data() + r * lda + b0;
      float amax = 0.f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float d = amax / 127.f, inv = 127.f / amax;
      for (int i = 0; i < 32; ++i) x[i] = amax == 0.f ? 0.f : d * std::nearbyint(x[i] * inv);
    }
  }
  return out;
}

std::vector<float> reference_matmul(const float* a, int64_t lda, int64_t m, const float* w,
                                    int64_t n, int64_t k, const float* bias, const float* c0,
                                    int64_t ldc) {
  std::vector<float> ref(static_cast<size_t>(m * ldc), 0.f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t kk = 0; kk < k; ++kk) s += static_cast<double>(a[i * lda + kk]) * w[j * k + kk];
      if (bias) s += bias[j];
      if (c0) s += c0[i * ldc + j];
      ref[i * ldc + j] = static_cast<float>(s);
    }
  }
  return ref;
}

}  // namespace flamingo::testing
