// Same inputs → bitwise-identical logits whatever the thread count and however often the model
// runs: every stage (vision encoder, resampler, visual K/V, prefill, cached decode steps) on
// the parity fixtures, with pools of 1, 2 and 3 threads, on each ISA this CPU has. Results are
// compared with memcmp, not a tolerance: work is split across threads by output rows/columns,
// never by the reduction dimension, so no sum may change order.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "generate/media_tracker.h"
#include "io/config.h"
#include "io/model_manifest.h"
#include "io/safetensors.h"
#include "kernels/cpu.h"
#include "model/flamingo_model.h"
#include "model/safetensors_weight_source.h"
#include "support/parity_fixture.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

struct Trace {
  std::vector<std::vector<float>> tensors;  // every intermediate, in order
};

// Runs the fixture's reference inputs (pixels and prompt ids from expected.safetensors) through
// the whole model, then 6 greedy decode steps, recording every output.
Trace run(const model::FlamingoModel& net, const io::ModelConfig& config,
          const io::SafetensorsFile& expected, int threads) {
  ThreadPool pool(threads);
  Trace trace;
  std::vector<model::MediaKV> media;
  for (int i = 0; expected.find("pixels." + std::to_string(i)) != nullptr; ++i) {
    const io::TensorView& px = *expected.find("pixels." + std::to_string(i));
    const std::vector<float> pixels = io::read_f32(px, false);
    const int64_t frames = px.shape[0];
    const int64_t per = static_cast<int64_t>(pixels.size()) / frames;
    std::vector<std::vector<float>> features;
    for (int64_t f = 0; f < frames; ++f) {
      features.push_back(net.encode_frame(pixels.data() + f * per, pool));
      trace.tensors.push_back(features.back());
    }
    const std::vector<float> tokens = net.resample(features, i, pool);
    trace.tensors.push_back(tokens);
    media.push_back(net.visual_kv(tokens, pool));
  }
  const std::vector<int32_t> ids = testing::ids_of(expected, "prompt_ids");
  generate::MediaTracker tracker = testing::media_tracker(config);
  const std::vector<const model::MediaKV*> media_of = testing::media_per_token(tracker, ids, media);
  const int64_t n = static_cast<int64_t>(ids.size()), d = config.lm.dim,
                vocab = config.lm.vocab_size;
  model::KvCache cache;
  net.reserve_cache(cache, n + 8);
  std::vector<float> h(static_cast<size_t>(n * d)), logits(static_cast<size_t>(n * vocab));
  net.forward(ids.data(), n, media_of.data(), cache, h.data(), pool);
  net.logits(h.data(), n, logits.data(), pool);
  trace.tensors.push_back(logits);
  std::vector<float> last(logits.end() - vocab, logits.end());
  for (int step = 0; step < 6; ++step) {
    int32_t id = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (last[static_cast<size_t>(v)] > last[static_cast<size_t>(id)])
        id = static_cast<int32_t>(v);
    const int32_t m = tracker.advance(id);
    const model::MediaKV* mk = m > 0 ? &media[static_cast<size_t>(m - 1)] : nullptr;
    std::vector<float> h1(static_cast<size_t>(d));
    net.forward(&id, 1, &mk, cache, h1.data(), pool);
    net.logits(h1.data(), 1, last.data(), pool);
    trace.tensors.push_back(last);
  }
  return trace;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

using Determinism = testing::FixtureIsaTest;

TEST_P(Determinism, LogitsAreBitwiseIdenticalForAnyThreadCountAndAcrossRuns) {
  const testing::FixtureModel fixture(testing::parity_fixture_dir(fixture_name()));
  const io::ModelConfig& config = fixture.config;
  const model::FlamingoModel& net = *fixture.net;
  const io::SafetensorsFile& expected = fixture.expected;

  const Trace one = run(net, config, expected, 1);
  ASSERT_GT(one.tensors.size(), 7u);
  for (int threads : {1, 2, 3}) {
    const Trace other = run(net, config, expected, threads);
    ASSERT_EQ(other.tensors.size(), one.tensors.size());
    for (size_t i = 0; i < one.tensors.size(); ++i)
      EXPECT_TRUE(bitwise_equal(one.tensors[i], other.tensors[i]))
          << "output " << i << " differs with " << threads << " threads";
  }
  // A second model built from the same files computes the same bits (no state kept across
  // models, no uninitialised memory read).
  model::SafetensorsWeightSource source2(fixture.weights);
  const model::FlamingoModel net2(config, source2);
  const Trace again = run(net2, config, expected, 2);
  for (size_t i = 0; i < one.tensors.size(); ++i)
    EXPECT_TRUE(bitwise_equal(one.tensors[i], again.tensors[i]))
        << "output " << i << " differs on a second model";
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, Determinism,
    ::testing::Combine(::testing::Values("openflamingo", "idefics", "paper", "video"),
                       ::testing::Values(kernels::Isa::kScalar, kernels::Isa::kAvx2)),
    testing::fixture_isa_name);

}  // namespace
}  // namespace flamingo
