// A bias-free linear layer y = x·Wᵀ on packed weights.
#pragma once

#include <string>
#include <utility>

#include "kernels/matmul.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

struct Linear {
  kernels::PackedMatrix w;

  Linear() = default;
  explicit Linear(kernels::PackedMatrix packed) : w(std::move(packed)) {}
  Linear(WeightSource& src, const std::string& name, int64_t out, int64_t in)
      : w(src.packed(name, out, in)) {}

  int64_t in() const { return w.k(); }
  int64_t out() const { return w.n(); }

  // y[m, out] (=|+=) x[m, in]·Wᵀ (+ bias), rows contiguous.
  void apply(const float* x, int64_t m, float* y, ThreadPool& pool, bool accumulate = false,
             const float* bias = nullptr) const {
    kernels::matmul(x, in(), m, w, y, out(), pool, {bias, accumulate});
  }
};

}  // namespace flamingo::model
