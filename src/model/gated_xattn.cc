#include "model/gated_xattn.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/norm.h"
#include "util/scratch_buffer.h"

namespace flamingo::model {

GatedXattn::GatedXattn(const io::XattnConfig& spec, int64_t dim, int64_t visual_dim,
                       WeightSource& w, int index)
    : spec_(spec), dim_(dim), vector_gate_(spec.gate == io::GateType::kVector) {
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
  // x, q, o, the attention output, up, gate and the FFN output, one after the other in this
  // thread's scratch (util/scratch_buffer.h).
  const auto rows_d = static_cast<size_t>(n * d), rows_inner = static_cast<size_t>(n * inner),
             rows_ff = static_cast<size_t>(n * spec_.ff_dim);
  thread_local ScratchBuffer scratch;
  float* const base = scratch.floats(3 * rows_d + 2 * rows_inner + 2 * rows_ff);
  const std::span<float> x(base, rows_d);
  const std::span<float> q(x.data() + x.size(), rows_inner);
  const std::span<float> o(q.data() + q.size(), rows_inner);
  const std::span<float> attn_out(o.data() + o.size(), rows_d);
  const std::span<float> up(attn_out.data() + attn_out.size(), rows_ff);
  const std::span<float> g(up.data() + up.size(), rows_ff);
  const std::span<float> ff_out(g.data() + g.size(), rows_d);

  // Attention half. Only rows that see a media item take part: the others would add
  // tanh(gate)·o_proj(0) = 0, so they are skipped and stay bit-for-bit unchanged.
  bool any_media = false;
  for (int64_t i = 0; i < n; ++i) any_media |= media[i] != nullptr;
  if (any_media) {
    norm(attn_norm_w_, attn_norm_b_, h, n, x.data());
    // Rows without media keep o = 0: o_proj runs over every row (their result is unused).
    std::fill(o.begin(), o.end(), 0.f);
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
      gate_.apply(x.data(), n, g.data(), pool);
      kernels::swiglu(g.data(), up.data(), up.data(), static_cast<int64_t>(up.size()));
      break;
    }
  }
  down_.apply(up.data(), n, ff_out.data(), pool);
  if (vector_gate_) kernels::mul_rows(ff_out.data(), ff_gate_.data(), ff_out.data(), n, d);
  kernels::axpy(vector_gate_ ? 1.f : ff_gate_[0], ff_out.data(), h, n * d);
}

}  // namespace flamingo::model
