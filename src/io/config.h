// config.json of a model directory as a plain struct (the schema is docs/model-format.md).
//
// parse_config() validates the file against itself: required fields present, JSON types right,
// no unknown keys (outside "provenance"), every number inside its bound, enum strings known,
// and the cross-field rules (kv_heads divides heads, RoPE head_dim even, groups divide the
// bottleneck, the resampler width equals the vision tap's channels, token ids inside the
// vocabulary...). Errors are Error(kInvalidConfig) (Error(kUnsupported) for a newer
// format_version) and name the field path: "config.json: lm.kv_heads: 3 does not divide
// lm.heads = 32". The weights are checked against the config by io/model_manifest.h.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

namespace flamingo::io {

inline constexpr int kConfigFormatVersion = 1;

enum class VisionActivation { kGelu, kGeluTanh, kRelu, kSilu };
enum class VisionTap { kStage3, kFinalAct };
enum class ResamplerActivation { kGelu, kRelu, kSquaredRelu };
enum class XattnPlacement { kOpenFlamingo, kIdefics };
enum class NormType { kLayerNorm, kRmsNorm };
enum class XattnFfn { kGelu, kSquaredRelu, kRelu, kSwiglu };
enum class GateType { kScalar, kVector };
enum class RopeStyle { kRotateHalf, kInterleaved };
enum class ResizeMode { kShortestCrop, kSquash };
enum class WeightsDType { kF32, kF16, kBF16, kQ8_0, kQ4_0 };

// The config.json spelling of each enum value ("gelu_tanh", "shortest_crop", ...).
const char* to_string(VisionActivation v);
const char* to_string(VisionTap v);
const char* to_string(ResamplerActivation v);
const char* to_string(XattnPlacement v);
const char* to_string(NormType v);
const char* to_string(XattnFfn v);
const char* to_string(GateType v);
const char* to_string(RopeStyle v);
const char* to_string(ResizeMode v);
const char* to_string(WeightsDType v);

// NFNet's variance-preserving γ for an activation (timm's _nonlin_gamma).
double default_gamma(VisionActivation a);

// Fields with a default in docs/model-format.md carry it here; the others must be in the file.
struct VisionConfig {
  std::string type = "nfnet";
  int64_t image_size = 0;
  std::array<int64_t, 4> stem_channels{};
  std::array<int64_t, 4> depths{};
  std::array<int64_t, 4> widths{};
  std::array<int64_t, 4> strides{1, 2, 2, 2};
  double bottleneck_ratio = 0.5;
  int64_t group_width = 128;
  double se_ratio = 0.5;
  double alpha = 0.2;
  VisionActivation activation = VisionActivation::kGelu;
  double gamma = 1.7015043497085571;  // default_gamma(activation) when absent
  double ws_eps = 1e-5;
  int64_t final_conv_channels = 0;
  VisionTap tap = VisionTap::kStage3;
  bool ws_folded = false;

  int64_t tap_channels() const {
    return tap == VisionTap::kStage3 ? widths[3] : final_conv_channels;
  }

  bool operator==(const VisionConfig&) const = default;
};

struct ResamplerConfig {
  int64_t dim = 0;
  int64_t depth = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t num_latents = 0;
  int64_t ff_mult = 0;
  ResamplerActivation ff_activation = ResamplerActivation::kGelu;
  bool qk_layer_norm = false;
  int64_t max_frames = 0;
  int64_t max_media = 0;
  double norm_eps = 1e-5;

  bool operator==(const ResamplerConfig&) const = default;
};

struct XattnConfig {
  int64_t every = 0;
  XattnPlacement placement = XattnPlacement::kOpenFlamingo;
  int64_t heads = 0;
  int64_t head_dim = 0;
  NormType norm = NormType::kLayerNorm;
  XattnFfn ffn = XattnFfn::kGelu;
  int64_t ff_dim = 0;
  bool qk_norm = false;
  GateType gate = GateType::kScalar;
  bool reset_at_eos = false;
  double norm_eps = 1e-5;

  bool operator==(const XattnConfig&) const = default;
};

struct LmConfig {
  std::string type = "llama";
  int64_t dim = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_seq_len = 0;
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::kRotateHalf;
  double rms_norm_eps = 1e-5;
  bool tie_embeddings = false;

  bool operator==(const LmConfig&) const = default;
};

struct TokensConfig {
  int64_t bos = 0;
  int64_t eos = 0;
  int64_t pad = -1;  // -1: none
  int64_t image = 0;
  int64_t endofchunk = 0;
  bool add_bos = true;
  std::map<std::string, int64_t> special;  // split out before sentencepiece sees the text

  bool operator==(const TokensConfig&) const = default;
};

struct PreprocessConfig {
  ResizeMode resize = ResizeMode::kShortestCrop;
  double crop_pct = 1.0;
  std::array<double, 3> mean{};
  std::array<double, 3> std{};
  std::array<int64_t, 3> background{255, 255, 255};

  bool operator==(const PreprocessConfig&) const = default;
};

struct PromptConfig {
  std::string caption = "<image>Output:";

  bool operator==(const PromptConfig&) const = default;
};

struct WeightsConfig {
  WeightsDType dtype = WeightsDType::kF32;

  bool operator==(const WeightsConfig&) const = default;
};

struct ModelConfig {
  int64_t format_version = kConfigFormatVersion;
  VisionConfig vision;
  ResamplerConfig resampler;
  XattnConfig xattn;
  LmConfig lm;
  TokensConfig tokens;
  PreprocessConfig preprocess;
  PromptConfig prompt;  // optional in the file (default caption)
  WeightsConfig weights;
  std::string provenance_json = "{}";  // free-form object, kept verbatim (compact JSON)

  bool operator==(const ModelConfig&) const = default;
};

// Bounds from docs/model-format.md.
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;  // channels, dims, hidden sizes
inline constexpr int64_t kMaxLayers = 4096;             // LM layers, blocks per stage, depth
inline constexpr int64_t kMaxVocab = int64_t{1} << 22;
inline constexpr int64_t kMaxContext = int64_t{1} << 20;
inline constexpr int64_t kMaxImageSize = 16384;
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxHeadDim = 4096;
inline constexpr int64_t kMaxLatents = 65536;
inline constexpr int64_t kMaxFrames = 65536;
inline constexpr size_t kMaxConfigBytes = 16 << 20;
inline constexpr size_t kMaxSpecialTokens = 4096;
inline constexpr size_t kMaxSpecialTokenBytes = 256;
inline constexpr size_t kMaxCaptionBytes = 65536;

// `source` names the file in messages ("config.json", or the path).
ModelConfig parse_config(std::string_view json_text, const std::string& source = "config.json");
// Reads <path> (a file, or a model directory holding config.json). Missing → Error(kIo).
ModelConfig load_config(const std::filesystem::path& path);

// Runs the same checks parse_config() does on an already built struct (converters and tests
// build configs in code).
void validate_config(const ModelConfig& c, const std::string& source = "config.json");

// Every field, defaults included, so that parse_config(config_to_json(c)) == c.
std::string config_to_json(const ModelConfig& c, int indent = 2);

}  // namespace flamingo::io
