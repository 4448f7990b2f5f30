#include "io/config.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "io/json_strict.h"
#include "io/json_tree.h"
#include "util/check.h"

namespace flamingo::io {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// config.json is at most 4 levels deep (root, section, tokens.special / list); provenance is
// free-form, so allow some room for it.
constexpr int kMaxConfigDepth = 32;

template <typename E>
struct EnumName {
  E value;
  const char* name;
};

constexpr EnumName<VisionActivation> kVisionActivations[] = {
    {VisionActivation::kGelu, "gelu"},
    {VisionActivation::kGeluTanh, "gelu_tanh"},
    {VisionActivation::kRelu, "relu"},
    {VisionActivation::kSilu, "silu"}};
constexpr EnumName<VisionTap> kVisionTaps[] = {{VisionTap::kStage3, "stage3"},
                                               {VisionTap::kFinalAct, "final_act"}};
constexpr EnumName<ResamplerActivation> kResamplerActivations[] = {
    {ResamplerActivation::kGelu, "gelu"},
    {ResamplerActivation::kRelu, "relu"},
    {ResamplerActivation::kSquaredRelu, "squared_relu"}};
constexpr EnumName<XattnPlacement> kPlacements[] = {{XattnPlacement::kOpenFlamingo, "openflamingo"},
                                                    {XattnPlacement::kIdefics, "idefics"}};
constexpr EnumName<NormType> kNorms[] = {{NormType::kLayerNorm, "layernorm"},
                                         {NormType::kRmsNorm, "rmsnorm"}};
constexpr EnumName<XattnFfn> kXattnFfns[] = {{XattnFfn::kGelu, "gelu"},
                                             {XattnFfn::kSquaredRelu, "squared_relu"},
                                             {XattnFfn::kRelu, "relu"},
                                             {XattnFfn::kSwiglu, "swiglu"}};
constexpr EnumName<GateType> kGates[] = {{GateType::kScalar, "scalar"},
                                         {GateType::kVector, "vector"}};
constexpr EnumName<RopeStyle> kRopeStyles[] = {{RopeStyle::kRotateHalf, "rotate_half"},
                                               {RopeStyle::kInterleaved, "interleaved"}};
constexpr EnumName<ResizeMode> kResizeModes[] = {{ResizeMode::kShortestCrop, "shortest_crop"},
                                                 {ResizeMode::kSquash, "squash"}};
constexpr EnumName<WeightsDType> kWeightsDTypes[] = {{WeightsDType::kF32, "f32"},
                                                     {WeightsDType::kF16, "f16"},
                                                     {WeightsDType::kBF16, "bf16"},
                                                     {WeightsDType::kQ8_0, "q8_0"},
                                                     {WeightsDType::kQ4_0, "q4_0"}};

template <typename E, size_t N>
const char* name_of(const EnumName<E> (&table)[N], E v) {
  for (const auto& e : table)
    if (e.value == v) return e.name;
  return "?";
}

template <typename E, size_t N>
std::string names_of(const EnumName<E> (&table)[N]) {
  std::string s;
  for (size_t i = 0; i < N; ++i) {
    if (i) s += i + 1 == N ? " or " : ", ";
    s += '"';
    s += table[i].name;
    s += '"';
  }
  return s;
}

// One JSON object of the config, read field by field. Every read marks the key as known;
// finish() rejects the keys nobody read.
class Section {
 public:
  Section(const json& j, std::string path, const std::string& src)
      : j_(j), path_(std::move(path)), src_(src) {
    if (!j.is_object()) err(path_, "expected an object, got ", json_kind(j));
  }

  void mark(const std::string& key) { known_.insert(key); }

  bool has(const char* key) {
    known_.insert(key);
    return j_.contains(key);
  }

  const json& need(const char* key) {
    if (!has(key)) err(field(key), "missing (required)");
    return j_.at(key);
  }

  int64_t integer(const char* key) { return to_int(need(key), field(key)); }
  int64_t integer(const char* key, int64_t def) { return has(key) ? integer(key) : def; }

