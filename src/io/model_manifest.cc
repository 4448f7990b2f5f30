#include "io/model_manifest.h"

#include <set>

#include "io/json_strict.h"
#include "io/model_layout.h"
#include "util/check.h"

namespace flamingo::io {
namespace {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (size_t i = 0; i < shapes.size(); ++i) out += (i ? " or " : "") + shape_str(shapes[i]);
  return out;
}

class Builder {
 public:
  std::vector<ExpectedTensor> list;

  void param(const std::string& name, Shape shape) { list.push_back({name, {std::move(shape)}}); }

  void matrix(const std::string& name, int64_t rows, int64_t cols) {
    list.push_back({name, {{rows, cols}}, true, rows, cols});
  }

  // A convolution: weight [out, in_per_group, k, k], bias [out], and for weight-standardised
  // convs the gain [out, 1, 1, 1] unless the standardisation is already folded in.
  void conv(const std::string& prefix, int64_t out, int64_t in_per_group, int64_t k, bool ws,
            bool ws_folded) {
    ExpectedTensor w{prefix + ".weight",
                     {{out, in_per_group, k, k}},
                     !ws || ws_folded,
                     out,
                     in_per_group * k * k};
    list.push_back(std::move(w));
    param(prefix + ".bias", {out});
    if (ws && !ws_folded) param(prefix + ".gain", {out, 1, 1, 1});
  }

  void norm(const std::string& prefix, int64_t dim, bool bias) {
    param(prefix + ".weight", {dim});
    if (bias) param(prefix + ".bias", {dim});
  }
};

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

std::string scale_name(const std::string& weight_name) { return weight_name + "_scale"; }

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  Builder b;
  const VisionConfig& v = c.vision;
  const bool folded = v.ws_folded;

  // Vision encoder.
  const int64_t stem_in[4] = {3, v.stem_channels[0], v.stem_channels[1], v.stem_channels[2]};
  for (int i = 0; i < 4; ++i)
    b.conv("vision.stem.conv" + std::to_string(i + 1), v.stem_channels[i], stem_in[i], 3, true,
           folded);
  for (const NfnetBlock& k : nfnet_blocks(v)) {
    const std::string p = str_cat("vision.stages.", k.stage, ".", k.index, ".");
    if (k.has_projection) b.conv(p + "downsample.conv", k.out, k.in, 1, true, folded);
    b.conv(p + "conv1", k.mid, k.in, 1, true, folded);
    b.conv(p + "conv2", k.mid, v.group_width, 3, true, folded);
    b.conv(p + "conv2b", k.mid, v.group_width, 3, true, folded);
    b.conv(p + "conv3", k.out, k.mid, 1, true, folded);
    b.conv(p + "attn_last.fc1", k.se_hidden, k.out, 1, false, folded);
    b.conv(p + "attn_last.fc2", k.out, k.se_hidden, 1, false, folded);
    b.list.push_back({p + "skipinit_gain", {{}, {1}}});
  }
  if (v.final_conv_channels > 0)
    b.conv("vision.final_conv", v.final_conv_channels, v.widths[3], 1, true, folded);

  // Perceiver resampler.
  const ResamplerConfig& r = c.resampler;
  const int64_t d = r.dim, r_inner = r.heads * r.head_dim, r_ff = r.ff_mult * r.dim;
  b.param("resampler.latents", {r.num_latents, d});
  if (r.max_frames > 0) b.param("resampler.frame_embs", {r.max_frames, d});
  if (r.max_media > 0) b.param("resampler.media_time_embs", {r.max_media, d});
  for (int64_t i = 0; i < r.depth; ++i) {
    const std::string p = str_cat("resampler.layers.", i, ".");
    b.norm(p + "norm_media", d, true);
    b.norm(p + "norm_latents", d, true);
    b.matrix(p + "attn.q_proj.weight", r_inner, d);
    b.matrix(p + "attn.k_proj.weight", r_inner, d);
    b.matrix(p + "attn.v_proj.weight", r_inner, d);
    b.matrix(p + "attn.o_proj.weight", d, r_inner);
    if (r.qk_layer_norm) {
      b.norm(p + "attn.q_norm", r.head_dim, true);
      b.norm(p + "attn.k_norm", r.head_dim, true);
    }
    b.norm(p + "ff_norm", d, true);
    b.matrix(p + "mlp.up_proj.weight", r_ff, d);
    b.matrix(p + "mlp.down_proj.weight", d, r_ff);
  }
  b.norm("resampler.norm", d, true);

  // Gated cross-attention blocks.
  const XattnConfig& x = c.xattn;
  const LmConfig& lm = c.lm;
  const int64_t dl = lm.dim, dv = r.dim, x_inner = x.heads * x.head_dim;
  const bool ln = x.norm == NormType::kLayerNorm;
  const int64_t blocks = num_xattn_blocks(x, lm.layers);
  for (int64_t j = 0; j < blocks; ++j) {
    const std::string p = str_cat("xattn.", j, ".");
    const Shape gate = x.gate == GateType::kScalar ? Shape{1} : Shape{dl};
    b.param(p + "attn_gate", gate);
    b.param(p + "ff_gate", gate);
    b.norm(p + "attn_norm", dl, ln);
    b.matrix(p + "attn.q_proj.weight", x_inner, dl);
    b.matrix(p + "attn.k_proj.weight", x_inner, dv);
    b.matrix(p + "attn.v_proj.weight", x_inner, dv);
    b.matrix(p + "attn.o_proj.weight", dl, x_inner);
    if (x.qk_norm) {
      b.norm(p + "attn.q_norm", x.head_dim, false);
      b.norm(p + "attn.k_norm", x.head_dim, false);
    }
    b.norm(p + "ff_norm", dl, ln);
    if (x.ffn == XattnFfn::kSwiglu) b.matrix(p + "mlp.gate_proj.weight", x.ff_dim, dl);
    b.matrix(p + "mlp.up_proj.weight", x.ff_dim, dl);
    b.matrix(p + "mlp.down_proj.weight", dl, x.ff_dim);
  }

