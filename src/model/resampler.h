// The Perceiver Resampler (spec §2): a fixed set of learned latents cross-attends to one
// media item's visual tokens (all frames) plus themselves, giving num_latents tokens whatever
// the input size.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "model/activation_kind.h"
#include "model/linear.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

class Resampler {
 public:
  Resampler(const io::ResamplerConfig& config, WeightSource& weights);

  const io::ResamplerConfig& config() const { return spec_; }

  // features: [frames, positions, dim] for one media item; media_index: its 0-based position
  // among the prompt's media (selects the media-time embedding). out: [num_latents, dim].
  void forward(const float* features, int64_t frames, int64_t positions, int64_t media_index,
               float* out, ThreadPool& pool) const;

 private:
  struct Norm {
    std::vector<float> w, b;
  };
  struct Layer {
    Norm norm_media, norm_latents, q_norm, k_norm, ff_norm;
    Linear q, k, v, o, up, down;
  };
  Norm load_norm(WeightSource& w, const std::string& name, int64_t dim);
  void layer_norm(const Norm& n, const float* x, int64_t rows, int64_t dim, float* y) const;

  io::ResamplerConfig spec_;
  std::vector<float> latents_;
  std::vector<float> frame_embs_, media_time_embs_;
  std::vector<Layer> layers_;
  Norm final_norm_;
};

}  // namespace flamingo::model