  double number(const char* key) {
    const json& v = need(key);
    if (!v.is_number()) err(field(key), "expected a number, got ", json_kind(v));
    return v.get<double>();
  }
  double number(const char* key, double def) { return has(key) ? number(key) : def; }

  bool boolean(const char* key) {
    const json& v = need(key);
    if (!v.is_boolean()) err(field(key), "expected true or false, got ", json_kind(v));
    return v.get<bool>();
  }

  std::string string(const char* key) {
    const json& v = need(key);
    if (!v.is_string()) err(field(key), "expected a string, got ", json_kind(v));
    return v.get<std::string>();
  }
  std::string string(const char* key, const std::string& def) {
    return has(key) ? string(key) : def;
  }

  template <typename E, size_t N>
  E enumeration(const char* key, const EnumName<E> (&table)[N]) {
    const std::string s = string(key);
    for (const auto& e : table)
      if (s == e.name) return e.value;
    err(field(key), "unknown value ", quote_name(s), " (expected ", names_of(table), ")");
  }

  template <size_t N>
  std::array<int64_t, N> int_list(const char* key) {
    const json& v = list(key, N);
    std::array<int64_t, N> out{};
    for (size_t i = 0; i < N; ++i) out[i] = to_int(v[i], str_cat(field(key), "[", i, "]"));
    return out;
  }
  template <size_t N>
  std::array<int64_t, N> int_list(const char* key, const std::array<int64_t, N>& def) {
    return has(key) ? int_list<N>(key) : def;
  }

  template <size_t N>
  std::array<double, N> number_list(const char* key) {
    const json& v = list(key, N);
    std::array<double, N> out{};
    for (size_t i = 0; i < N; ++i) {
      if (!v[i].is_number())
        err(str_cat(field(key), "[", i, "]"), "expected a number, got ", json_kind(v[i]));
      out[i] = v[i].get<double>();
    }
    return out;
  }

  Section section(const char* key) { return Section(need(key), field(key), src_); }

  void finish() const {
    for (const auto& [k, v] : j_.items())
      if (!known_.count(k)) err(field(printable(k)), "unknown key");
  }

  std::string field(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

  template <typename... Args>
  [[noreturn]] void err(const std::string& where, Args&&... args) const {
    fail(ErrorCode::kInvalidConfig, src_, ": ", where, ": ", std::forward<Args>(args)...);
  }

  int64_t to_int(const json& v, const std::string& where) const {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) err(where, u, " is out of range");
      return static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float())
      err(where, "expected an integer, got the non-integer number ", v.dump());
    err(where, "expected an integer, got ", json_kind(v));
  }

 private:
  const json& list(const char* key, size_t n) {
    const json& v = need(key);
    if (!v.is_array()) err(field(key), "expected a list of ", n, ", got ", json_kind(v));
    if (v.size() != n) err(field(key), "expected ", n, " entries, got ", v.size());
    return v;
  }

  const json& j_;
  std::string path_;
  const std::string& src_;
  std::set<std::string> known_;
};

// Checks on a finished struct; shared by parse_config() and validate_config().
class Validator {
 public:
  explicit Validator(const std::string& src) : src_(src) {}

  template <typename... Args>
  [[noreturn]] void err(const std::string& where, Args&&... args) const {
    fail(ErrorCode::kInvalidConfig, src_, ": ", where, ": ", std::forward<Args>(args)...);
  }

  void range(const std::string& where, int64_t v, int64_t lo, int64_t hi) const {
    if (v < lo || v > hi) err(where, v, " is out of range [", lo, ", ", hi, "]");
  }
  // lo < v ≤ hi (or lo ≤ v ≤ hi when closed_lo), and finite.
  void range(const std::string& where, double v, double lo, double hi, bool closed_lo) const {
    if (!std::isfinite(v) || (closed_lo ? v < lo : v <= lo) || v > hi)
      err(where, v, " is out of range ", closed_lo ? "[" : "(", lo, ", ", hi, "]");
  }

  // w · ratio as an exact positive integer channel count.
  int64_t channels(const std::string& where, int64_t w, double ratio) const {
    const double x = static_cast<double>(w) * ratio;
    const double r = std::round(x);
    if (std::fabs(x - r) > 1e-9 * std::max(1.0, x) || r < 1 || r > kMaxWidth)
      err(where, w, " · ", ratio, " = ", x, " is not a positive whole number of channels");
    return static_cast<int64_t>(r);
  }