  // LLaMA decoder. Embeddings stay in a float type (the quantisation policy keeps them).
  const int64_t q_out = lm.heads * lm.head_dim, kv_out = lm.kv_heads * lm.head_dim;
  b.param("lm.embed_tokens.weight", {lm.vocab_size, dl});
  for (int64_t i = 0; i < lm.layers; ++i) {
    const std::string p = str_cat("lm.layers.", i, ".");
    b.norm(p + "input_layernorm", dl, false);
    b.norm(p + "post_attention_layernorm", dl, false);
    b.matrix(p + "self_attn.q_proj.weight", q_out, dl);
    b.matrix(p + "self_attn.k_proj.weight", kv_out, dl);
    b.matrix(p + "self_attn.v_proj.weight", kv_out, dl);
    b.matrix(p + "self_attn.o_proj.weight", dl, q_out);
    b.matrix(p + "mlp.gate_proj.weight", lm.ffn_dim, dl);
    b.matrix(p + "mlp.up_proj.weight", lm.ffn_dim, dl);
    b.matrix(p + "mlp.down_proj.weight", dl, lm.ffn_dim);
  }
  b.norm("lm.norm", dl, false);
  if (!lm.tie_embeddings) b.matrix("lm.lm_head.weight", lm.vocab_size, dl);
  return std::move(b.list);
}

std::vector<std::string> find_weight_problems(const ModelConfig& c, const ModelWeights& w) {
  std::vector<std::string> problems;
  std::set<std::string, std::less<>> accounted;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    accounted.insert(e.name);
    const TensorView* t = w.find(e.name);
    if (t == nullptr) {
      problems.push_back(
          str_cat("missing tensor ", e.name, " (expected shape ", shapes_str(e.shapes), ")"));
      continue;
    }
    const std::string n = quote_name(e.name);
    if (is_float(t->dtype)) {
      bool ok = false;
      for (const Shape& s : e.shapes) ok = ok || s == t->shape;
      if (!ok)
        problems.push_back(
            str_cat(n, ": shape ", t->shape_string(), ", expected ", shapes_str(e.shapes)));
      continue;
    }
    if (t->dtype != DType::kI8 && t->dtype != DType::kU8) {
      problems.push_back(str_cat(n, ": dtype ", dtype_name(t->dtype), " is not allowed (expected ",
                                 e.quantizable ? "F32, F16, BF16, I8 or U8" : "F32, F16 or BF16",
                                 ")"));
      continue;
    }
    if (!e.quantizable) {
      problems.push_back(str_cat(n, ": dtype ", dtype_name(t->dtype),
                                 " is not allowed (expected F32, F16 or BF16; only matrices",
                                 c.vision.ws_folded ? "" : " and, with vision.ws_folded, convs",
                                 " may be quantised)"));
      continue;
    }
    const bool q8 = t->dtype == DType::kI8;
    const std::string scale = scale_name(e.name);
    accounted.insert(scale);
    if (e.cols % 32 != 0) {
      problems.push_back(str_cat(n, ": quantised (", dtype_name(t->dtype), ") but its ", e.cols,
                                 " input features are not a multiple of the block size 32"));
      continue;
    }
    const Shape want = {e.rows, q8 ? e.cols : e.cols / 2};
    if (t->shape != want)
      problems.push_back(str_cat(n, ": shape ", t->shape_string(), ", expected ", shape_str(want),
                                 " for ", q8 ? "q8_0 (I8)" : "q4_0 (U8)", " of ",
                                 shape_str({e.rows, e.cols})));
    const TensorView* s = w.find(scale);
    const Shape want_scale = {e.rows, e.cols / 32};
    if (s == nullptr)
      problems.push_back(str_cat("missing tensor ", scale, " (F16 ", shape_str(want_scale),
                                 ", the block scales of quantised ", e.name, ")"));
    else if (s->dtype != DType::kF16 || s->shape != want_scale)
      problems.push_back(str_cat(quote_name(scale), ": ", dtype_name(s->dtype), " ",
                                 s->shape_string(), ", expected F16 ", shape_str(want_scale)));
  }
  std::vector<std::string> unexpected;
  for (const std::string& name : w.names())
    if (!accounted.count(name)) unexpected.push_back(name);
  if (!unexpected.empty()) {
    std::string list;
    for (size_t i = 0; i < unexpected.size() && i < 20; ++i)
      list += (i ? ", " : "") + quote_name(unexpected[i]);
    if (unexpected.size() > 20) list += str_cat(", ... (", unexpected.size() - 20, " more)");
    problems.push_back(str_cat(unexpected.size(), " unexpected tensor",
                               unexpected.size() == 1 ? "" : "s", ": ", list));
  }
  return problems;
}

void check_weights(const ModelConfig& c, const ModelWeights& w) {
  const std::vector<std::string> problems = find_weight_problems(c, w);
  if (problems.empty()) return;
  constexpr size_t kShown = 30;
  std::string msg = str_cat(w.source(), ": the weights do not match config.json (", problems.size(),
                            " problem", problems.size() == 1 ? "" : "s", "):");
  for (size_t i = 0; i < problems.size() && i < kShown; ++i) msg += "\n  " + problems[i];
  if (problems.size() > kShown) msg += str_cat("\n  ... and ", problems.size() - kShown, " more");
  fail(ErrorCode::kModelMismatch, msg);
}

}  // namespace flamingo::io
