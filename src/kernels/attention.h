// Scaled dot-product attention with a streaming (online) softmax: scores are computed a block
// of keys at a time, so no [queries × keys] matrix is ever materialised.
//
// Layouts (row-major, strides in floats):
//   q   [n_q,  q_stride  ≥ n_heads·head_dim],    head h is columns [h·head_dim, (h+1)·head_dim)
//   k,v [n_kv, kv_stride ≥ n_kv_heads·head_dim]
//   out [n_q,  out_stride ≥ n_heads·head_dim]
// Query head h reads key/value head h / (n_heads / n_kv_heads) (grouped-query attention).
// Causal: query i sits at absolute position q_pos0 + i and sees keys 0 … q_pos0 + i; this
// needs n_kv ≥ q_pos0 + n_q. Not causal: every query sees all n_kv keys (cross-attention to
// one image's visual tokens, the resampler's latents).
#pragma once

#include <cstdint>

namespace flamingo {
class ThreadPool;
}

namespace flamingo::kernels {

struct AttentionArgs {
  const float* q = nullptr;
  int64_t n_q = 0;
  int64_t q_stride = 0;
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t n_kv = 0;
  int64_t kv_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  float scale = 0.f;  // usually 1/sqrt(head_dim)
  bool causal = false;
  int64_t q_pos0 = 0;
};

// Validates the arguments (throws flamingo::Error: head counts, head_dim in [1, 1024], strides,
// causal positions, null pointers, out overlapping k or v) and computes softmax(scale·q·kᵀ)·v.
// Only the n_heads·head_dim leading columns of each out row are written. Results are bitwise
// identical for any number of threads in the pool.
void attention(const AttentionArgs& args, ThreadPool& pool);

}  // namespace flamingo::kernels
