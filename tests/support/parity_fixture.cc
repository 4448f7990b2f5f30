#include "support/parity_fixture.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "support/test_util.h"

namespace flamingo::testing {

namespace fs = std::filesystem;

std::vector<std::string> parity_fixture_names() {
  std::vector<std::string> names;
  const fs::path root = test_data_dir() / "parity";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return names;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::is_regular_file(e.path() / "reference" / "expected.safetensors"))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

fs::path parity_fixture_dir(const std::string& name) { return test_data_dir() / "parity" / name; }

std::vector<float> floats_of(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (t == nullptr) throw std::runtime_error("expected.safetensors lacks " + name);
  return io::read_f32(*t, false);
}

std::vector<int32_t> ids_of(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (t == nullptr || t->dtype != io::DType::kI64)
    throw std::runtime_error("expected.safetensors lacks I64 " + name);
  std::vector<int32_t> out(static_cast<size_t>(t->numel));
  for (int64_t i = 0; i < t->numel; ++i) {
    int64_t v;
    std::memcpy(&v, t->data + i * 8, 8);
    out[static_cast<size_t>(i)] = static_cast<int32_t>(v);
  }
  return out;
}

FixtureModel::FixtureModel(const fs::path& dir)
    : config(io::load_config(dir / "config.json")),
      weights(io::ModelWeights::open_directory(dir)),
      source((io::check_weights(config, weights), weights)),
      net(std::make_unique<model::FlamingoModel>(config, source)),
      expected(io::SafetensorsFile::open(dir / "reference" / "expected.safetensors")) {}

generate::MediaTracker media_tracker(const io::ModelConfig& config) {
  return generate::MediaTracker(static_cast<int32_t>(config.tokens.image),
                                static_cast<int32_t>(config.tokens.eos), config.xattn.reset_at_eos);
}

std::vector<const model::MediaKV*> media_per_token(generate::MediaTracker& tracker,
                                                   const std::vector<int32_t>& ids,
                                                   const std::vector<model::MediaKV>& media) {
  std::vector<const model::MediaKV*> media_of;
  for (int32_t id : ids) {
    const int32_t m = tracker.advance(id);
    if (m > static_cast<int32_t>(media.size()))
      throw std::runtime_error("prompt refers to media " + std::to_string(m) + " of " +
                               std::to_string(media.size()));
    media_of.push_back(m > 0 ? &media[static_cast<size_t>(m - 1)] : nullptr);
  }
  return media_of;
}

void FixtureIsaTest::SetUp() {
  const kernels::Isa isa = std::get<1>(GetParam());
  if (isa == kernels::Isa::kAvx2 && !kernels::cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  isa_.emplace(isa);
}

std::string fixture_isa_name(
    const ::testing::TestParamInfo<std::tuple<std::string, kernels::Isa>>& info) {
  return std::get<0>(info.param) +
         (std::get<1>(info.param) == kernels::Isa::kAvx2 ? "_avx2" : "_scalar");
}

}  // namespace flamingo::testing
