// The activations a config can name, and one call that applies any of them.
#pragma once

#include <cstdint>

#include "io/config.h"
#include "kernels/activation.h"

namespace flamingo::model {

enum class Activation { kGelu, kGeluTanh, kRelu, kSquaredRelu, kSilu };

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

// y = scale · f(x) over n values (x and y may alias).
inline void activate(Activation a, const float* x, float* y, int64_t n, float scale = 1.f) {
  switch (a) {
    case Activation::kGelu:
      kernels::gelu_erf(x, y, n, scale);
      return;
    case Activation::kGeluTanh:
      kernels::gelu_tanh(x, y, n, scale);
      return;
    case Activation::kRelu:
      kernels::relu(x, y, n, scale);
      return;
    case Activation::kSquaredRelu:
      kernels::squared_relu(x, y, n, scale);
      return;
    case Activation::kSilu:
      kernels::silu(x, y, n, scale);
      return;
  }
}

}  // namespace flamingo::model
