// GATED XATTN-DENSE (spec §3): text tokens cross-attend to the visual tokens of the latest
// media item before them, then a feed-forward layer; both halves are added to the residual
// stream through tanh gates.
#pragma once

#include <cstdint>
#include <vector>

#include "model/activation_kind.h"
#include "model/linear.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

enum class NormKind { kLayerNorm, kRmsNorm };
enum class FfnKind { kGelu, kSquaredRelu, kRelu, kSwiGlu };

struct GatedXattnSpec {
  int64_t dim = 0;         // LM width
  int64_t visual_dim = 0;  // resampler width
  int heads = 0;
  int head_dim = 0;
  NormKind norm = NormKind::kLayerNorm;
  FfnKind ffn = FfnKind::kGelu;
  int64_t ff_dim = 0;
  bool qk_norm = false;
  bool vector_gate = false;
  float norm_eps = 1e-5f;
};

// Keys and values of one media item for one block: [num_latents, heads·head_dim] each.
struct VisualKV {
  std::vector<float> k, v;
  int64_t n = 0;
};

class GatedXattn {
 public:
  GatedXattn(const GatedXattnSpec& spec, WeightSource& weights, int index);

  // K/V of the visual tokens (computed once per media item and block, then cached).
  VisualKV visual_kv(const float* visual, int64_t n_visual, ThreadPool& pool) const;

  // h: [n, dim] updated in place. media[i] is the visual K/V token i attends to, or null when
  // no media item precedes it (its attention output is then exactly zero).
  void forward(float* h, int64_t n, const VisualKV* const* media, ThreadPool& pool) const;

 private:
  void norm(const std::vector<float>& w, const std::vector<float>& b, const float* x, int64_t rows, float* y) const;

  GatedXattnSpec spec_;
  std::vector<float> attn_gate_, ff_gate_;  // tanh already applied; one value or dim values
  std::vector<float> attn_norm_w_, attn_norm_b_, ff_norm_w_, ff_norm_b_, q_norm_, k_norm_;
  Linear q_, k_, v_, o_, gate_, up_, down_;
};

}  // namespace flamingo::model
