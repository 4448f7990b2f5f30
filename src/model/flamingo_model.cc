#include "model/flamingo_model.h"

#include <algorithm>
#include <array>

#include "io/model_layout.h"
#include "util/check.h"

namespace flamingo::model {
namespace {

Activation vision_activation(io::VisionActivation a) {
  switch (a) {
    case io::VisionActivation::kGelu: return Activation::kGelu;
    case io::VisionActivation::kGeluTanh: return Activation::kGeluTanh;
    case io::VisionActivation::kRelu: return Activation::kRelu;
    case io::VisionActivation::kSilu: return Activation::kSilu;
  }
  return Activation::kGelu;
}

Activation resampler_activation(io::ResamplerActivation a) {
  switch (a) {
    case io::ResamplerActivation::kGelu: return Activation::kGelu;
    case io::ResamplerActivation::kRelu: return Activation::kRelu;
    case io::ResamplerActivation::kSquaredRelu: return Activation::kSquaredRelu;
  }
  return Activation::kGelu;
}

template <typename T, typename U>
std::array<T, 4> narrow4(const std::array<U, 4>& a) {
  return {static_cast<T>(a[0]), static_cast<T>(a[1]), static_cast<T>(a[2]), static_cast<T>(a[3])};
}

NfnetSpec nfnet_spec(const io::VisionConfig& v) {
  NfnetSpec s;
  s.image_size = static_cast<int>(v.image_size);
  s.stem_channels = narrow4<int>(v.stem_channels);
  s.depths = narrow4<int>(v.depths);
  s.widths = narrow4<int>(v.widths);
  s.strides = narrow4<int>(v.strides);
  s.bottleneck_ratio = v.bottleneck_ratio;
  s.group_width = static_cast<int>(v.group_width);
  s.se_ratio = v.se_ratio;
  s.alpha = static_cast<float>(v.alpha);
  s.gamma = static_cast<float>(v.gamma);
  s.activation = vision_activation(v.activation);
  s.ws_eps = v.ws_eps;
  s.ws_folded = v.ws_folded;
  s.final_conv_channels = static_cast<int>(v.final_conv_channels);
  s.tap_final = v.tap == io::VisionTap::kFinalAct;
  return s;
}

ResamplerSpec resampler_spec(const io::ResamplerConfig& r) {
  ResamplerSpec s;
  s.dim = r.dim;
  s.depth = static_cast<int>(r.depth);
  s.heads = static_cast<int>(r.heads);
  s.head_dim = static_cast<int>(r.head_dim);
  s.num_latents = r.num_latents;
  s.ff_mult = static_cast<int>(r.ff_mult);
  s.ff_activation = resampler_activation(r.ff_activation);
  s.qk_layer_norm = r.qk_layer_norm;
  s.max_frames = static_cast<int>(r.max_frames);
  s.max_media = static_cast<int>(r.max_media);
  s.norm_eps = static_cast<float>(r.norm_eps);
  return s;
}

GatedXattnSpec xattn_spec(const io::ModelConfig& c) {
  GatedXattnSpec s;
  s.dim = c.lm.dim;
  s.visual_dim = c.resampler.dim;
  s.heads = static_cast<int>(c.xattn.heads);
  s.head_dim = static_cast<int>(c.xattn.head_dim);
  s.norm = c.xattn.norm == io::NormType::kLayerNorm ? NormKind::kLayerNorm : NormKind::kRmsNorm;
  switch (c.xattn.ffn) {
    case io::XattnFfn::kGelu: s.ffn = FfnKind::kGelu; break;
    case io::XattnFfn::kSquaredRelu: s.ffn = FfnKind::kSquaredRelu; break;
    case io::XattnFfn::kRelu: s.ffn = FfnKind::kRelu; break;
    case io::XattnFfn::kSwiglu: s.ffn = FfnKind::kSwiGlu; break;
  }
  s.ff_dim = c.xattn.ff_dim;
  s.qk_norm = c.xattn.qk_norm;
  s.vector_gate = c.xattn.gate == io::GateType::kVector;
  s.norm_eps = static_cast<float>(c.xattn.norm_eps);
  return s;
}

LlamaSpec llama_spec(const io::LmConfig& l) {
  LlamaSpec s;
  s.dim = l.dim;
  s.layers = static_cast<int>(l.layers);
  s.heads = static_cast<int>(l.heads);
  s.kv_heads = static_cast<int>(l.kv_heads);
  s.head_dim = static_cast<int>(l.head_dim);
  s.ffn_dim = l.ffn_dim;
  s.vocab = l.vocab_size;
  s.max_seq_len = l.max_seq_len;
  s.rope_theta = static_cast<float>(l.rope_theta);
  s.rope_style = l.rope_style == io::RopeStyle::kRotateHalf ? kernels::RopeStyle::kRotateHalf
                                                            : kernels::RopeStyle::kInterleaved;
  s.rms_eps = static_cast<float>(l.rms_norm_eps);
  s.tie_embeddings = l.tie_embeddings;
  return s;
}

}  // namespace

FlamingoModel::FlamingoModel(const io::ModelConfig& config, WeightSource& w)
    : config_(config),
      vision_(nfnet_spec(config.vision), w),
      resampler_(resampler_spec(config.resampler), w),
      lm_(llama_spec(config.lm), w),
      block_of_layer_(static_cast<size_t>(config.lm.layers)) {
  for (int64_t i = 0; i < config.lm.layers; ++i)
    block_of_layer_[static_cast<size_t>(i)] = static_cast<int>(io::xattn_block_index(config.xattn, config.lm.layers, i));
  const GatedXattnSpec xs = xattn_spec(config);
  const int64_t blocks = io::num_xattn_blocks(config.xattn, config.lm.layers);
  blocks_.reserve(static_cast<size_t>(blocks));
  for (int64_t j = 0; j < blocks; ++j) blocks_.emplace_back(xs, w, static_cast<int>(j));
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
    FLAMINGO_CHECK(static_cast<int64_t>(frame_features[static_cast<size_t>(f)].size()) == per_frame);
    std::copy(frame_features[static_cast<size_t>(f)].begin(), frame_features[static_cast<size_t>(f)].end(),
              features.begin() + f * per_frame);
  }
  std::vector<float> out(static_cast<size_t>(resampler_.spec().num_latents * resampler_.spec().dim));
  resampler_.forward(features.data(), frames, vision_.positions(), media_index, out.data(), pool);
  return out;
}

