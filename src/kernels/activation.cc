// Dispatch for the element-wise kernels, and their portable scalar forms (libm based, so the
// scalar path doubles as an accuracy reference for the vector approximations).
#include "kernels/activation.h"

#include <cmath>

#include "kernels/activation_isa.h"
#include "kernels/cpu.h"
#include "util/check.h"

namespace flamingo::kernels {
namespace {

bool use_avx2() { return active_isa() == Isa::kAvx2; }

void check_n(int64_t n, const char* what) {
  if (n < 0) fail(ErrorCode::kInvalidArgument, what, ": negative element count ", n);
}

// In double so that rounding x/√2 does not cost relative accuracy in the negative tail.
float gelu_erf1(float x) {
  return static_cast<float>(0.5 * x * std::erfc(-x * 0.70710678118654752));
}
float sigmoid1(float x) { return 1.f / (1.f + std::exp(-x)); }
float gelu_tanh1(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * (x * x * x));
  return x * sigmoid1(u + u);
}
float relu1(float x) { return x < 0.f ? 0.f : x; }

template <typename F>
void map_scalar(const float* x, float* y, int64_t n, float scale, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]) * scale;
}

}  // namespace

void gelu_erf(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "gelu_erf");
  if (use_avx2()) return avx2::gelu_erf(x, y, n, scale);
  map_scalar(x, y, n, scale, gelu_erf1);
}

void gelu_tanh(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "gelu_tanh");
  if (use_avx2()) return avx2::gelu_tanh(x, y, n, scale);
  map_scalar(x, y, n, scale, gelu_tanh1);
}

void silu(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "silu");
  if (use_avx2()) return avx2::silu(x, y, n, scale);
  map_scalar(x, y, n, scale, [](float v) { return v / (1.f + std::exp(-v)); });
}

void relu(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "relu");
  if (use_avx2()) return avx2::relu(x, y, n, scale);
  map_scalar(x, y, n, scale, relu1);
}

void squared_relu(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "squared_relu");
  if (use_avx2()) return avx2::squared_relu(x, y, n, scale);
  map_scalar(x, y, n, scale, [](float v) {
    const float r = relu1(v);
    return r * r;
  });
}

void sigmoid(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "sigmoid");
  if (use_avx2()) return avx2::sigmoid(x, y, n, scale);
  map_scalar(x, y, n, scale, sigmoid1);
}

void tanh_act(const float* x, float* y, int64_t n, float scale) {
  check_n(n, "tanh");
  if (use_avx2()) return avx2::tanh_act(x, y, n, scale);
  map_scalar(x, y, n, scale, [](float v) { return std::tanh(v); });
}

void activate(Activation f, const float* x, float* y, int64_t n, float scale) {
  switch (f) {
    case Activation::kIdentity:
      return kernels::scale(scale, x, y, n);
    case Activation::kGelu:
      return gelu_erf(x, y, n, scale);
    case Activation::kGeluTanh:
      return gelu_tanh(x, y, n, scale);
    case Activation::kRelu:
      return relu(x, y, n, scale);
    case Activation::kSquaredRelu:
      return squared_relu(x, y, n, scale);
    case Activation::kSilu:
      return silu(x, y, n, scale);
  }
  fail(ErrorCode::kInvalidArgument, "activate: unknown activation ", static_cast<int>(f));
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  check_n(n, "swiglu");
  if (use_avx2()) return avx2::swiglu(gate, up, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = gate[i] * sigmoid1(gate[i]) * up[i];
}

void softmax(float* x, int64_t n) {
  check_n(n, "softmax");
  if (n == 0) return;
  if (use_avx2()) return avx2::softmax(x, n);
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  check_n(n, "axpy");
  if (use_avx2()) return avx2::axpy(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale(float a, const float* x, float* y, int64_t n) {
  check_n(n, "scale");
  if (use_avx2()) return avx2::scale(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a;
}

void mul_rows(const float* x, const float* w, float* y, int64_t rows, int64_t cols) {
  check_n(rows, "mul_rows rows");
  check_n(cols, "mul_rows cols");
  if (use_avx2()) return avx2::mul_rows(x, w, y, rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] * w[c];
}

}  // namespace flamingo::kernels
