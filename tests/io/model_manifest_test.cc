#include "io/model_manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "support/error_matchers.h"
#include "support/model_fixture.h"
#include "support/safetensors_writer.h"
#include "support/test_util.h"

namespace flamingo::io {
namespace {

using flamingo::testing::expect_error;
using flamingo::testing::filled_tensor;
using flamingo::testing::TensorSpec;

using Shape = std::vector<int64_t>;

ModelConfig minimal_config() {
  return load_config(flamingo::testing::test_data_dir() / "config" / "minimal.json");
}

std::map<std::string, std::vector<Shape>> by_name(const ModelConfig& c) {
  std::map<std::string, std::vector<Shape>> m;
  for (const auto& e : expected_tensors(c)) {
    EXPECT_TRUE(m.emplace(e.name, e.shapes).second) << "listed twice: " << e.name;
  }
  return m;
}

// Weights built from specs, sorted widest dtype first so every tensor stays aligned.
ModelWeights weights_of(std::vector<TensorSpec> specs) {
  auto width = [](const std::string& d) {
    return d == "F32" ? 4 : (d == "F16" || d == "BF16" || d == "I16") ? 2 : d == "I32" ? 4 : 1;
  };
  std::stable_sort(specs.begin(), specs.end(), [&](const TensorSpec& a, const TensorSpec& b) {
    return width(a.dtype) > width(b.dtype);
  });
  std::vector<SafetensorsFile> files;
  files.push_back(
      SafetensorsFile::from_memory(flamingo::testing::safetensors_bytes(specs), "w.safetensors"));
  return ModelWeights::from_files(std::move(files));
}

void replace(std::vector<TensorSpec>& specs, TensorSpec t) {
  for (auto& s : specs)
    if (s.name == t.name) {
      s = std::move(t);
      return;
    }
  specs.push_back(std::move(t));
}

void remove(std::vector<TensorSpec>& specs, const std::string& name) {
  specs.erase(std::remove_if(specs.begin(), specs.end(),
                             [&](const TensorSpec& s) { return s.name == name; }),
              specs.end());
}

// ---- The manifest itself ----------------------------------------------------------------------

TEST(Manifest, TinyConfigListsTheDocumentedTensors) {
  const auto m = by_name(flamingo::testing::tiny_config());
  const std::map<std::string, Shape> spot = {
      {"vision.stem.conv1.weight", {4, 3, 3, 3}},
      {"vision.stem.conv1.bias", {4}},
      {"vision.stem.conv1.gain", {4, 1, 1, 1}},
      {"vision.stem.conv4.weight", {8, 8, 3, 3}},
      {"vision.stages.0.0.downsample.conv.weight", {16, 8, 1, 1}},
      {"vision.stages.0.0.conv1.weight", {8, 8, 1, 1}},
      {"vision.stages.0.0.conv2.weight", {8, 8, 3, 3}},
      {"vision.stages.0.0.conv2b.gain", {8, 1, 1, 1}},
      {"vision.stages.2.0.conv3.weight", {32, 16, 1, 1}},
      {"vision.stages.2.0.downsample.conv.weight", {32, 16, 1, 1}},
      {"vision.stages.3.0.attn_last.fc1.weight", {16, 32, 1, 1}},
      {"vision.stages.3.0.attn_last.fc1.bias", {16}},
      {"vision.stages.3.0.attn_last.fc2.weight", {32, 16, 1, 1}},
      {"resampler.latents", {4, 32}},
      {"resampler.layers.0.norm_media.bias", {32}},
      {"resampler.layers.0.attn.q_proj.weight", {16, 32}},
      {"resampler.layers.0.attn.o_proj.weight", {32, 16}},
      {"resampler.layers.0.mlp.up_proj.weight", {64, 32}},
      {"resampler.layers.0.mlp.down_proj.weight", {32, 64}},
      {"resampler.norm.weight", {32}},
      {"xattn.0.attn_gate", {1}},
      {"xattn.1.ff_gate", {1}},
      {"xattn.0.attn_norm.bias", {32}},
      {"xattn.0.attn.q_proj.weight", {16, 32}},
      {"xattn.0.attn.k_proj.weight", {16, 32}},
      {"xattn.1.attn.o_proj.weight", {32, 16}},
      {"xattn.1.mlp.up_proj.weight", {64, 32}},
      {"lm.embed_tokens.weight", {300, 32}},
      {"lm.layers.1.self_attn.q_proj.weight", {32, 32}},
      {"lm.layers.1.self_attn.k_proj.weight", {16, 32}},
      {"lm.layers.1.self_attn.o_proj.weight", {32, 32}},
      {"lm.layers.1.mlp.down_proj.weight", {32, 64}},
      {"lm.norm.weight", {32}},
      {"lm.lm_head.weight", {300, 32}},
  };
  for (const auto& [name, shape] : spot) {
    ASSERT_TRUE(m.count(name)) << name;
    EXPECT_EQ(m.at(name), std::vector<Shape>{shape}) << name;
  }
  EXPECT_EQ(m.at("vision.stages.1.0.skipinit_gain"), (std::vector<Shape>{{}, {1}}));
  for (const char* absent :
       {"vision.final_conv.weight", "resampler.frame_embs", "resampler.media_time_embs",
        "resampler.layers.0.attn.q_norm.weight", "xattn.2.attn_gate", "xattn.0.attn.q_norm.weight",
        "xattn.0.mlp.gate_proj.weight", "lm.layers.2.input_layernorm.weight"})
    EXPECT_FALSE(m.count(absent)) << absent;
  // stem 4×3 + 4 projection blocks × 20 + resampler 15 + 2 gated blocks × 12 + LM 21.
  EXPECT_EQ(m.size(), 12u + 80u + 15u + 24u + 21u);
}

TEST(Manifest, ConfigOptionsChangeTheList) {
  const auto m = by_name(minimal_config());
  // ws_folded: no gains; final_act tap: a final conv.
  EXPECT_FALSE(m.count("vision.stem.conv1.gain"));
  EXPECT_EQ(m.at("vision.final_conv.weight"), (std::vector<Shape>{{64, 32, 1, 1}}));
  EXPECT_TRUE(m.count("vision.final_conv.bias"));
  EXPECT_FALSE(m.count("vision.final_conv.gain"));
  // Resampler: q/k LayerNorm with bias, frame and media-time embeddings, ff_mult 4.
  EXPECT_EQ(m.at("resampler.layers.0.attn.k_norm.bias"), (std::vector<Shape>{{8}}));
  EXPECT_EQ(m.at("resampler.frame_embs"), (std::vector<Shape>{{2, 64}}));
  EXPECT_EQ(m.at("resampler.media_time_embs"), (std::vector<Shape>{{3, 64}}));
  EXPECT_EQ(m.at("resampler.layers.0.mlp.up_proj.weight"), (std::vector<Shape>{{256, 64}}));
  // IDEFICS placement, every 2 over 3 layers: blocks before layers 0 and 2.
  EXPECT_TRUE(m.count("xattn.1.attn_gate"));
  EXPECT_FALSE(m.count("xattn.2.attn_gate"));
  // RMSNorm (no bias), q/k RMSNorm (weight only), SwiGLU, vector gates.
  EXPECT_FALSE(m.count("xattn.0.attn_norm.bias"));
  EXPECT_FALSE(m.count("xattn.0.ff_norm.bias"));
  EXPECT_EQ(m.at("xattn.0.attn.q_norm.weight"), (std::vector<Shape>{{8}}));
  EXPECT_FALSE(m.count("xattn.0.attn.q_norm.bias"));
  EXPECT_EQ(m.at("xattn.0.mlp.gate_proj.weight"), (std::vector<Shape>{{48, 32}}));
  EXPECT_EQ(m.at("xattn.0.attn_gate"), (std::vector<Shape>{{32}}));
  EXPECT_EQ(m.at("xattn.0.attn.k_proj.weight"), (std::vector<Shape>{{16, 64}}));
  // GQA with one KV head, tied embeddings.
  EXPECT_EQ(m.at("lm.layers.2.self_attn.v_proj.weight"), (std::vector<Shape>{{8, 32}}));
  EXPECT_FALSE(m.count("lm.lm_head.weight"));
}

TEST(Manifest, OnlyMatricesAreQuantizable) {
  for (const auto& e : expected_tensors(flamingo::testing::tiny_config())) {
    const bool matrix =
        e.name.find("_proj.weight") != std::string::npos || e.name == "lm.lm_head.weight" ||
        e.name.find("attn_last.fc") != std::string::npos && e.name.ends_with(".weight");
    EXPECT_EQ(e.quantizable, matrix) << e.name;  // convs are not: ws_folded is false
    if (e.quantizable) {
      int64_t n = 1;
      for (int64_t d : e.shapes[0]) n *= d;
      EXPECT_EQ(e.rows * e.cols, n) << e.name;
      EXPECT_EQ(e.rows, e.shapes[0][0]) << e.name;
    }
  }
}

// ---- Checking weights -------------------------------------------------------------------------

TEST(WeightCheck, CompleteWeightsPassInEveryFloatType) {
  for (const ModelConfig& c : {flamingo::testing::tiny_config(), minimal_config()})
    for (const char* dtype : {"F32", "F16", "BF16"}) {
      const auto w = weights_of(flamingo::testing::random_weights(c, 7, dtype));
      EXPECT_EQ(find_weight_problems(c, w), std::vector<std::string>{}) << dtype;
      EXPECT_NO_THROW(check_weights(c, w));
    }
}

TEST(WeightCheck, ModelDirectoryRoundTrip) {
  flamingo::testing::TempDir dir;
  const ModelConfig c = flamingo::testing::tiny_config();
  flamingo::testing::write_model_dir(dir.path(), c, 3);
  const ModelConfig back = load_config(dir.path());
  EXPECT_TRUE(back == c);
  EXPECT_NO_THROW(check_weights(back, ModelWeights::open_directory(dir.path())));
}

TEST(WeightCheck, ParityFixturesFromTheConverterMatch) {
  // Written by tools/convert from the peers' own modules: an independent check of the names.
  namespace fs = std::filesystem;
  const fs::path root = flamingo::testing::test_data_dir() / "parity";
  if (!fs::exists(root)) GTEST_SKIP() << "no parity fixtures";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    const fs::path model = entry.path() / "model.safetensors";
    if (!fs::exists(model)) continue;
    const ModelConfig c = load_config(entry.path());
    std::vector<SafetensorsFile> files;
    files.push_back(SafetensorsFile::open(model));
    const auto w = ModelWeights::from_files(std::move(files));
    EXPECT_EQ(find_weight_problems(c, w), std::vector<std::string>{}) << entry.path();
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(WeightCheck, MissingTensor) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  remove(specs, "lm.norm.weight");
  remove(specs, "vision.stages.1.0.skipinit_gain");
  expect_error(
      [&] { check_weights(c, weights_of(specs)); }, ErrorCode::kModelMismatch,
      {"w.safetensors", "2 problems", "missing tensor lm.norm.weight (expected shape [32])",
       "missing tensor vision.stages.1.0.skipinit_gain (expected shape [] or [1])"});
}

TEST(WeightCheck, WrongShape) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  replace(specs, filled_tensor("lm.layers.0.self_attn.q_proj.weight", "F32", {32, 16}));
  replace(specs, filled_tensor("xattn.0.attn_gate", "F32", {32}));  // vector gate, config: scalar
  replace(specs, filled_tensor("vision.stages.0.0.skipinit_gain", "F32", {1}));  // allowed
  expect_error(
      [&] { check_weights(c, weights_of(specs)); }, ErrorCode::kModelMismatch,
      {"2 problems", "\"lm.layers.0.self_attn.q_proj.weight\": shape [32, 16], expected [32, 32]",
       "\"xattn.0.attn_gate\": shape [32], expected [1]"});
}

TEST(WeightCheck, UnexpectedTensor) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  specs.push_back(filled_tensor("lm.layers.2.mlp.up_proj.weight", "F32", {64, 32}));
  specs.push_back(filled_tensor("head.fc.weight", "F32", {10, 32}));
  expect_error([&] { check_weights(c, weights_of(specs)); }, ErrorCode::kModelMismatch,
               {"2 unexpected tensors: \"head.fc.weight\", \"lm.layers.2.mlp.up_proj.weight\""});
}

