// Per-ISA entry points behind activation.h. The dispatcher in activation.cc validates the
// arguments and picks one set; activation_avx2.cc implements the AVX2+FMA set.
#pragma once

#include <cstdint>

namespace flamingo::kernels::avx2 {

void gelu_erf(const float* x, float* y, int64_t n, float scale);
void gelu_tanh(const float* x, float* y, int64_t n, float scale);
void silu(const float* x, float* y, int64_t n, float scale);
void relu(const float* x, float* y, int64_t n, float scale);
void squared_relu(const float* x, float* y, int64_t n, float scale);
void sigmoid(const float* x, float* y, int64_t n, float scale);
void tanh_act(const float* x, float* y, int64_t n, float scale);
void swiglu(const float* gate, const float* up, float* y, int64_t n);
void softmax(float* x, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);
void scale(float a, const float* x, float* y, int64_t n);
void mul_rows(const float* x, const float* w, float* y, int64_t rows, int64_t cols);

// y[i] = exp(x[i] − shift); returns Σ y[i] summed in a fixed order. Shared with the attention
// kernel so both use the same vector exp. x and y may alias.
float exp_shifted_sum(const float* x, float shift, float* y, int64_t n);

}  // namespace flamingo::kernels::avx2
