#include "model/gated_xattn.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/norm.h"

namespace flamingo::model {

GatedXattn::GatedXattn(const io::XattnConfig& spec, int64_t dim, int64_t visual_dim,
                       WeightSource& w, int index)
    : spec_(spec),
      dim_(dim),
      visual_dim_(visual_dim),
      vector_gate_(spec.gate == io::GateType::kVector) {
  const std::string p = "xattn." + std::to_string(index) + ".";
  const int64_t d = dim, inner = spec.heads * spec.head_dim, gate_n = vector_gate_ ? d : 1;
  attn_gate_ = w.floats(p + "attn_gate", gate_n);
  ff_gate_ = w.floats(p + "ff_gate", gate_n);
  for (float& g : attn_gate_) g = std::tanh(g);
  for (float& g : ff_gate_) g = std::tanh(g);
  const bool ln = spec.norm == io::NormType::kLayerNorm;
  attn_norm_w_ = w.floats(p + "attn_norm.weight", d);
  ff_norm_w_ = w.floats(p + "ff_norm.weight", d);
  if (ln) {
    attn_norm_b_ = w.floats(p + "attn_norm.bias", d);
    ff_norm_b_ = w.floats(p + "ff_norm.bias", d);
  }
  q_ = Linear(w, p + "attn.q_proj.weight", inner, d, kDecodeInt8);
  k_ = Linear(w, p + "attn.k_proj.weight", inner, visual_dim);
  v_ = Linear(w, p + "attn.v_proj.weight", inner, visual_dim);
  o_ = Linear(w, p + "attn.o_proj.weight", d, inner, kDecodeInt8);
  if (spec.qk_norm) {
    q_norm_ = w.floats(p + "attn.q_norm.weight", spec.head_dim);
    k_norm_ = w.floats(p + "attn.k_norm.weight", spec.head_dim);
  }
  if (spec.ffn == io::XattnFfn::kSwiglu)
    gate_ = Linear(w, p + "mlp.gate_proj.weight", spec.ff_dim, d, kDecodeInt8);
  up_ = Linear(w, p + "mlp.up_proj.weight", spec.ff_dim, d, kDecodeInt8);
  down_ = Linear(w, p + "mlp.down_proj.weight", d, spec.ff_dim, kDecodeInt8);
}

void GatedXattn::norm(const std::vector<float>& w, const std::vector<float>& b, const float* x,
                      int64_t rows, float* y) const {
  const float eps = static_cast<float>(spec_.norm_eps);
  if (spec_.norm == io::NormType::kLayerNorm)
    kernels::layernorm(x, w.data(), b.data(), rows, dim_, eps, y);
  else
    kernels::rmsnorm(x, w.data(), rows, dim_, eps, y);
}

VisualKV GatedXattn::visual_kv(const float* visual, int64_t n_visual, ThreadPool& pool) const {
  const int64_t inner = spec_.heads * spec_.head_dim;
  VisualKV kv;
  kv.n = n_visual;
  kv.k.resize(static_cast<size_t>(n_visual * inner));
  kv.v.resize(static_cast<size_t>(n_visual * inner));
  k_.apply(visual, n_visual, kv.k.data(), pool);
  v_.apply(visual, n_visual, kv.v.data(), pool);
  if (spec_.qk_norm)
    kernels::rmsnorm(kv.k.data(), k_norm_.data(), n_visual * spec_.heads, spec_.head_dim,
                     static_cast<float>(spec_.norm_eps), kv.k.data());
  return kv;
}

void GatedXattn::forward(float* h, int64_t n, const VisualKV* const* media,
                         ThreadPool& pool) const {
  const int64_t d = dim_, inner = spec_.heads * spec_.head_dim;
  std::vector<float> x(static_cast<size_t>(n * d));

  // Attention half. Only rows that see a media item take part: the others would add
  // tanh(gate)·o_proj(0) = 0, so they are skipped and stay bit-for-bit unchanged.
  bool any_media = false;
  for (int64_t i = 0; i < n; ++i) any_media |= media[i] != nullptr;
  if (any_media) {
    norm(attn_norm_w_, attn_norm_b_, h, n, x.data());
    std::vector<float> q(static_cast<size_t>(n * inner)), o(static_cast<size_t>(n * inner), 0.f);
    q_.apply(x.data(), n, q.data(), pool);
    if (spec_.qk_norm)
      kernels::rmsnorm(q.data(), q_norm_.data(), n * spec_.heads, spec_.head_dim,
                       static_cast<float>(spec_.norm_eps), q.data());
    // Consecutive tokens that attend to the same media item form one attention call.
    for (int64_t start = 0; start < n;) {
      int64_t end = start + 1;
      while (end < n && media[end] == media[start]) ++end;
      if (const VisualKV* kv = media[start]) {
        kernels::AttentionArgs a;
        a.q = q.data() + start * inner;
        a.n_q = end - start;
        a.q_stride = inner;
        a.k = kv->k.data();
        a.v = kv->v.data();
        a.n_kv = kv->n;
        a.kv_stride = inner;
        a.out = o.data() + start * inner;
        a.out_stride = inner;
        a.n_heads = a.n_kv_heads = static_cast<int>(spec_.heads);
        a.head_dim = static_cast<int>(spec_.head_dim);
        a.scale = 1.f / std::sqrt(static_cast<float>(spec_.head_dim));
        kernels::attention(a, pool);
      }
      start = end;
    }
    std::vector<float> attn_out(static_cast<size_t>(n * d));
    o_.apply(o.data(), n, attn_out.data(), pool);
    for (int64_t i = 0; i < n; ++i) {
      if (media[i] == nullptr) continue;
      float* hi = h + i * d;
      const float* ai = attn_out.data() + i * d;
      if (vector_gate_) {
        kernels::mul_rows(ai, attn_gate_.data(), attn_out.data() + i * d, 1, d);
        kernels::axpy(1.f, ai, hi, d);
      } else {
        kernels::axpy(attn_gate_[0], ai, hi, d);
      }
    }
  }

  // Dense half: every token, with or without media.
  norm(ff_norm_w_, ff_norm_b_, h, n, x.data());
  std::vector<float> up(static_cast<size_t>(n * spec_.ff_dim));
  switch (spec_.ffn) {
    case io::XattnFfn::kGelu:
      up_.apply(x.data(), n, up.data(), pool, kernels::Activation::kGelu);
      break;
    case io::XattnFfn::kSquaredRelu:
      up_.apply(x.data(), n, up.data(), pool, kernels::Activation::kSquaredRelu);
      break;
    case io::XattnFfn::kRelu:
      up_.apply(x.data(), n, up.data(), pool, kernels::Activation::kRelu);
      break;
    case io::XattnFfn::kSwiglu: {
      up_.apply(x.data(), n, up.data(), pool);
      std::vector<float> g(up.size());
      gate_.apply(x.data(), n, g.data(), pool);
      kernels::swiglu(g.data(), up.data(), up.data(), static_cast<int64_t>(up.size()));
      break;
    }
  }
  std::vector<float> ff_out(static_cast<size_t>(n * d));
  down_.apply(up.data(), n, ff_out.data(), pool);
  if (vector_gate_) kernels::mul_rows(ff_out.data(), ff_gate_.data(), ff_out.data(), n, d);
  kernels::axpy(vector_gate_ ? 1.f : ff_gate_[0], ff_out.data(), h, n * d);
}

}  // namespace flamingo::model
