// Element-wise activations: y[i] = scale · f(x[i]). x and y may alias.
#pragma once

#include <cstdint>

namespace flamingo::kernels {

void gelu_erf(const float* x, float* y, int64_t n, float scale = 1.f);   // x·Φ(x), exact erf
void gelu_tanh(const float* x, float* y, int64_t n, float scale = 1.f);  // tanh approximation
void silu(const float* x, float* y, int64_t n, float scale = 1.f);
void relu(const float* x, float* y, int64_t n, float scale = 1.f);
void squared_relu(const float* x, float* y, int64_t n, float scale = 1.f);
void sigmoid(const float* x, float* y, int64_t n, float scale = 1.f);
void tanh_act(const float* x, float* y, int64_t n, float scale = 1.f);

// The activations a layer can name, so that one call (or a matmul epilogue) applies any of
// them. kIdentity is y = scale·x.
enum class Activation { kIdentity, kGelu, kGeluTanh, kRelu, kSquaredRelu, kSilu };
void activate(Activation f, const float* x, float* y, int64_t n, float scale = 1.f);

// y = silu(gate) ⊙ up   (LLaMA's SwiGLU). y may alias gate or up.
void swiglu(const float* gate, const float* up, float* y, int64_t n);

// In-place softmax over n values (max-subtracted, fp32).
void softmax(float* x, int64_t n);

// y += a·x  (gated residual adds: a = tanh(gate), α in NFNet blocks).
void axpy(float a, const float* x, float* y, int64_t n);
// y = a·x  (x and y may alias).
void scale(float a, const float* x, float* y, int64_t n);
// y = x ⊙ w row-wise broadcast: y[r, c] = x[r, c] · w[c].
void mul_rows(const float* x, const float* w, float* y, int64_t rows, int64_t cols);

}  // namespace flamingo::kernels