 private:
  const std::string& src_;
};

void validate(const ModelConfig& c, const std::string& src) {
  Validator v(src);
  if (c.format_version > kConfigFormatVersion)
    fail(ErrorCode::kUnsupported, src, ": format_version: ", c.format_version,
         " is newer than this engine reads (", kConfigFormatVersion, ")");
  if (c.format_version != kConfigFormatVersion)
    v.err("format_version", c.format_version, " is not a valid version (expected ",
          kConfigFormatVersion, ")");

  const VisionConfig& vi = c.vision;
  if (vi.type != "nfnet")
    v.err("vision.type", "unknown value ", quote_name(vi.type), " (expected \"nfnet\")");
  v.range("vision.image_size", vi.image_size, 1, kMaxImageSize);
  for (int s = 0; s < 4; ++s) {
    const std::string i = str_cat("[", s, "]");
    v.range("vision.stem_channels" + i, vi.stem_channels[s], 1, kMaxWidth);
    v.range("vision.depths" + i, vi.depths[s], 1, kMaxLayers);
    v.range("vision.widths" + i, vi.widths[s], 1, kMaxWidth);
    v.range("vision.strides" + i, vi.strides[s], 1, 2);
  }
  v.range("vision.bottleneck_ratio", vi.bottleneck_ratio, 0.0, 16.0, false);
  v.range("vision.group_width", vi.group_width, 1, kMaxWidth);
  v.range("vision.se_ratio", vi.se_ratio, 0.0, 16.0, false);
  for (int s = 0; s < 4; ++s) {
    const std::string w = str_cat("vision.widths[", s, "]");
    const int64_t mid =
        v.channels(w + " · vision.bottleneck_ratio", vi.widths[s], vi.bottleneck_ratio);
    if (mid % vi.group_width != 0)
      v.err(w + " · vision.bottleneck_ratio", mid,
            " is not divisible by vision.group_width = ", vi.group_width);
    v.channels(w + " · vision.se_ratio", vi.widths[s], vi.se_ratio);
  }
  v.range("vision.alpha", vi.alpha, 0.0, 100.0, false);
  v.range("vision.gamma", vi.gamma, 0.0, 100.0, false);
  v.range("vision.ws_eps", vi.ws_eps, 0.0, 1.0, false);
  v.range("vision.final_conv_channels", vi.final_conv_channels, 0, kMaxWidth);
  if (vi.tap == VisionTap::kFinalAct && vi.final_conv_channels == 0)
    v.err("vision.tap", "\"final_act\" needs a final conv, but vision.final_conv_channels is 0");

  const ResamplerConfig& r = c.resampler;
  v.range("resampler.dim", r.dim, 1, kMaxWidth);
  if (r.dim != vi.tap_channels())
    v.err("resampler.dim", r.dim, " does not equal the vision tap's channels (",
          vi.tap == VisionTap::kStage3 ? "vision.widths[3]" : "vision.final_conv_channels", " = ",
          vi.tap_channels(), ")");
  v.range("resampler.depth", r.depth, 1, kMaxLayers);
  v.range("resampler.heads", r.heads, 1, kMaxHeads);
  v.range("resampler.head_dim", r.head_dim, 1, kMaxHeadDim);
  v.range("resampler.heads · resampler.head_dim", r.heads * r.head_dim, 1, kMaxWidth);
  v.range("resampler.num_latents", r.num_latents, 1, kMaxLatents);
  v.range("resampler.ff_mult", r.ff_mult, 1, 64);
  v.range("resampler.ff_mult · resampler.dim", r.ff_mult * r.dim, 1, kMaxWidth);
  v.range("resampler.max_frames", r.max_frames, 0, kMaxFrames);
  v.range("resampler.max_media", r.max_media, 0, kMaxFrames);
  v.range("resampler.norm_eps", r.norm_eps, 0.0, 1.0, false);

  const LmConfig& lm = c.lm;
  if (lm.type != "llama")
    v.err("lm.type", "unknown value ", quote_name(lm.type), " (expected \"llama\")");
  v.range("lm.dim", lm.dim, 1, kMaxWidth);
  v.range("lm.layers", lm.layers, 1, kMaxLayers);
  v.range("lm.heads", lm.heads, 1, kMaxHeads);
  v.range("lm.kv_heads", lm.kv_heads, 1, kMaxHeads);
  if (lm.heads % lm.kv_heads != 0)
    v.err("lm.kv_heads", lm.kv_heads, " does not divide lm.heads = ", lm.heads);
  v.range("lm.head_dim", lm.head_dim, 2, kMaxHeadDim);
  if (lm.head_dim % 2 != 0)
    v.err("lm.head_dim", lm.head_dim, " is odd; RoPE needs an even head_dim");
  v.range("lm.heads · lm.head_dim", lm.heads * lm.head_dim, 1, kMaxWidth);
  v.range("lm.ffn_dim", lm.ffn_dim, 1, kMaxWidth);
  v.range("lm.vocab_size", lm.vocab_size, 1, kMaxVocab);
  v.range("lm.max_seq_len", lm.max_seq_len, 1, kMaxContext);
  v.range("lm.rope_theta", lm.rope_theta, 0.0, 1e12, false);
  v.range("lm.rms_norm_eps", lm.rms_norm_eps, 0.0, 1.0, false);

  const XattnConfig& x = c.xattn;
  v.range("xattn.every", x.every, 1, kMaxLayers);
  v.range("xattn.heads", x.heads, 1, kMaxHeads);
  v.range("xattn.head_dim", x.head_dim, 1, kMaxHeadDim);
  v.range("xattn.heads · xattn.head_dim", x.heads * x.head_dim, 1, kMaxWidth);
  v.range("xattn.ff_dim", x.ff_dim, 1, kMaxWidth);
  v.range("xattn.norm_eps", x.norm_eps, 0.0, 1.0, false);
  if (x.placement == XattnPlacement::kOpenFlamingo && x.every > lm.layers)
    v.err("xattn.every", x.every, " exceeds lm.layers = ", lm.layers,
          ", so no layer would get a gated cross-attention block");

  const TokensConfig& t = c.tokens;
  const int64_t vocab = lm.vocab_size;
  auto id = [&](const std::string& where, int64_t value) {
    if (value < 0 || value >= vocab)
      v.err(where, value, " is outside the vocabulary [0, lm.vocab_size = ", vocab, ")");
  };
  id("tokens.bos", t.bos);
  id("tokens.eos", t.eos);
  if (t.pad != -1) id("tokens.pad", t.pad);
  id("tokens.image", t.image);
  id("tokens.endofchunk", t.endofchunk);
  if (t.image == t.bos || t.image == t.eos || t.image == t.endofchunk || t.image == t.pad)
    v.err("tokens.image", t.image, " is also used for BOS, EOS, PAD or <|endofchunk|>");
  if (t.endofchunk == t.bos || t.endofchunk == t.pad)
    v.err("tokens.endofchunk", t.endofchunk, " is also used for BOS or PAD");
  if (t.special.size() > kMaxSpecialTokens)
    v.err("tokens.special", t.special.size(), " entries, more than the limit of ",
          kMaxSpecialTokens);
  for (const auto& [s, value] : t.special) {
    if (s.empty()) v.err("tokens.special", "an entry has an empty string");
    if (s.size() > kMaxSpecialTokenBytes)
      v.err("tokens.special", "an entry is ", s.size(), " bytes, longer than the limit of ",
            kMaxSpecialTokenBytes);
    id(str_cat("tokens.special[", quote_name(s), "]"), value);
  }

  const PreprocessConfig& p = c.preprocess;
  v.range("preprocess.crop_pct", p.crop_pct, 0.0, 1.0, false);
  for (int i = 0; i < 3; ++i) {
    const std::string k = str_cat("[", i, "]");
    v.range("preprocess.mean" + k, p.mean[i], -1e3, 1e3, true);
    v.range("preprocess.std" + k, p.std[i], 0.0, 1e3, false);
    v.range("preprocess.background" + k, p.background[i], 0, 255);
  }
  if (c.prompt.caption.size() > kMaxCaptionBytes)
    v.err("prompt.caption", c.prompt.caption.size(), " bytes, longer than the limit of ",
          kMaxCaptionBytes);

  const JsonTree prov = parse_json_strict(c.provenance_json, str_cat(src, ": provenance"),
                                          ErrorCode::kInvalidConfig, kMaxConfigDepth);
  if (!prov.get().is_object())
    v.err("provenance", "expected an object, got ", json_kind(prov.get()));
}

