// The activations a config can name, mapped to the kernels' enum, and a pooled form of the call.
#pragma once

#include <algorithm>
#include <cstdint>

#include "io/config.h"
#include "kernels/activation.h"
#include "util/thread_pool.h"

namespace flamingo::model {

using kernels::Activation;

inline Activation to_activation(io::VisionActivation a) {
  switch (a) {
    case io::VisionActivation::kGelu:
      return Activation::kGelu;
    case io::VisionActivation::kGeluTanh:
      return Activation::kGeluTanh;
    case io::VisionActivation::kRelu:
      return Activation::kRelu;
    case io::VisionActivation::kSilu:
      return Activation::kSilu;
  }
  return Activation::kGelu;
}

inline Activation to_activation(io::ResamplerActivation a) {
  switch (a) {
    case io::ResamplerActivation::kGelu:
      return Activation::kGelu;
    case io::ResamplerActivation::kRelu:
      return Activation::kRelu;
    case io::ResamplerActivation::kSquaredRelu:
      return Activation::kSquaredRelu;
  }
  return Activation::kGelu;
}

// y = scale · f(x) over n values (x and y may alias), on the pool's threads in fixed chunks of
// values: the vision encoder's activations are millions of values per image, which on one
// thread left the other idle for a tenth of the encoder's time. Element-wise, so the result
// does not depend on the threads.
inline void activate(Activation a, const float* x, float* y, int64_t n, float scale,
                     ThreadPool& pool) {
  constexpr int64_t kChunk = 16384;
  pool.parallel_for(
      (n + kChunk - 1) / kChunk,
      [&](int64_t t) {
        const int64_t i = t * kChunk;
        kernels::activate(a, x + i, y + i, std::min(kChunk, n - i), scale);
      },
      0.5 * static_cast<double>(n));  // about 0.5 ns per value on one thread (erf GELU)
}

}  // namespace flamingo::model