TEST(WeightCheck, DtypeNotAllowed) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  replace(specs, filled_tensor("lm.norm.weight", "I32", {32}));
  replace(specs, filled_tensor("resampler.latents", "F64", {4, 32}));
  replace(specs, filled_tensor("lm.layers.0.input_layernorm.weight", "I8", {32}));
  replace(specs, filled_tensor("lm.embed_tokens.weight", "I8", {300, 32}));
  expect_error([&] { check_weights(c, weights_of(specs)); }, ErrorCode::kModelMismatch,
               {"4 problems", "\"lm.norm.weight\": dtype I32 is not allowed",
                "\"resampler.latents\": dtype F64 is not allowed",
                "\"lm.layers.0.input_layernorm.weight\": dtype I8 is not allowed",
                "\"lm.embed_tokens.weight\": dtype I8 is not allowed"});
}

TEST(WeightCheck, QuantisedPairsAccepted) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  replace(specs, filled_tensor("lm.layers.0.self_attn.q_proj.weight", "I8", {32, 32}));
  specs.push_back(filled_tensor("lm.layers.0.self_attn.q_proj.weight_scale", "F16", {32, 1}));
  replace(specs, filled_tensor("lm.lm_head.weight", "U8", {300, 16}));
  specs.push_back(filled_tensor("lm.lm_head.weight_scale", "F16", {300, 1}));
  replace(specs, filled_tensor("xattn.1.mlp.down_proj.weight", "U8", {32, 32}));
  specs.push_back(filled_tensor("xattn.1.mlp.down_proj.weight_scale", "F16", {32, 2}));
  EXPECT_EQ(find_weight_problems(c, weights_of(specs)), std::vector<std::string>{});
  // A folded conv with 32 input features may be quantised too.
  const ModelConfig m = minimal_config();
  auto folded = flamingo::testing::random_weights(m, 1);
  replace(folded, filled_tensor("vision.final_conv.weight", "I8", {64, 32}));
  folded.push_back(filled_tensor("vision.final_conv.weight_scale", "F16", {64, 1}));
  EXPECT_EQ(find_weight_problems(m, weights_of(folded)), std::vector<std::string>{});
}