template <typename E, size_t N>
E enum_default(Section& s, const char* key, const EnumName<E> (&table)[N], E def) {
  return s.has(key) ? s.enumeration(key, table) : def;
}

}  // namespace

const char* to_string(VisionActivation v) { return name_of(kVisionActivations, v); }
const char* to_string(VisionTap v) { return name_of(kVisionTaps, v); }
const char* to_string(ResamplerActivation v) { return name_of(kResamplerActivations, v); }
const char* to_string(XattnPlacement v) { return name_of(kPlacements, v); }
const char* to_string(NormType v) { return name_of(kNorms, v); }
const char* to_string(XattnFfn v) { return name_of(kXattnFfns, v); }
const char* to_string(GateType v) { return name_of(kGates, v); }
const char* to_string(RopeStyle v) { return name_of(kRopeStyles, v); }
const char* to_string(ResizeMode v) { return name_of(kResizeModes, v); }
const char* to_string(WeightsDType v) { return name_of(kWeightsDTypes, v); }

double default_gamma(VisionActivation a) {
  switch (a) {
    case VisionActivation::kGelu:
    case VisionActivation::kGeluTanh:
      return 1.7015043497085571;
    case VisionActivation::kRelu:
      return 1.7139588594436646;
    case VisionActivation::kSilu:
      return 1.7881293296813965;
  }
  return 1.0;
}

