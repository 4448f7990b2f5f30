// The parity fixtures under tests/data/parity (tiny random checkpoints converted by
// tools/convert.py, with the tensors tools/make_parity_fixtures.py recorded from the peers'
// PyTorch code): loading one, reading its recorded tensors, and running tests once per
// (fixture, instruction-set path).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "generate/media_tracker.h"
#include "io/config.h"
#include "io/model_manifest.h"
#include "io/safetensors.h"
#include "kernels/cpu.h"
#include "model/flamingo_model.h"
#include "model/safetensors_weight_source.h"
#include "support/isa_scope.h"

namespace flamingo::testing {

// Names of the fixture directories that hold reference/expected.safetensors, sorted.
std::vector<std::string> parity_fixture_names();

std::filesystem::path parity_fixture_dir(const std::string& name);

// A recorded tensor as floats / as int32 token ids (stored as I64); throws if it is absent.
std::vector<float> floats_of(const io::SafetensorsFile& f, const std::string& name);
std::vector<int32_t> ids_of(const io::SafetensorsFile& f, const std::string& name);

// A fixture's model, built straight from its directory, beside its recorded tensors. Members
// are declared in the order they depend on each other (the network borrows the weights).
struct FixtureModel {
  explicit FixtureModel(const std::filesystem::path& dir);
  FixtureModel(const FixtureModel&) = delete;
  FixtureModel& operator=(const FixtureModel&) = delete;

  io::ModelConfig config;
  io::ModelWeights weights;
  model::SafetensorsWeightSource source;
  std::unique_ptr<model::FlamingoModel> net;
  io::SafetensorsFile expected;
};

// A tracker with the config's image marker, end-of-chunk and reset rules.
generate::MediaTracker media_tracker(const io::ModelConfig& config);

// Advances `tracker` over `ids` and returns which media each token cross-attends to (nullptr:
// none yet); a token that would refer past `media` throws.
std::vector<const model::MediaKV*> media_per_token(generate::MediaTracker& tracker,
                                                   const std::vector<int32_t>& ids,
                                                   const std::vector<model::MediaKV>& media);

// Base of tests parameterised by (fixture name, ISA): the body runs with that ISA active and
// is skipped on a CPU without it.
class FixtureIsaTest : public ::testing::TestWithParam<std::tuple<std::string, kernels::Isa>> {
 protected:
  void SetUp() override;
  void TearDown() override { isa_.reset(); }
  const std::string& fixture_name() const { return std::get<0>(GetParam()); }

 private:
  std::optional<ScopedIsa> isa_;
};

// "openflamingo_avx2"-style test names for FixtureIsaTest instantiations.
std::string fixture_isa_name(
    const ::testing::TestParamInfo<std::tuple<std::string, kernels::Isa>>& info);

}  // namespace flamingo::testing
