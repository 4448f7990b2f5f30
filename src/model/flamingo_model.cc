#include "model/flamingo_model.h"

#include <algorithm>
#include <array>

#include "io/model_layout.h"
#include "util/check.h"

namespace flamingo::model {
FlamingoModel::FlamingoModel(const io::ModelConfig& config, WeightSource& w)
    : config_(config),
      vision_(config.vision, w),
      resampler_(config.resampler, w),
      lm_(config.lm, w),
      block_of_layer_(static_cast<size_t>(config.lm.layers)) {
  for (int64_t i = 0; i < config.lm.layers; ++i)
    block_of_layer_[static_cast<size_t>(i)] =
        static_cast<int>(io::xattn_block_index(config.xattn, config.lm.layers, i));
  const int64_t blocks = io::num_xattn_blocks(config.xattn, config.lm.layers);
  blocks_.reserve(static_cast<size_t>(blocks));
  for (int64_t j = 0; j < blocks; ++j)
    blocks_.emplace_back(config.xattn, config.lm.dim, config.resampler.dim, w, static_cast<int>(j));
}

std::vector<float> FlamingoModel::encode_frame(const float* pixels, ThreadPool& pool) const {
  std::vector<float> out(static_cast<size_t>(vision_.positions() * vision_.out_channels()));
  vision_.forward(pixels, out.data(), pool);
  return out;
}

std::vector<float> FlamingoModel::resample(const std::vector<std::vector<float>>& frame_features,
                                           int64_t media_index, ThreadPool& pool) const {
  const int64_t frames = static_cast<int64_t>(frame_features.size());
  const int64_t per_frame = vision_.positions() * vision_.out_channels();
  std::vector<float> features(static_cast<size_t>(frames * per_frame));
  for (int64_t f = 0; f < frames; ++f) {
    FLAMINGO_CHECK(static_cast<int64_t>(frame_features[static_cast<size_t>(f)].size()) ==
                   per_frame);
    std::copy(frame_features[static_cast<size_t>(f)].begin(),
              frame_features[static_cast<size_t>(f)].end(), features.begin() + f * per_frame);
  }
  std::vector<float> out(
      static_cast<size_t>(config_.resampler.num_latents * config_.resampler.dim));
  resampler_.forward(features.data(), frames, vision_.positions(), media_index, out.data(), pool);
  return out;
}

MediaKV FlamingoModel::visual_kv(const std::vector<float>& visual_tokens, ThreadPool& pool) const {
  MediaKV kv;
  kv.reserve(blocks_.size());
  const int64_t n = resampler_.config().num_latents;
  for (const GatedXattn& b : blocks_) kv.push_back(b.visual_kv(visual_tokens.data(), n, pool));
  return kv;
}

void FlamingoModel::reserve_cache(KvCache& cache, int64_t positions) const {
  cache.reserve(positions, static_cast<int>(config_.lm.layers), lm_.kv_row());
}

void FlamingoModel::forward(const int32_t* ids, int64_t n, const MediaKV* const* media,
                            KvCache& cache, float* h, ThreadPool& pool,
                            const BlockObserver& observer) const {
  if (cache.length + n > lm_.config().max_seq_len)
    fail(ErrorCode::kResourceLimit, "the context would hold ", cache.length + n,
         " tokens but the model's max_seq_len is ", lm_.config().max_seq_len);
  if (cache.length + n > cache.reserved)  // grow geometrically: decode appends one token at a time
    reserve_cache(
        cache, std::max(cache.length + n, std::min(lm_.config().max_seq_len, 2 * cache.reserved)));
  lm_.embed(ids, n, h);
  std::vector<const VisualKV*> block_media(static_cast<size_t>(n));
  const int64_t d = lm_.config().dim;
  for (int layer = 0; layer < lm_.config().layers; ++layer) {
    const int b = block_before_layer(layer);
    if (b >= 0) {
      for (int64_t i = 0; i < n; ++i)
        block_media[static_cast<size_t>(i)] =
            media[i] ? &(*media[i])[static_cast<size_t>(b)] : nullptr;
      blocks_[static_cast<size_t>(b)].forward(h, n, block_media.data(), pool);
      if (observer) observer(b, h, n, d);
    }
    lm_.layer_forward(layer, h, n, cache, pool);
  }
  cache.length += n;
}

}  // namespace flamingo::model
