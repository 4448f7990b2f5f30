#include "model/resampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/norm.h"
#include "util/check.h"

namespace flamingo::model {

Resampler::Norm Resampler::load_norm(WeightSource& w, const std::string& name, int64_t dim) {
  return {w.floats(name + ".weight", dim), w.floats(name + ".bias", dim)};
}

void Resampler::layer_norm(const Norm& n, const float* x, int64_t rows, int64_t dim,
                           float* y) const {
  kernels::layernorm(x, n.w.data(), n.b.data(), rows, dim, static_cast<float>(spec_.norm_eps), y);
}

Resampler::Resampler(const io::ResamplerConfig& spec, WeightSource& w) : spec_(spec) {
  const int64_t d = spec.dim, inner = spec.heads * spec.head_dim, ff = spec.ff_mult * d;
  latents_ = w.floats("resampler.latents", spec.num_latents * d);
  if (spec.max_frames > 0) frame_embs_ = w.floats("resampler.frame_embs", spec.max_frames * d);
  if (spec.max_media > 0)
    media_time_embs_ = w.floats("resampler.media_time_embs", spec.max_media * d);
  for (int i = 0; i < spec.depth; ++i) {
    const std::string p = "resampler.layers." + std::to_string(i) + ".";
    Layer l;
    l.norm_media = load_norm(w, p + "norm_media", d);
    l.norm_latents = load_norm(w, p + "norm_latents", d);
    l.q = Linear(w, p + "attn.q_proj.weight", inner, d);
    l.k = Linear(w, p + "attn.k_proj.weight", inner, d);
    l.v = Linear(w, p + "attn.v_proj.weight", inner, d);
    l.o = Linear(w, p + "attn.o_proj.weight", d, inner);
    if (spec.qk_layer_norm) {
      l.q_norm = load_norm(w, p + "attn.q_norm", spec.head_dim);
      l.k_norm = load_norm(w, p + "attn.k_norm", spec.head_dim);
    }
    l.ff_norm = load_norm(w, p + "ff_norm", d);
    l.up = Linear(w, p + "mlp.up_proj.weight", ff, d);
    l.down = Linear(w, p + "mlp.down_proj.weight", d, ff);
    layers_.push_back(std::move(l));
  }
  final_norm_ = load_norm(w, "resampler.norm", d);
}

void Resampler::forward(const float* features, int64_t frames, int64_t positions,
                        int64_t media_index, float* out, ThreadPool& pool) const {
  const int64_t d = spec_.dim, n = spec_.num_latents, inner = spec_.heads * spec_.head_dim;
  const int64_t nx = frames * positions, nkv = nx + n;
  if (spec_.max_frames > 0 && frames > spec_.max_frames)
    fail(ErrorCode::kInvalidArgument, "a media item has ", frames,
         " frames but the model takes at most ", spec_.max_frames);
  if (spec_.max_frames == 0 && frames != 1)
    fail(ErrorCode::kInvalidArgument, "a media item has ", frames,
         " frames but the model takes single images only");
  if (spec_.max_media > 0 && media_index >= spec_.max_media)
    fail(ErrorCode::kInvalidArgument, "media item ", media_index + 1, " exceeds the model's ",
         spec_.max_media, " media-time embeddings");

  // x: the visual tokens plus frame and media-time embeddings; it is never updated.
  std::vector<float> x(features, features + nx * d);
  if (!frame_embs_.empty())
    for (int64_t f = 0; f < frames; ++f)
      for (int64_t p = 0; p < positions; ++p)
        kernels::axpy(1.f, &frame_embs_[static_cast<size_t>(f * d)],
                      &x[static_cast<size_t>((f * positions + p) * d)], d);
  if (!media_time_embs_.empty())
    for (int64_t t = 0; t < nx; ++t)
      kernels::axpy(1.f, &media_time_embs_[static_cast<size_t>(media_index * d)],
                    &x[static_cast<size_t>(t * d)], d);

  std::vector<float> lat(latents_);
  std::vector<float> kv_in(static_cast<size_t>(nkv * d));
  std::vector<float> q(static_cast<size_t>(n * inner)), k(static_cast<size_t>(nkv * inner)),
      v(static_cast<size_t>(nkv * inner)), o(static_cast<size_t>(n * inner));
  std::vector<float> hn(static_cast<size_t>(n * d)),
      ffh(static_cast<size_t>(n * spec_.ff_mult * d));
  const float scale = 1.f / std::sqrt(static_cast<float>(spec_.head_dim));

  for (const Layer& l : layers_) {
    // Keys and values over [LN(media); LN(latents)], queries from LN(latents).
    layer_norm(l.norm_media, x.data(), nx, d, kv_in.data());
    layer_norm(l.norm_latents, lat.data(), n, d, kv_in.data() + nx * d);
    l.q.apply(kv_in.data() + nx * d, n, q.data(), pool);
    l.k.apply(kv_in.data(), nkv, k.data(), pool);
    l.v.apply(kv_in.data(), nkv, v.data(), pool);
    if (spec_.qk_layer_norm) {
      layer_norm(l.q_norm, q.data(), n * spec_.heads, spec_.head_dim, q.data());
      layer_norm(l.k_norm, k.data(), nkv * spec_.heads, spec_.head_dim, k.data());
    }
    kernels::AttentionArgs a;
    a.q = q.data();
    a.n_q = n;
    a.q_stride = inner;
    a.k = k.data();
    a.v = v.data();
    a.n_kv = nkv;
    a.kv_stride = inner;
    a.out = o.data();
    a.out_stride = inner;
    a.n_heads = a.n_kv_heads = static_cast<int>(spec_.heads);
    a.head_dim = static_cast<int>(spec_.head_dim);
    a.scale = scale;
    kernels::attention(a, pool);
    l.o.apply(o.data(), n, lat.data(), pool, /*accumulate=*/true);

    layer_norm(l.ff_norm, lat.data(), n, d, hn.data());
    l.up.apply(hn.data(), n, ffh.data(), pool, to_activation(spec_.ff_activation));
    l.down.apply(ffh.data(), n, lat.data(), pool, /*accumulate=*/true);
  }
  layer_norm(final_norm_, lat.data(), n, d, out);
}

}  // namespace flamingo::model
