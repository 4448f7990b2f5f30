// A Flamingo model: the NFNet encoder and resampler turn media into visual tokens; the LLaMA
// decoder runs with a gated cross-attention block before the layers the placement rule picks.
// Immutable after construction; all per-request state (KV cache, visual K/V) is the caller's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "io/config.h"
#include "kernels/matmul.h"
#include "model/gated_xattn.h"
#include "model/llama.h"
#include "model/nfnet.h"
#include "model/resampler.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

// Visual K/V of one media item, one entry per gated block.
using MediaKV = std::vector<VisualKV>;

// Called with the hidden states right after gated block `block` (parity tests read them).
using BlockObserver = std::function<void(int block, const float* h, int64_t n, int64_t dim)>;

class FlamingoModel {
 public:
  FlamingoModel(const io::ModelConfig& config, WeightSource& weights);

  const io::ModelConfig& config() const { return config_; }
  const NfnetEncoder& vision() const { return vision_; }
  const Resampler& resampler() const { return resampler_; }
  const Llama& lm() const { return lm_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  // Index of the gated block before LM layer `layer`, or -1.
  int block_before_layer(int layer) const { return block_of_layer_[static_cast<size_t>(layer)]; }

  // Vision features of one frame: [positions, channels].
  std::vector<float> encode_frame(const float* pixels, ThreadPool& pool) const;
  // Resampler output of one media item from its frames' features: [num_latents, dim].
  std::vector<float> resample(const std::vector<std::vector<float>>& frame_features,
                              int64_t media_index, ThreadPool& pool) const;
  // Cross-attention K/V of a media item's visual tokens for every block.
  MediaKV visual_kv(const std::vector<float>& visual_tokens, ThreadPool& pool) const;

  // Runs n tokens through the decoder at positions cache.length…, appending to the cache.
  // media[i] is the K/V of the media item token i attends to, or null. h receives the final
  // hidden states [n, dim] (before the final norm).
  void forward(const int32_t* ids, int64_t n, const MediaKV* const* media, KvCache& cache, float* h,
               ThreadPool& pool, const BlockObserver& observer = {}) const;
  // From this many tokens up, forward() computes each token exactly as in any larger call: a
  // prompt run in two such pieces leaves the same bits in the cache as run whole. (Every step
  // is per token, and the matmuls are batch-invariant from kMatmulBatchInvariantRows rows.)
  static constexpr int64_t kBatchInvariantTokens = kernels::kMatmulBatchInvariantRows;
  // Logits [rows, vocab] of hidden states from forward().
  void logits(const float* h, int64_t rows, float* out, ThreadPool& pool) const {
    lm_.logits(h, rows, out, pool);
  }

  // A KV cache sized for `positions` tokens.
  void reserve_cache(KvCache& cache, int64_t positions) const;

 private:
  io::ModelConfig config_;
  NfnetEncoder vision_;
  Resampler resampler_;
  Llama lm_;
  std::vector<GatedXattn> blocks_;
  std::vector<int> block_of_layer_;
};

}  // namespace flamingo::model