ModelConfig parse_config(std::string_view text, const std::string& source) {
  if (text.size() > kMaxConfigBytes)
    fail(ErrorCode::kInvalidConfig, source, ": ", text.size(), " bytes, more than the limit of ",
         kMaxConfigBytes);
  const JsonTree tree = parse_json_strict(text, source, ErrorCode::kInvalidConfig, kMaxConfigDepth);
  const json& root = tree.get();
  Section top(root, "", source);
  ModelConfig c;
  c.format_version = top.integer("format_version");
  // A newer version may have changed the schema: say so before complaining about fields.
  if (c.format_version > kConfigFormatVersion)
    fail(ErrorCode::kUnsupported, source, ": format_version: ", c.format_version,
         " is newer than this engine reads (", kConfigFormatVersion, ")");

  {
    Section s = top.section("vision");
    VisionConfig& v = c.vision;
    v.type = s.string("type");
    v.image_size = s.integer("image_size");
    v.stem_channels = s.int_list<4>("stem_channels");
    v.depths = s.int_list<4>("depths");
    v.widths = s.int_list<4>("widths");
    v.strides = s.int_list<4>("strides", v.strides);
    v.bottleneck_ratio = s.number("bottleneck_ratio", v.bottleneck_ratio);
    v.group_width = s.integer("group_width", v.group_width);
    v.se_ratio = s.number("se_ratio", v.se_ratio);
    v.alpha = s.number("alpha", v.alpha);
    v.activation = s.enumeration("activation", kVisionActivations);
    v.gamma = s.number("gamma", default_gamma(v.activation));
    v.ws_eps = s.number("ws_eps", v.ws_eps);
    v.final_conv_channels = s.integer("final_conv_channels");
    v.tap = s.enumeration("tap", kVisionTaps);
    v.ws_folded = s.boolean("ws_folded");
    s.finish();
  }
  {
    Section s = top.section("resampler");
    ResamplerConfig& r = c.resampler;
    r.dim = s.integer("dim");
    r.depth = s.integer("depth");
    r.heads = s.integer("heads");
    r.head_dim = s.integer("head_dim");
    r.num_latents = s.integer("num_latents");
    r.ff_mult = s.integer("ff_mult");
    r.ff_activation = s.enumeration("ff_activation", kResamplerActivations);
    r.qk_layer_norm = s.boolean("qk_layer_norm");
    r.max_frames = s.integer("max_frames");
    r.max_media = s.integer("max_media");
    r.norm_eps = s.number("norm_eps");
    s.finish();
  }
  {
    Section s = top.section("xattn");
    XattnConfig& x = c.xattn;
    x.every = s.integer("every");
    x.placement = s.enumeration("placement", kPlacements);
    x.heads = s.integer("heads");
    x.head_dim = s.integer("head_dim");
    x.norm = s.enumeration("norm", kNorms);
    x.ffn = s.enumeration("ffn", kXattnFfns);
    x.ff_dim = s.integer("ff_dim");
    x.qk_norm = s.boolean("qk_norm");
    x.gate = s.enumeration("gate", kGates);
    x.reset_at_eos = s.boolean("reset_at_eos");
    x.norm_eps = s.number("norm_eps");
    s.finish();
  }
  {
    Section s = top.section("lm");
    LmConfig& l = c.lm;
    l.type = s.string("type");
    l.dim = s.integer("dim");
    l.layers = s.integer("layers");
    l.heads = s.integer("heads");
    l.kv_heads = s.integer("kv_heads");
    l.head_dim = s.integer("head_dim");
    l.ffn_dim = s.integer("ffn_dim");
    l.vocab_size = s.integer("vocab_size");
    l.max_seq_len = s.integer("max_seq_len");
    l.rope_theta = s.number("rope_theta");
    l.rope_style = s.enumeration("rope_style", kRopeStyles);
    l.rms_norm_eps = s.number("rms_norm_eps");
    l.tie_embeddings = s.boolean("tie_embeddings");
    s.finish();
  }
  {
    Section s = top.section("tokens");
    TokensConfig& t = c.tokens;
    t.bos = s.integer("bos");
    t.eos = s.integer("eos");
    t.pad = s.integer("pad");
    t.image = s.integer("image");
    t.endofchunk = s.integer("endofchunk");
    t.add_bos = s.boolean("add_bos");
    Section sp = s.section("special");
    const json& special = s.need("special");
    if (special.size() > kMaxSpecialTokens)
      sp.err("tokens.special", special.size(), " entries, more than the limit of ",
             kMaxSpecialTokens);
    for (const auto& [k, v] : special.items()) {
      sp.mark(k);
      t.special.emplace(k, sp.to_int(v, str_cat("tokens.special[", quote_name(k), "]")));
    }
    sp.finish();
    s.finish();
  }
  {
    Section s = top.section("preprocess");
    PreprocessConfig& p = c.preprocess;
    p.resize = s.enumeration("resize", kResizeModes);
    p.crop_pct = s.number("crop_pct");
    p.mean = s.number_list<3>("mean");
    p.std = s.number_list<3>("std");
    p.background = s.int_list<3>("background");
    s.finish();
  }
  if (top.has("prompt")) {
    Section s = top.section("prompt");
    c.prompt.caption = s.string("caption", c.prompt.caption);
    s.finish();
  }
  {
    Section s = top.section("weights");
    c.weights.dtype = s.enumeration("dtype", kWeightsDTypes);
    s.finish();
  }
  if (top.has("provenance")) {
    const json& p = top.need("provenance");
    if (!p.is_object()) top.err("provenance", "expected an object, got ", json_kind(p));
    c.provenance_json = p.dump();
  }
  top.finish();
  validate(c, source);
  return c;
}

