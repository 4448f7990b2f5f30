#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <string>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/norm.h"
#include "util/check.h"
#include "util/scratch_buffer.h"

namespace flamingo::model {

void KvCache::reserve(int64_t positions, int layers, int64_t row) {
  if (positions <= reserved && static_cast<int>(k.size()) == layers) return;
  k.resize(static_cast<size_t>(layers));
  v.resize(static_cast<size_t>(layers));
  for (int l = 0; l < layers; ++l) {
    k[static_cast<size_t>(l)].resize(static_cast<size_t>(positions * row));
    v[static_cast<size_t>(l)].resize(static_cast<size_t>(positions * row));
  }
  reserved = positions;
}

void KvCache::assign_prefix(const KvCache& other) {
  const size_t layers = other.k.size();
  const int64_t row = other.reserved > 0 && layers > 0
                          ? static_cast<int64_t>(other.k[0].size()) / other.reserved
                          : 0;
  if (k.size() != layers || reserved != other.reserved ||
      (layers > 0 && k[0].size() != other.k[0].size())) {
    k.assign(layers, {});
    v.assign(layers, {});
    reserved = 0;
    reserve(other.reserved, static_cast<int>(layers), row);
  }
  const auto filled = static_cast<ptrdiff_t>(other.length * row);
  for (size_t l = 0; l < layers; ++l) {
    std::copy(other.k[l].begin(), other.k[l].begin() + filled, k[l].begin());
    std::copy(other.v[l].begin(), other.v[l].begin() + filled, v[l].begin());
  }
  length = other.length;
}

Llama::Llama(const io::LmConfig& spec, WeightSource& w)
    : spec_(spec),
      rope_style_(spec.rope_style == io::RopeStyle::kRotateHalf
                      ? kernels::RopeStyle::kRotateHalf
                      : kernels::RopeStyle::kInterleaved) {
  const int64_t d = spec.dim, qd = spec.heads * spec.head_dim, kvd = kv_row();
  embed_view_ = w.matrix("lm.embed_tokens.weight", spec.vocab_size, d);
  for (int i = 0; i < spec.layers; ++i) {
    const std::string p = "lm.layers." + std::to_string(i) + ".";
    Layer l;
    l.attn_norm = w.floats(p + "input_layernorm.weight", d);
    l.ffn_norm = w.floats(p + "post_attention_layernorm.weight", d);
    l.q = Linear(w, p + "self_attn.q_proj.weight", qd, d, kDecodeInt8);
    l.k = Linear(w, p + "self_attn.k_proj.weight", kvd, d, kDecodeInt8);
    l.v = Linear(w, p + "self_attn.v_proj.weight", kvd, d, kDecodeInt8);
    l.o = Linear(w, p + "self_attn.o_proj.weight", d, qd, kDecodeInt8);
    l.gate = Linear(w, p + "mlp.gate_proj.weight", spec.ffn_dim, d, kDecodeInt8);
    l.up = Linear(w, p + "mlp.up_proj.weight", spec.ffn_dim, d, kDecodeInt8);
    l.down = Linear(w, p + "mlp.down_proj.weight", d, spec.ffn_dim, kDecodeInt8);
    layers_.push_back(std::move(l));
  }
  final_norm_ = w.floats("lm.norm.weight", d);
  head_ = spec.tie_embeddings ? Linear(kernels::pack_matrix(embed_view_), kDecodeInt8)
                              : Linear(w, "lm.lm_head.weight", spec.vocab_size, d, kDecodeInt8);
}

void Llama::embed(const int32_t* ids, int64_t n, float* h) const {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= spec_.vocab_size)
      fail(ErrorCode::kInvalidArgument, "token id ", ids[i], " at position ", i,
           " is outside the vocabulary [0, ", spec_.vocab_size, ")");
    kernels::dequantize_row(embed_view_, ids[i], h + i * spec_.dim);
  }
}

void Llama::layer_forward(int layer, float* h, int64_t n, KvCache& cache, ThreadPool& pool) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  const int64_t d = spec_.dim, qd = spec_.heads * spec_.head_dim, kvd = kv_row();
  const int64_t pos0 = cache.length;
  if (pos0 + n > cache.reserved)
    fail(ErrorCode::kInternal, "KV cache holds ", cache.reserved, " positions, need ", pos0 + n);

  // x, q, o, then the FFN's gate and up, one after the other in this thread's scratch.
  const auto un = static_cast<size_t>(n);
  const auto ff = static_cast<size_t>(spec_.ffn_dim);
  thread_local ScratchBuffer scratch;
  float* const base = scratch.floats(un * (static_cast<size_t>(d + 2 * qd) + 2 * ff));
  const std::span<float> x(base, un * static_cast<size_t>(d));
  const std::span<float> q(x.data() + x.size(), un * static_cast<size_t>(qd));
  const std::span<float> o(q.data() + q.size(), un * static_cast<size_t>(qd));
  const std::span<float> g(o.data() + o.size(), un * ff);
  const std::span<float> u(g.data() + g.size(), un * ff);
  kernels::rmsnorm(h, l.attn_norm.data(), n, d, static_cast<float>(spec_.rms_norm_eps), x.data());
  float* kc = cache.k[static_cast<size_t>(layer)].data();
  float* vc = cache.v[static_cast<size_t>(layer)].data();
  l.q.apply(x.data(), n, q.data(), pool);
  l.k.apply(x.data(), n, kc + pos0 * kvd, pool);
  l.v.apply(x.data(), n, vc + pos0 * kvd, pool);
  std::vector<int64_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), pos0);
  const int heads = static_cast<int>(spec_.heads), kv_heads = static_cast<int>(spec_.kv_heads),
            head_dim = static_cast<int>(spec_.head_dim);
  const float theta = static_cast<float>(spec_.rope_theta);
  kernels::rope(q.data(), n, qd, heads, head_dim, pos.data(), theta, rope_style_);
  kernels::rope(kc + pos0 * kvd, n, kvd, kv_heads, head_dim, pos.data(), theta, rope_style_);

  kernels::AttentionArgs a;
  a.q = q.data();
  a.n_q = n;
  a.q_stride = qd;
  a.k = kc;
  a.v = vc;
  a.n_kv = pos0 + n;
  a.kv_stride = kvd;
  a.out = o.data();
  a.out_stride = qd;
  a.n_heads = heads;
  a.n_kv_heads = kv_heads;
  a.head_dim = head_dim;
  a.scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  a.causal = true;
  a.q_pos0 = pos0;
  kernels::attention(a, pool);
  l.o.apply(o.data(), n, h, pool, /*accumulate=*/true);

  kernels::rmsnorm(h, l.ffn_norm.data(), n, d, static_cast<float>(spec_.rms_norm_eps), x.data());
  l.gate.apply(x.data(), n, g.data(), pool);
  l.up.apply(x.data(), n, u.data(), pool);
  kernels::swiglu(g.data(), u.data(), g.data(), n * spec_.ffn_dim);
  l.down.apply(g.data(), n, h, pool, /*accumulate=*/true);
}

void Llama::logits(const float* h, int64_t rows, float* out, ThreadPool& pool) const {
  std::vector<float> x(static_cast<size_t>(rows * spec_.dim));
  kernels::rmsnorm(h, final_norm_.data(), rows, spec_.dim, static_cast<float>(spec_.rms_norm_eps),
                   x.data());
  head_.apply(x.data(), rows, out, pool);
}

}  // namespace flamingo::model
