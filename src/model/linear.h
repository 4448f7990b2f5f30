// A bias-free linear layer y = x·Wᵀ on packed weights.
#pragma once

#include <string>
#include <utility>

#include "kernels/matmul.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

// The language side's layers (LLaMA, its head, the gated blocks' text-side projections) pass
// this as int8_act: with Q8_0/Q4_0 weights their decode GEMVs round x to 8 bits and become
// memory-bound (kernels/matmul.h, MatmulEpilogue::int8_activations). The vision side leaves
// it off.
constexpr bool kDecodeInt8 = true;

struct Linear {
  kernels::PackedMatrix w;
  // Decode-time GEMVs with Q8_0/Q4_0 weights round x to 8 bits (kernels/matmul.h); the
  // language model sets it, the vision side keeps x in fp32.
  bool int8_activations = false;

  Linear() = default;
  explicit Linear(kernels::PackedMatrix packed, bool int8_act = false)
      : w(std::move(packed)), int8_activations(int8_act) {}
  Linear(WeightSource& src, const std::string& name, int64_t out, int64_t in, bool int8_act = false)
      : w(src.packed(name, out, in)), int8_activations(int8_act) {}

  int64_t in() const { return w.k(); }
  int64_t out() const { return w.n(); }

  // y[m, out] (=|+=) x[m, in]·Wᵀ (+ bias), rows contiguous.
  void apply(const float* x, int64_t m, float* y, ThreadPool& pool, bool accumulate = false,
             const float* bias = nullptr) const {
    kernels::matmul(x, in(), m, w, y, out(), pool, {bias, accumulate, int8_activations});
  }
  // y[m, out] = act(x[m, in]·Wᵀ), the activation applied by the matmul's epilogue.
  void apply(const float* x, int64_t m, float* y, ThreadPool& pool, kernels::Activation act) const {
    kernels::MatmulEpilogue ep;
    ep.int8_activations = int8_activations;
    ep.activation = act;
    kernels::matmul(x, in(), m, w, y, out(), pool, ep);
  }
};

}  // namespace flamingo::model
