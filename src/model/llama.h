// The frozen LLaMA decoder (spec §4): pre-norm layers of causal self-attention with RoPE and
// grouped-query attention, and a SwiGLU MLP, over a KV cache.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "kernels/rope.h"
#include "model/linear.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

// Keys and values of every layer for positions [0, length); grows on demand up to capacity.
struct KvCache {
  int64_t length = 0;
  int64_t reserved = 0;  // positions allocated per layer
  std::vector<std::vector<float>> k, v;
  void reserve(int64_t positions, int layers, int64_t row);
  // Becomes a copy of `other` for its first other.length positions (what beam search needs),
  // reusing this cache's buffers when they are already large enough.
  void assign_prefix(const KvCache& other);
};

class Llama {
 public:
  Llama(const io::LmConfig& config, WeightSource& weights);

  const io::LmConfig& config() const { return spec_; }

  // h[n, dim] = embeddings of ids (ids must be < vocab).
  void embed(const int32_t* ids, int64_t n, float* h) const;
  // Runs layer `layer` on h[n, dim] in place; the n tokens take positions cache.length … +n−1
  // (the caller advances cache.length after the last layer).
  void layer_forward(int layer, float* h, int64_t n, KvCache& cache, ThreadPool& pool) const;
  // logits[rows, vocab] from the last hidden states h[rows, dim] (final norm + head).
  void logits(const float* h, int64_t rows, float* out, ThreadPool& pool) const;

  int64_t kv_row() const { return spec_.kv_heads * spec_.head_dim; }

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    Linear q, k, v, o, gate, up, down;
  };
  io::LmConfig spec_;
  kernels::RopeStyle rope_style_;
  kernels::WeightView embed_view_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  Linear head_;
};

}  // namespace flamingo::model
