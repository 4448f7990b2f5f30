// GATED XATTN-DENSE (spec §3): text tokens cross-attend to the visual tokens of the latest
// media item before them, then a feed-forward layer; both halves are added to the residual
// stream through tanh gates.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "model/linear.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

// Keys and values of one media item for one block: [num_latents, heads·head_dim] each.
struct VisualKV {
  std::vector<float> k, v;
  int64_t n = 0;
};

class GatedXattn {
 public:
  // dim: the LM width; visual_dim: the resampler width; index: the block's position in layer order.
  GatedXattn(const io::XattnConfig& config, int64_t dim, int64_t visual_dim, WeightSource& weights,
             int index);

  // K/V of the visual tokens (computed once per media item and block, then cached).
  VisualKV visual_kv(const float* visual, int64_t n_visual, ThreadPool& pool) const;

  // h: [n, dim] updated in place. media[i] is the visual K/V token i attends to, or null when
  // no media item precedes it (its attention output is then exactly zero).
  void forward(float* h, int64_t n, const VisualKV* const* media, ThreadPool& pool) const;

 private:
  void norm(const std::vector<float>& w, const std::vector<float>& b, const float* x, int64_t rows,
            float* y) const;

  io::XattnConfig spec_;
  int64_t dim_;
  bool vector_gate_;
  std::vector<float> attn_gate_, ff_gate_;  // tanh already applied; one value or dim values
  std::vector<float> attn_norm_w_, attn_norm_b_, ff_norm_w_, ff_norm_b_, q_norm_, k_norm_;
  Linear q_, k_, v_, o_, gate_, up_, down_;
};

}  // namespace flamingo::model