MediaKV FlamingoModel::visual_kv(const std::vector<float>& visual_tokens, ThreadPool& pool) const {
  MediaKV kv;
  kv.reserve(blocks_.size());
  const int64_t n = resampler_.spec().num_latents;
  for (const GatedXattn& b : blocks_) kv.push_back(b.visual_kv(visual_tokens.data(), n, pool));
  return kv;
}

void FlamingoModel::reserve_cache(KvCache& cache, int64_t positions) const {
  cache.reserve(positions, lm_.spec().layers, lm_.kv_row());
}

void FlamingoModel::forward(const int32_t* ids, int64_t n, const MediaKV* const* media, KvCache& cache, float* h,
                            ThreadPool& pool, const BlockObserver& observer) const {
  if (cache.length + n > lm_.spec().max_seq_len)
    fail(ErrorCode::kResourceLimit, "the context would hold ", cache.length + n, " tokens but the model's max_seq_len is ",
         lm_.spec().max_seq_len);
  if (cache.length + n > cache.reserved)  // grow geometrically: decode appends one token at a time
    reserve_cache(cache, std::max(cache.length + n, std::min(lm_.spec().max_seq_len, 2 * cache.reserved)));
  lm_.embed(ids, n, h);
  std::vector<const VisualKV*> block_media(static_cast<size_t>(n));
  const int64_t d = lm_.spec().dim;
  for (int layer = 0; layer < lm_.spec().layers; ++layer) {
    const int b = block_before_layer(layer);
    if (b >= 0) {
      for (int64_t i = 0; i < n; ++i) block_media[static_cast<size_t>(i)] = media[i] ? &(*media[i])[static_cast<size_t>(b)] : nullptr;
      blocks_[static_cast<size_t>(b)].forward(h, n, block_media.data(), pool);
      if (observer) observer(b, h, n, d);
    }
    lm_.layer_forward(layer, h, n, cache, pool);
  }
  cache.length += n;
}

}  // namespace flamingo::model