TEST(WeightCheck, QuantisedPairBroken) {
  const ModelConfig c = flamingo::testing::tiny_config();
  auto specs = flamingo::testing::random_weights(c, 1);
  // Scale missing.
  replace(specs, filled_tensor("lm.layers.0.self_attn.q_proj.weight", "I8", {32, 32}));
  // Scale of the wrong shape and of the wrong dtype.
  replace(specs, filled_tensor("lm.layers.0.self_attn.k_proj.weight", "I8", {16, 32}));
  specs.push_back(filled_tensor("lm.layers.0.self_attn.k_proj.weight_scale", "F16", {16, 2}));
  replace(specs, filled_tensor("lm.layers.0.self_attn.v_proj.weight", "I8", {16, 32}));
  specs.push_back(filled_tensor("lm.layers.0.self_attn.v_proj.weight_scale", "F32", {16, 1}));
  // q4_0 stored with q8_0's shape.
  replace(specs, filled_tensor("lm.layers.0.self_attn.o_proj.weight", "U8", {32, 32}));
  specs.push_back(filled_tensor("lm.layers.0.self_attn.o_proj.weight_scale", "F16", {32, 1}));
  // In-features not a multiple of 32 (resampler o_proj is [32, 16]).
  replace(specs, filled_tensor("resampler.layers.0.attn.o_proj.weight", "I8", {32, 16}));
  // A conv quantised although its standardisation is not folded.
  replace(specs, filled_tensor("vision.stages.3.0.downsample.conv.weight", "I8", {32, 32}));
  // A scale beside a float weight.
  specs.push_back(filled_tensor("lm.layers.1.mlp.up_proj.weight_scale", "F16", {64, 1}));
  const std::string msg = expect_error(
      [&] { check_weights(c, weights_of(specs)); }, ErrorCode::kModelMismatch,
      {"7 problems", "missing tensor lm.layers.0.self_attn.q_proj.weight_scale (F16 [32, 1]",
       "\"lm.layers.0.self_attn.k_proj.weight_scale\": F16 [16, 2], expected F16 [16, 1]",
       "\"lm.layers.0.self_attn.v_proj.weight_scale\": F32 [16, 1], expected F16 [16, 1]",
       "\"lm.layers.0.self_attn.o_proj.weight\": shape [32, 32], expected [32, 16] for q4_0",
       "\"resampler.layers.0.attn.o_proj.weight\": quantised (I8) but its 16 input features",
       "\"vision.stages.3.0.downsample.conv.weight\": dtype I8 is not allowed",
       "1 unexpected tensor: \"lm.layers.1.mlp.up_proj.weight_scale\""});
}

TEST(WeightCheck, ManyProblemsAreSummarised) {
  const ModelConfig c = flamingo::testing::tiny_config();
  const auto w = weights_of({filled_tensor("unrelated", "F32", {1})});
  const auto problems = find_weight_problems(c, w);
  EXPECT_EQ(problems.size(), expected_tensors(c).size() + 1);
  const std::string msg = expect_error([&] { check_weights(c, w); }, ErrorCode::kModelMismatch,
                                       {"153 problems", "... and 123 more"});
  EXPECT_LT(msg.size(), 4000u);
}

}  // namespace
}  // namespace flamingo::io