ModelConfig load_config(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = path;
  if (fs::is_directory(path, ec)) file = path / "config.json";
  const std::string name = file.string();
  if (!fs::exists(file, ec)) fail(ErrorCode::kIo, name, ": no such file");
  if (fs::is_directory(file, ec)) fail(ErrorCode::kIo, name, ": is a directory, not a file");
  if (!fs::is_regular_file(file, ec)) fail(ErrorCode::kIo, name, ": not a regular file");
  const auto size = fs::file_size(file, ec);
  if (ec) fail(io_error_code(ec), name, ": cannot stat: ", ec.message());
  if (size > kMaxConfigBytes)
    fail(ErrorCode::kInvalidConfig, name, ": ", size, " bytes, more than the limit of ",
         kMaxConfigBytes);
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, name, ": cannot open");
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (static_cast<uint64_t>(in.gcount()) != size) fail(ErrorCode::kIo, name, ": short read");
  return parse_config(text, name);
}

void validate_config(const ModelConfig& c, const std::string& source) { validate(c, source); }

std::string config_to_json(const ModelConfig& c, int indent) {
  ojson j;
  j["format_version"] = c.format_version;
  const VisionConfig& v = c.vision;
  j["vision"] = {{"type", v.type},
                 {"image_size", v.image_size},
                 {"stem_channels", v.stem_channels},
                 {"depths", v.depths},
                 {"widths", v.widths},
                 {"strides", v.strides},
                 {"bottleneck_ratio", v.bottleneck_ratio},
                 {"group_width", v.group_width},
                 {"se_ratio", v.se_ratio},
                 {"alpha", v.alpha},
                 {"activation", to_string(v.activation)},
                 {"gamma", v.gamma},
                 {"ws_eps", v.ws_eps},
                 {"final_conv_channels", v.final_conv_channels},
                 {"tap", to_string(v.tap)},
                 {"ws_folded", v.ws_folded}};
  const ResamplerConfig& r = c.resampler;
  j["resampler"] = {{"dim", r.dim},
                    {"depth", r.depth},
                    {"heads", r.heads},
                    {"head_dim", r.head_dim},
                    {"num_latents", r.num_latents},
                    {"ff_mult", r.ff_mult},
                    {"ff_activation", to_string(r.ff_activation)},
                    {"qk_layer_norm", r.qk_layer_norm},
                    {"max_frames", r.max_frames},
                    {"max_media", r.max_media},
                    {"norm_eps", r.norm_eps}};
  const XattnConfig& x = c.xattn;
  j["xattn"] = {{"every", x.every},          {"placement", to_string(x.placement)},
                {"heads", x.heads},          {"head_dim", x.head_dim},
                {"norm", to_string(x.norm)}, {"ffn", to_string(x.ffn)},
                {"ff_dim", x.ff_dim},        {"qk_norm", x.qk_norm},
                {"gate", to_string(x.gate)}, {"reset_at_eos", x.reset_at_eos},
                {"norm_eps", x.norm_eps}};
  const LmConfig& l = c.lm;
  j["lm"] = {{"type", l.type},
             {"dim", l.dim},
             {"layers", l.layers},
             {"heads", l.heads},
             {"kv_heads", l.kv_heads},
             {"head_dim", l.head_dim},
             {"ffn_dim", l.ffn_dim},
             {"vocab_size", l.vocab_size},
             {"max_seq_len", l.max_seq_len},
             {"rope_theta", l.rope_theta},
             {"rope_style", to_string(l.rope_style)},
             {"rms_norm_eps", l.rms_norm_eps},
             {"tie_embeddings", l.tie_embeddings}};
  const TokensConfig& t = c.tokens;
  ojson special = ojson::object();
  for (const auto& [k, id] : t.special) special[k] = id;
  j["tokens"] = {{"bos", t.bos},
                 {"eos", t.eos},
                 {"pad", t.pad},
                 {"image", t.image},
                 {"endofchunk", t.endofchunk},
                 {"add_bos", t.add_bos},
                 {"special", special}};
  const PreprocessConfig& p = c.preprocess;
  j["preprocess"] = {{"resize", to_string(p.resize)},
                     {"crop_pct", p.crop_pct},
                     {"mean", p.mean},
                     {"std", p.std},
                     {"background", p.background}};
  j["prompt"] = {{"caption", c.prompt.caption}};
  j["weights"] = {{"dtype", to_string(c.weights.dtype)}};
  ojson prov = ojson::object();
  try {
    prov = ojson::parse(c.provenance_json);
  } catch (const ojson::exception&) {
    fail(ErrorCode::kInvalidArgument, "config_to_json: provenance_json is not valid JSON");
  }
  j["provenance"] = prov;
  return j.dump(indent) + "\n";
}

}  // namespace flamingo::io
