#include "io/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "support/error_matchers.h"
#include "support/test_util.h"

namespace flamingo::io {
namespace {

using flamingo::testing::expect_error;
using nlohmann::json;

std::string fixture(const std::string& name) {
  return flamingo::testing::read_file(flamingo::testing::test_data_dir() / "config" / name);
}

json tiny_json() { return json::parse(fixture("tiny.json")); }

// ---- Good configs -----------------------------------------------------------------------------

TEST(Config, ParsesTheTinyFixture) {
  const ModelConfig c = parse_config(fixture("tiny.json"));
  EXPECT_EQ(c.format_version, 1);
  EXPECT_EQ(c.vision.image_size, 64);
  EXPECT_EQ(c.vision.stem_channels, (std::array<int64_t, 4>{4, 4, 8, 8}));
  EXPECT_EQ(c.vision.widths, (std::array<int64_t, 4>{16, 16, 32, 32}));
  EXPECT_EQ(c.vision.group_width, 8);
  EXPECT_EQ(c.vision.activation, VisionActivation::kGelu);
  EXPECT_EQ(c.vision.tap, VisionTap::kStage3);
  EXPECT_EQ(c.vision.tap_channels(), 32);
  EXPECT_EQ(c.resampler.dim, 32);
  EXPECT_EQ(c.resampler.num_latents, 4);
  EXPECT_EQ(c.xattn.every, 1);
  EXPECT_EQ(c.xattn.placement, XattnPlacement::kOpenFlamingo);
  EXPECT_EQ(c.lm.kv_heads, 2);
  EXPECT_EQ(c.lm.vocab_size, 300);
  EXPECT_DOUBLE_EQ(c.lm.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.tokens.image, 298);
  EXPECT_EQ(c.tokens.special.at("<|endofchunk|>"), 297);
  EXPECT_EQ(c.preprocess.std[2], 0.225);
  EXPECT_EQ(c.prompt.caption, "<image>Output:");
  EXPECT_EQ(c.weights.dtype, WeightsDType::kF32);
  EXPECT_EQ(json::parse(c.provenance_json)["converter"], "hand-written test fixture");
}

TEST(Config, AppliesDocumentedDefaults) {
  const ModelConfig c = parse_config(fixture("minimal.json"));
  EXPECT_EQ(c.vision.strides, (std::array<int64_t, 4>{1, 2, 2, 2}));
  EXPECT_EQ(c.vision.bottleneck_ratio, 0.5);
  EXPECT_EQ(c.vision.se_ratio, 0.5);
  EXPECT_EQ(c.vision.alpha, 0.2);
  EXPECT_EQ(c.vision.ws_eps, 1e-5);
  EXPECT_EQ(c.vision.gamma, default_gamma(VisionActivation::kRelu));
  EXPECT_EQ(c.vision.gamma, 1.7139588594436646);
  EXPECT_EQ(c.prompt.caption, "<image>Output:");
  EXPECT_EQ(c.provenance_json, "{}");
  // The other enum spellings.
  EXPECT_EQ(c.vision.tap, VisionTap::kFinalAct);
  EXPECT_EQ(c.resampler.ff_activation, ResamplerActivation::kSquaredRelu);
  EXPECT_EQ(c.xattn.placement, XattnPlacement::kIdefics);
  EXPECT_EQ(c.xattn.norm, NormType::kRmsNorm);
  EXPECT_EQ(c.xattn.ffn, XattnFfn::kSwiglu);
  EXPECT_EQ(c.xattn.gate, GateType::kVector);
  EXPECT_EQ(c.lm.rope_style, RopeStyle::kInterleaved);
  EXPECT_EQ(c.preprocess.resize, ResizeMode::kSquash);
  EXPECT_EQ(c.weights.dtype, WeightsDType::kQ8_0);
  EXPECT_EQ(c.tokens.pad, -1);
}

TEST(Config, DefaultGammaFollowsActivation) {
  EXPECT_EQ(default_gamma(VisionActivation::kGelu), 1.7015043497085571);
  EXPECT_EQ(default_gamma(VisionActivation::kGeluTanh), 1.7015043497085571);
  EXPECT_EQ(default_gamma(VisionActivation::kSilu), 1.7881293296813965);
}

TEST(Config, RoundTripsThroughToJson) {
  for (const char* name : {"tiny.json", "minimal.json"}) {
    const ModelConfig c = parse_config(fixture(name));
    const std::string text = config_to_json(c);
    const ModelConfig back = parse_config(text);
    EXPECT_TRUE(back == c) << name << "\n" << text;
    EXPECT_EQ(config_to_json(back), text);
  }
  // Awkward doubles survive exactly.
  ModelConfig c = parse_config(fixture("tiny.json"));
  c.lm.rms_norm_eps = 1.0 / 3.0 * 1e-5;
  c.preprocess.mean = {0.1, 0.2, 0.30000000000000004};
  c.tokens.special["<a b>"] = 5;
  c.provenance_json = R"({"nested":{"list":[1,2.5,"x"]}})";
  EXPECT_TRUE(parse_config(config_to_json(c)) == c);
}

TEST(Config, ToJsonWritesEveryField) {
  const json j = json::parse(config_to_json(parse_config(fixture("minimal.json"))));
  EXPECT_EQ(j["vision"]["strides"], json({1, 2, 2, 2}));
  EXPECT_EQ(j["vision"]["gamma"], 1.7139588594436646);
  EXPECT_EQ(j["prompt"]["caption"], "<image>Output:");
  EXPECT_EQ(j["xattn"]["placement"], "idefics");
  EXPECT_TRUE(j["provenance"].is_object());
}

TEST(Config, LoadsFromFileOrDirectory) {
  flamingo::testing::TempDir dir;
  flamingo::testing::write_file(dir.path() / "config.json", fixture("tiny.json"));
  EXPECT_TRUE(load_config(dir.path()) == parse_config(fixture("tiny.json")));
  EXPECT_TRUE(load_config(dir.path() / "config.json") == parse_config(fixture("tiny.json")));
  expect_error([&] { load_config(dir.path() / "nope.json"); }, ErrorCode::kIo,
               {"nope.json", "no such file"});
  flamingo::testing::TempDir empty;
  expect_error([&] { load_config(empty.path()); }, ErrorCode::kIo, {"config.json", "no such file"});
  // Errors carry the path.
  flamingo::testing::write_file(dir.path() / "bad.json", "{\"format_version\": 1}");
  expect_error([&] { load_config(dir.path() / "bad.json"); }, ErrorCode::kInvalidConfig,
               {(dir.path() / "bad.json").string(), "vision", "missing"});
}

TEST(Config, ValidateConfigChecksStructsBuiltInCode) {
  ModelConfig c = parse_config(fixture("tiny.json"));
  EXPECT_NO_THROW(validate_config(c));
  c.lm.kv_heads = 3;
  expect_error([&] { validate_config(c, "built"); }, ErrorCode::kInvalidConfig,
               {"built: lm.kv_heads: 3 does not divide lm.heads = 4"});
  c = parse_config(fixture("tiny.json"));
  c.preprocess.std[0] = INFINITY;
  expect_error([&] { validate_config(c); }, ErrorCode::kInvalidConfig, {"preprocess.std[0]: inf"});
  c = parse_config(fixture("tiny.json"));
  c.lm.rms_norm_eps = NAN;
  expect_error([&] { validate_config(c); }, ErrorCode::kInvalidConfig, {"lm.rms_norm_eps: nan"});
  c = parse_config(fixture("tiny.json"));
  c.provenance_json = "[1]";
  expect_error([&] { validate_config(c); }, ErrorCode::kInvalidConfig, {"provenance"});
}

// ---- One case per rule ------------------------------------------------------------------------

struct Case {
  std::string name;
  std::function<void(json&)> edit;
  ErrorCode code;
  std::vector<std::string> needles;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

json& at(json& j, const std::string& dotted) {
  json* p = &j;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    p = &(*p)[dotted.substr(start, dot - start)];
    if (dot == std::string::npos) return *p;
    start = dot + 1;
  }
}

Case set(std::string name, std::string path, json value, std::vector<std::string> needles,
         ErrorCode code = ErrorCode::kInvalidConfig) {
  return {std::move(name), [path, value](json& j) { at(j, path) = value; }, code,
          std::move(needles)};
}

Case erase(std::string name, std::string path, std::vector<std::string> needles) {
  return {std::move(name),
          [path](json& j) {
            const size_t dot = path.rfind('.');
            if (dot == std::string::npos)
              j.erase(path);
            else
              at(j, path.substr(0, dot)).erase(path.substr(dot + 1));
          },
          ErrorCode::kInvalidConfig, std::move(needles)};
}

// JSON has no Inf; 1e400 is the nearest a file can get. The test body swaps this marker for it.
const json kInf = "__1e400__";

std::vector<Case> rule_cases() {
  const ErrorCode kUnsupported = ErrorCode::kUnsupported;
  std::vector<Case> cases = {
      // Versions.
      set("format_version_newer", "format_version", 2, {"format_version: 2 is newer"},
          kUnsupported),
      set("format_version_zero", "format_version", 0, {"format_version: 0 is not a valid version"}),
      set("format_version_string", "format_version", "1",
          {"format_version: expected an integer, got a string"}),
      // Unknown keys.
      set("unknown_top_level_key", "vison", json::object(), {"vison: unknown key"}),
      set("unknown_key_in_lm", "lm.head_dims", 8, {"lm.head_dims: unknown key"}),
      set("unknown_key_in_vision", "vision.widht", 8, {"vision.widht: unknown key"}),
      set("unknown_key_in_prompt", "prompt.captoin", "x", {"prompt.captoin: unknown key"}),
      set("unknown_key_in_weights", "weights.dtypes", "f32", {"weights.dtypes: unknown key"}),
      // Wrong JSON types.
      set("section_not_object", "lm", json::array(), {"lm: expected an object, got an array"}),
      set("integer_as_string", "lm.dim", "32", {"lm.dim: expected an integer, got a string"}),
      set("integer_as_float", "lm.dim", 32.0,
          {"lm.dim: expected an integer, got the non-integer number 32.0"}),
      set("integer_as_bool", "lm.layers", true, {"lm.layers: expected an integer, got a boolean"}),
      set("integer_as_null", "resampler.depth", nullptr,
          {"resampler.depth: expected an integer, got null"}),
      set("number_as_string", "lm.rope_theta", "1e4",
          {"lm.rope_theta: expected a number, got a string"}),
      set("bool_as_integer", "lm.tie_embeddings", 0,
          {"lm.tie_embeddings: expected true or false, got an integer"}),
      set("string_as_number", "vision.activation", 1,
          {"vision.activation: expected a string, got an integer"}),
      set("list_as_integer", "vision.depths", 1,
          {"vision.depths: expected a list of 4, got an integer"}),
      set("list_entry_wrong_type", "vision.widths", json({16, "16", 32, 32}),
          {"vision.widths[1]: expected an integer, got a string"}),
      set("number_list_entry_wrong_type", "preprocess.mean", json({0.5, "x", 0.5}),
          {"preprocess.mean[1]: expected a number, got a string"}),
      set("special_not_object", "tokens.special", json::array(),
          {"tokens.special: expected an object, got an array"}),
      set("special_id_not_integer", "tokens.special", json({{"<image>", "298"}}),
          {"tokens.special[\"<image>\"]: expected an integer"}),
      set("provenance_not_object", "provenance", "me",
          {"provenance: expected an object, got a string"}),
      // Integers outside int64.
      set("integer_beyond_int64", "lm.dim", json(uint64_t{18446744073709551615u}),
          {"lm.dim: 18446744073709551615 is out of range"}),
      set("integer_beyond_uint64", "lm.dim", 1e30, {"lm.dim: expected an integer"}),
      // List lengths.
      set("list_too_short", "vision.depths", json({1, 1, 1}),
          {"vision.depths: expected 4 entries, got 3"}),
      set("list_too_long", "vision.stem_channels", json({4, 4, 8, 8, 8}),
          {"vision.stem_channels: expected 4 entries, got 5"}),
      set("mean_wrong_length", "preprocess.mean", json({0.5, 0.5}),
          {"preprocess.mean: expected 3 entries, got 2"}),
      set("background_wrong_length", "preprocess.background", json({1, 2, 3, 4}),
          {"preprocess.background: expected 3 entries, got 4"}),
      // Unknown enum values.
      set("unknown_vision_type", "vision.type", "resnet",
          {"vision.type: unknown value \"resnet\""}),
      set("unknown_activation", "vision.activation", "gelu_new",
          {"vision.activation: unknown value \"gelu_new\"", "\"gelu_tanh\""}),
      set("unknown_tap", "vision.tap", "stage4", {"vision.tap: unknown value"}),
      set("unknown_resampler_activation", "resampler.ff_activation", "swish",
          {"resampler.ff_activation: unknown value"}),
      set("unknown_placement", "xattn.placement", "flamingo", {"xattn.placement: unknown value"}),
      set("unknown_norm", "xattn.norm", "batchnorm", {"xattn.norm: unknown value"}),
      set("unknown_xattn_ffn", "xattn.ffn", "geglu", {"xattn.ffn: unknown value"}),
      set("unknown_gate", "xattn.gate", "matrix", {"xattn.gate: unknown value"}),
      set("unknown_lm_type", "lm.type", "gpt2", {"lm.type: unknown value \"gpt2\""}),
      set("unknown_rope_style", "lm.rope_style", "neox", {"lm.rope_style: unknown value"}),
      set("unknown_resize", "preprocess.resize", "crop", {"preprocess.resize: unknown value"}),
      set("unknown_weights_dtype", "weights.dtype", "q5_k", {"weights.dtype: unknown value"}),
      set("enum_wrong_case", "weights.dtype", "F32", {"weights.dtype: unknown value \"F32\""}),
      // Negative, zero, absurd values.
      set("negative_dim", "lm.dim", -32, {"lm.dim: -32 is out of range [1, 1048576]"}),
      set("negative_depth", "vision.depths", json({1, -1, 1, 1}),
          {"vision.depths[1]: -1 is out of range"}),
      set("negative_max_frames", "resampler.max_frames", -1,
          {"resampler.max_frames: -1 is out of range"}),
      set("negative_token", "tokens.bos", -5, {"tokens.bos: -5 is outside the vocabulary"}),
      set("pad_below_minus_one", "tokens.pad", -2, {"tokens.pad: -2 is outside the vocabulary"}),
      set("zero_layers", "lm.layers", 0, {"lm.layers: 0 is out of range [1, 4096]"}),
      set("zero_heads", "resampler.heads", 0, {"resampler.heads: 0 is out of range"}),
      set("zero_image_size", "vision.image_size", 0, {"vision.image_size: 0 is out of range"}),
      set("zero_latents", "resampler.num_latents", 0, {"resampler.num_latents: 0 is out of range"}),
      set("zero_every", "xattn.every", 0, {"xattn.every: 0 is out of range"}),
      set("absurd_width", "lm.dim", 1 << 21, {"lm.dim: 2097152 is out of range [1, 1048576]"}),
      set("absurd_layers", "lm.layers", 5000, {"lm.layers: 5000 is out of range [1, 4096]"}),
      set("absurd_vocab", "lm.vocab_size", 1 << 23,
          {"lm.vocab_size: 8388608 is out of range [1, 4194304]"}),
      set("absurd_context", "lm.max_seq_len", 1 << 21, {"lm.max_seq_len: 2097152 is out of range"}),
      set("absurd_image_size", "vision.image_size", 100000,
          {"vision.image_size: 100000 is out of range"}),
      set("absurd_stage_depth", "vision.depths", json({1, 1, 10000, 1}),
          {"vision.depths[2]: 10000 is out of range"}),
      set("absurd_ff_mult", "resampler.ff_mult", 1000, {"resampler.ff_mult: 1000 is out of range"}),
      set("huge_int64_dim", "xattn.ff_dim", json(int64_t{9223372036854775807}),
          {"xattn.ff_dim: 9223372036854775807 is out of range"}),
      set("heads_times_head_dim_too_big", "lm.heads", 4096,
          {"lm.heads · lm.head_dim: 32768"}),  // 4096·8 ok? see below
      set("stride_three", "vision.strides", json({1, 3, 2, 2}),
          {"vision.strides[1]: 3 is out of range [1, 2]"}),
      set("zero_eps", "lm.rms_norm_eps", 0.0, {"lm.rms_norm_eps: 0 is out of range (0, 1]"}),
      set("negative_eps", "xattn.norm_eps", -1e-5, {"xattn.norm_eps: -1e-05 is out of range"}),
      set("eps_too_big", "resampler.norm_eps", 2.0, {"resampler.norm_eps: 2 is out of range"}),
      set("zero_rope_theta", "lm.rope_theta", 0, {"lm.rope_theta: 0 is out of range"}),
      set("number_overflowing_double", "vision.alpha", kInf, {"invalid JSON: number overflow"}),
      set("zero_ws_eps", "vision.ws_eps", 0, {"vision.ws_eps: 0 is out of range"}),
      set("negative_gamma", "vision.gamma", -1.0, {"vision.gamma: -1 is out of range"}),
      // Cross-field rules.
      set("kv_heads_not_dividing_heads", "lm.kv_heads", 3,
          {"config.json: lm.kv_heads: 3 does not divide lm.heads = 4"}),
      set("kv_heads_zero", "lm.kv_heads", 0, {"lm.kv_heads: 0 is out of range"}),
      set("head_dim_odd", "lm.head_dim", 7, {"lm.head_dim: 7 is odd; RoPE needs an even head_dim"}),
      set("groups_not_dividing_mid", "vision.group_width", 16,
          {"vision.widths[0] · vision.bottleneck_ratio: 8 is not divisible by vision.group_width = "
           "16"}),
      set("bottleneck_not_whole", "vision.bottleneck_ratio", 0.3,
          {"vision.widths[0] · vision.bottleneck_ratio", "not a positive whole number"}),
      set("se_ratio_zero", "vision.se_ratio", 0.0, {"vision.se_ratio: 0 is out of range"}),
      set("se_hidden_not_whole", "vision.se_ratio", 0.1,
          {"vision.widths[0] · vision.se_ratio", "not a positive whole number"}),
      set("resampler_dim_not_tap", "resampler.dim", 16,
          {"resampler.dim: 16 does not equal the vision tap's channels (vision.widths[3] = 32)"}),
      set("final_act_without_final_conv", "vision.tap", "final_act",
          {"vision.tap: \"final_act\" needs a final conv"}),
      set("every_exceeds_layers", "xattn.every", 3, {"xattn.every: 3 exceeds lm.layers = 2"}),
      set("token_id_at_vocab", "tokens.image", 300,
          {"tokens.image: 300 is outside the vocabulary [0, lm.vocab_size = 300)"}),
      set("eos_beyond_vocab", "tokens.eos", 100000,
          {"tokens.eos: 100000 is outside the vocabulary"}),
      set("endofchunk_negative", "tokens.endofchunk", -1,
          {"tokens.endofchunk: -1 is outside the vocabulary"}),
      set("special_id_beyond_vocab", "tokens.special", json({{"<x>", 1000}}),
          {"tokens.special[\"<x>\"]: 1000 is outside the vocabulary"}),
      set("special_empty_string", "tokens.special", json({{"", 5}}),
          {"tokens.special: an entry has an empty string"}),
      set("special_too_long", "tokens.special", json({{std::string(300, 'x'), 5}}),
          {"tokens.special: an entry is 300 bytes"}),
      set("image_token_is_eos", "tokens.image", 2, {"tokens.image: 2 is also used"}),
      set("std_zero", "preprocess.std", json({0.2, 0.0, 0.2}),
          {"preprocess.std[1]: 0 is out of range"}),
      set("std_negative", "preprocess.std", json({0.2, 0.2, -0.2}),
          {"preprocess.std[2]: -0.2 is out of range"}),
      set("list_number_overflowing_double", "preprocess.mean", json({json(0.2), kInf, json(0.2)}),
          {"invalid JSON: number overflow"}),
      set("crop_pct_zero", "preprocess.crop_pct", 0,
          {"preprocess.crop_pct: 0 is out of range (0, 1]"}),
      set("crop_pct_above_one", "preprocess.crop_pct", 1.5,
          {"preprocess.crop_pct: 1.5 is out of range"}),
      set("background_above_255", "preprocess.background", json({0, 256, 0}),
          {"preprocess.background[1]: 256 is out of range [0, 255]"}),
      set("caption_too_long", "prompt.caption", std::string(70000, 'a'),
          {"prompt.caption: 70000 bytes"}),
  };
  // heads · head_dim: 4096 · 8 = 32768 is allowed; push head_dim up too.
  cases.erase(
      std::remove_if(cases.begin(), cases.end(),
                     [](const Case& c) { return c.name == "heads_times_head_dim_too_big"; }),
      cases.end());
  cases.push_back({"heads_times_head_dim_too_big",
                   [](json& j) {
                     j["lm"]["heads"] = 4096;
                     j["lm"]["kv_heads"] = 1;
                     j["lm"]["head_dim"] = 4096;
                   },
                   ErrorCode::kInvalidConfig,
                   {"lm.heads · lm.head_dim: 16777216 is out of range [1, 1048576]"}});

  // Every required field, removed.
  const json tiny = tiny_json();
  const std::set<std::string> defaulted = {"vision.strides",
                                           "vision.bottleneck_ratio",
                                           "vision.group_width",
                                           "vision.se_ratio",
                                           "vision.alpha",
                                           "vision.gamma",
                                           "vision.ws_eps",
                                           "prompt.caption",
                                           "prompt",
                                           "provenance",
                                           "provenance.converter"};
  for (const auto& [section, body] : tiny.items()) {
    if (!defaulted.count(section))
      cases.push_back(erase("missing_" + section, section, {section + ": missing (required)"}));
    if (!body.is_object()) continue;
    for (const auto& [key, value] : body.items()) {
      const std::string path = section + "." + key;
      if (defaulted.count(path)) continue;
      cases.push_back(
          erase("missing_" + section + "_" + key, path, {path + ": missing (required)"}));
    }
  }
  return cases;
}

class ConfigRule : public ::testing::TestWithParam<Case> {};

TEST_P(ConfigRule, IsRejectedWithItsFieldPath) {
  json j = tiny_json();
  GetParam().edit(j);
  std::string text = j.dump();
  for (size_t p; (p = text.find("\"__1e400__\"")) != std::string::npos;)
    text.replace(p, 11, "1e400");
  try {
    parse_config(text, "config.json");
    ADD_FAILURE() << "accepted: " << GetParam().name;
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(GetParam().code)) << e.what();
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("config.json: ", 0), 0u) << msg;
    for (const auto& n : GetParam().needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, ConfigRule, ::testing::ValuesIn(rule_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(ConfigText, InvalidJson) {
  expect_error([] { parse_config("{\"format_version\": 1", "c.json"); }, ErrorCode::kInvalidConfig,
               {"c.json: invalid JSON"});
  expect_error([] { parse_config("", "c.json"); }, ErrorCode::kInvalidConfig, {"invalid JSON"});
  expect_error([] { parse_config("{} x", "c.json"); }, ErrorCode::kInvalidConfig, {"invalid JSON"});
}

TEST(ConfigText, TopLevelNotAnObject) {
  expect_error([] { parse_config("[1, 2]", "c.json"); }, ErrorCode::kInvalidConfig,
               {"c.json: ", "expected an object, got an array"});
}

TEST(ConfigText, DuplicateKey) {
  std::string text = fixture("tiny.json");
  const size_t lm = text.find("\"lm\": {");
  ASSERT_NE(lm, std::string::npos);
  text.insert(lm + 7, "\"dim\": 64, ");
  expect_error([&] { parse_config(text, "c.json"); }, ErrorCode::kInvalidConfig,
               {"c.json", "duplicate key \"dim\" in lm"});
  std::string top = fixture("tiny.json");
  top.insert(1, "\"format_version\": 1,");
  expect_error([&] { parse_config(top, "c.json"); }, ErrorCode::kInvalidConfig,
               {"duplicate key \"format_version\" in top level"});
}

TEST(ConfigText, NestingTooDeep) {
  json j = tiny_json();
  std::string deep = std::string(100, '[') + std::string(100, ']');
  std::string text = j.dump();
  text.insert(text.size() - 1, ",\"provenance_deep\":" + deep);
  expect_error([&] { parse_config(text, "c.json"); }, ErrorCode::kInvalidConfig, {"nested deeper"});
}

TEST(ConfigText, TooLarge) {
  expect_error([] { parse_config(std::string(kMaxConfigBytes + 1, ' '), "c.json"); },
               ErrorCode::kInvalidConfig, {"c.json", "more than the limit"});
}

TEST(ConfigText, HostileKeysAreEscapedInMessages) {
  json j = tiny_json();
  j["lm"]["\x1b[31mred"] = 1;
  const std::string msg = expect_error([&] { parse_config(j.dump(), "c.json"); },
                                       ErrorCode::kInvalidConfig, {"unknown key", "\\x1b"});
  EXPECT_EQ(msg.find('\x1b'), std::string::npos);
}

TEST(ConfigText, ProvenanceIsFreeForm) {
  json j = tiny_json();
  j["provenance"] = {{"anything", {{"goes", {1, 2, 3}}}}, {"x", nullptr}};
  const ModelConfig c = parse_config(j.dump());
  EXPECT_EQ(json::parse(c.provenance_json), j["provenance"]);
}

}  // namespace
}  // namespace flamingo::io
