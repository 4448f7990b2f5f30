// RoPE dispatch: frequencies and per-token angle tables are built here in fp32 exactly as HF
// transformers builds them (inv_freq = 1/θ^(2i/d), angle = float(pos)·inv_freq, then cos and
// sin of the fp32 angle), then each row is rotated by the active ISA's kernel.
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/rope_isa.h"
#include "util/check.h"

namespace flamingo::kernels {
namespace {

void rope_row_scalar(float* x, int n_heads, int head_dim, const float* cos, const float* sin,
                     bool interleaved) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      float* a = interleaved ? xh + 2 * i : xh + i;
      float* b = interleaved ? xh + 2 * i + 1 : xh + half + i;
      const float ac = *a * cos[i], bs = *b * sin[i], bc = *b * cos[i], as = *a * sin[i];
      *a = ac - bs;
      *b = bc + as;
    }
  }
}

}  // namespace

void rope(float* x, int64_t n_tokens, int64_t stride, int n_heads, int head_dim,
          const int64_t* positions, float theta, RopeStyle style) {
  if (n_tokens < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0)
    fail(ErrorCode::kInvalidArgument, "rope: bad shape n_tokens=", n_tokens, " n_heads=", n_heads,
         " head_dim=", head_dim, " (head_dim must be even)");
  if (stride < static_cast<int64_t>(n_heads) * head_dim)
    fail(ErrorCode::kInvalidArgument, "rope: row stride ", stride,
         " < n_heads·head_dim = ", static_cast<int64_t>(n_heads) * head_dim);
  if (!(theta > 0.f) || !std::isfinite(theta))
    fail(ErrorCode::kInvalidArgument, "rope: theta must be positive and finite, got ", theta);
  if (n_tokens == 0) return;
  if (x == nullptr || positions == nullptr) fail(ErrorCode::kInvalidArgument, "rope: null pointer");

  const int half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half)), cos(inv_freq.size()),
      sin(inv_freq.size());
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[static_cast<size_t>(i)] = 1.f / std::pow(theta, exponent);
  }
  const bool avx = active_isa() == Isa::kAvx2;
  const bool interleaved = style == RopeStyle::kInterleaved;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t pos = positions[t];
    if (pos < 0)
      fail(ErrorCode::kInvalidArgument, "rope: negative position ", pos, " at token ", t);
    const float p = static_cast<float>(pos);
    for (int i = 0; i < half; ++i) {
      const float angle = p * inv_freq[static_cast<size_t>(i)];
      cos[static_cast<size_t>(i)] = std::cos(angle);
      sin[static_cast<size_t>(i)] = std::sin(angle);
    }
    float* row = x + t * stride;
    if (avx)
      avx2::rope_row(row, n_heads, head_dim, cos.data(), sin.data(), interleaved);
    else
      rope_row_scalar(row, n_heads, head_dim, cos.data(), sin.data(), interleaved);
  }
}

}  // namespace flamingo::kernels
