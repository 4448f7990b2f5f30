// Dispatch and the portable scalar path for the row normalisations. The scalar sums use eight
// interleaved partial sums, mirroring one AVX2 accumulator, to stay close to the vector path's
// accuracy without needing double.
#include "kernels/norm.h"

#include <cmath>

#include "kernels/cpu.h"
#include "kernels/norm_isa.h"
#include "util/check.h"

namespace flamingo::kernels {
namespace {

void check_shape(int64_t rows, int64_t dim, float eps, const char* what) {
  if (rows < 0 || dim <= 0)
    fail(ErrorCode::kInvalidArgument, what, ": bad shape rows=", rows, " dim=", dim);
  if (!(eps >= 0.f) || !std::isfinite(eps))
    fail(ErrorCode::kInvalidArgument, what, ": eps must be finite and ≥ 0, got ", eps);
}

float partial_sum(const float* x, int64_t n, float c, bool square) {
  float acc[8] = {};
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - c;
    acc[i & 7] += square ? d * d : d;
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y) {
  check_shape(rows, dim, eps, "rmsnorm");
  const bool avx = active_isa() == Isa::kAvx2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    if (avx) {
      avx2::rmsnorm_row(xr, weight, dim, eps, yr);
      continue;
    }
    const float ms = partial_sum(xr, dim, 0.f, true) / static_cast<float>(dim);
    const float inv = 1.f / std::sqrt(ms + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = weight ? (xr[i] * inv) * weight[i] : xr[i] * inv;
  }
}

void layernorm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t dim,
               float eps, float* y) {
  check_shape(rows, dim, eps, "layernorm");
  const bool avx = active_isa() == Isa::kAvx2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    if (avx) {
      avx2::layernorm_row(xr, weight, bias, dim, eps, yr);
      continue;
    }
    const float mean = partial_sum(xr, dim, 0.f, false) / static_cast<float>(dim);
    const float var = partial_sum(xr, dim, mean, true) / static_cast<float>(dim);
    const float inv = 1.f / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; ++i) {
      float v = (xr[i] - mean) * inv;
      if (weight) v *= weight[i];
      if (bias) v += bias[i];
      yr[i] = v;
    }
  }
}

}  // namespace flamingo::kernels
