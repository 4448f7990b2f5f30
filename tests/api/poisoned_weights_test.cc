// NaN and Inf are legal safetensors values, and the big matrices are not scanned at load (that
// would page in every weight). A model with a poisoned matrix must still never print garbage:
// generation and scoring stop with Error(kCorruptFile) naming the model directory at the first
// non-finite logit (reliability spec row W14).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>

#include "flamingo/flamingo.h"
#include "io/safetensors.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path fixture() { return testing::test_data_dir() / "parity" / "openflamingo"; }

// A copy of the fixture with element `index` of `tensor` (F32) replaced by `value`.
void write_poisoned_copy(const fs::path& to, const std::string& tensor, int64_t index,
                         float value) {
  for (const auto& e : fs::directory_iterator(fixture()))
    if (e.is_regular_file()) fs::copy_file(e.path(), to / e.path().filename());
  std::string bytes = testing::read_file(fixture() / "model.safetensors");
  const io::SafetensorsFile file = io::SafetensorsFile::from_memory(bytes, "model.safetensors");
  const io::TensorView* t = file.find(tensor);
  ASSERT_NE(t, nullptr) << tensor;
  ASSERT_EQ(t->dtype, io::DType::kF32);
  ASSERT_LT(index, t->numel);
  const size_t at = 8 + file.header_bytes() + t->offset + static_cast<size_t>(index) * 4;
  std::memcpy(bytes.data() + at, &value, 4);
  testing::write_file(to / "model.safetensors", bytes);
}

void expect_non_finite_error(const std::function<void()>& f, const fs::path& dir) {
  try {
    f();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite logit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
}

Image image() { return Image::from_file((fixture() / "images" / "0.png").string()); }

TEST(PoisonedWeights, NanInAnLmMatrixStopsGenerationAndScoring) {
  testing::TempDir dir;
  write_poisoned_copy(dir.path(), "lm.layers.1.self_attn.q_proj.weight", 5,
                      std::numeric_limits<float>::quiet_NaN());
  const auto model =
      Model::load(dir.path().string());  // loads: values of big matrices are not scanned
  Session s(model);
  const Prompt p("<image>Output:", {image()});
  expect_non_finite_error([&] { s.generate(p); }, dir.path());
  GenerateOptions beams;
  beams.num_beams = 2;
  expect_non_finite_error([&] { s.generate(p, beams); }, dir.path());
  expect_non_finite_error([&] { s.score(p, {" a cat"}); }, dir.path());
}

TEST(PoisonedWeights, InfInTheEmbeddingOfAPromptToken) {
  testing::TempDir dir;
  // Every row of the embedding table is a token; poisoning all 24 values of BOS's row (id 1 in
  // the fixture's vocabulary) reaches the logits through the first prompt position.
  write_poisoned_copy(dir.path(), "lm.embed_tokens.weight", 24 + 3,
                      std::numeric_limits<float>::infinity());
  const auto model = Model::load(dir.path().string());
  Session s(model);
  expect_non_finite_error([&] { s.generate(Prompt("<image>Output:", {image()})); }, dir.path());
}

TEST(PoisonedWeights, TheUnpoisonedFixtureGeneratesNormally) {
  Session s(Model::load(fixture().string()));
  GenerateOptions g;
  g.max_new_tokens = 4;
  EXPECT_NO_THROW(s.generate(Prompt("<image>Output:", {image()}), g));
}

}  // namespace
}  // namespace flamingo
