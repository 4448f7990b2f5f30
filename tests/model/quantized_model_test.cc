// Quantised models written by tools/convert.py --dtype q8_0|q4_0 (the parity fixtures
// quant_q8_0 and quant_q4_0; every stage against the reference on the dequantised weights is
// checked by parity_test.cc). Here: the converter's quantiser and the engine's agree bit for
// bit, and the quantised model stays close to the f32 model it was made from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "generate/media_tracker.h"
#include "io/config.h"
#include "io/model_manifest.h"
#include "io/safetensors.h"
#include "kernels/matmul.h"
#include "model/flamingo_model.h"
#include "model/safetensors_weight_source.h"
#include "support/parity_fixture.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

using testing::floats_of;
using testing::ids_of;

fs::path fixture(const std::string& qtype) { return testing::parity_fixture_dir("quant_" + qtype); }

class QuantizedFixture : public ::testing::TestWithParam<std::string> {};

// The two sample matrices the fixture generator recorded: the f32 values it quantised and its
// own dequantisation of the file. The engine must produce the same codes and the same values.
TEST_P(QuantizedFixture, ConverterAndEngineQuantiseAndDequantiseIdentically) {
  const fs::path dir = fixture(GetParam());
  const io::ModelWeights weights = io::ModelWeights::open_directory(dir);
  const io::SafetensorsFile expected =
      io::SafetensorsFile::open(dir / "reference" / "expected.safetensors");
  const bool q8 = GetParam() == "q8_0";
  int samples = 0;
  for (const std::string& name : {std::string("vision.stages.1.0.conv1.weight"),
                                  std::string("lm.layers.1.mlp.up_proj.weight")}) {
    SCOPED_TRACE(name);
    const io::TensorView* src_t = expected.find("quant_source." + name);
    ASSERT_NE(src_t, nullptr);
    const int64_t n = src_t->shape[0], k = src_t->shape[1];
    const std::vector<float> src = floats_of(expected, "quant_source." + name);
    const std::vector<float> want_deq = floats_of(expected, "quant_dequantized." + name);
    model::SafetensorsWeightSource source(weights);
    const kernels::WeightView view = source.matrix(name, n, k);
    ASSERT_EQ(view.type, q8 ? kernels::WeightType::kQ8_0 : kernels::WeightType::kQ4_0);

    const size_t row_bytes = static_cast<size_t>(q8 ? k : k / 2);
    std::vector<uint8_t> codes(row_bytes);
    std::vector<uint16_t> scales(static_cast<size_t>(k / 32));
    std::vector<float> deq(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      if (q8)
        kernels::quantize_row_q8_0(src.data() + r * k, k, reinterpret_cast<int8_t*>(codes.data()),
                                   scales.data());
      else
        kernels::quantize_row_q4_0(src.data() + r * k, k, codes.data(), scales.data());
      const uint8_t* file_codes =
          static_cast<const uint8_t*>(view.data) + r * static_cast<int64_t>(row_bytes);
      ASSERT_EQ(0, std::memcmp(codes.data(), file_codes, row_bytes)) << "codes of row " << r;
      ASSERT_EQ(0, std::memcmp(scales.data(), view.scales + r * (k / 32), scales.size() * 2))
          << "scales of row " << r;
      kernels::dequantize_row(view, r, deq.data());
      for (int64_t i = 0; i < k; ++i)
        ASSERT_EQ(deq[static_cast<size_t>(i)], want_deq[static_cast<size_t>(r * k + i)])
            << "row " << r << " col " << i;
    }
    ++samples;
  }
  EXPECT_EQ(samples, 2);
}

// Logits of the fixture prompt through the quantised model against the f32 model before
// quantisation (the reference's logits_f32). Thresholds: normalised squared error and mean KL
// per position, with headroom over what the fixture measures (q8_0: NMSE 1.4e-4, KL 6e-5;
// q4_0: NMSE 2.2e-2, KL 1.0e-2 — rows of 64 are two blocks, so q4 is coarse here).
TEST_P(QuantizedFixture, LogitsStayCloseToTheF32Model) {
  const fs::path dir = fixture(GetParam());
  const testing::FixtureModel fixture(dir);
  const io::ModelConfig& config = fixture.config;
  ASSERT_TRUE(config.vision.ws_folded);
  const model::FlamingoModel& net = *fixture.net;
  const io::SafetensorsFile& expected = fixture.expected;
  ThreadPool pool(2);

  std::vector<model::MediaKV> media;
  for (int i = 0; expected.find("pixels." + std::to_string(i)) != nullptr; ++i) {
    const std::vector<float> pixels = floats_of(expected, "pixels." + std::to_string(i));
    std::vector<std::vector<float>> frames = {net.encode_frame(pixels.data(), pool)};
    media.push_back(net.visual_kv(net.resample(frames, i, pool), pool));
  }
  ASSERT_FALSE(media.empty());
  const std::vector<int32_t> ids = ids_of(expected, "prompt_ids");
  generate::MediaTracker tracker = testing::media_tracker(config);
  const std::vector<const model::MediaKV*> media_of = testing::media_per_token(tracker, ids, media);
  const int64_t n = static_cast<int64_t>(ids.size()), d = config.lm.dim,
                vocab = config.lm.vocab_size;
  model::KvCache cache;
  net.reserve_cache(cache, n);
  std::vector<float> h(static_cast<size_t>(n * d)), logits(static_cast<size_t>(n * vocab));
  net.forward(ids.data(), n, media_of.data(), cache, h.data(), pool);
  net.logits(h.data(), n, logits.data(), pool);
  const std::vector<float> f32 = floats_of(expected, "logits_f32");
  ASSERT_EQ(f32.size(), logits.size());

  double err = 0, ref = 0, kl_sum = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    err += (logits[i] - f32[i]) * static_cast<double>(logits[i] - f32[i]);
    ref += f32[i] * static_cast<double>(f32[i]);
  }
  for (int64_t s = 0; s < n; ++s) {
    const float* p = f32.data() + s * vocab;
    const float* q = logits.data() + s * vocab;
    const double mp = *std::max_element(p, p + vocab), mq = *std::max_element(q, q + vocab);
    double zp = 0, zq = 0;
    for (int64_t v = 0; v < vocab; ++v) zp += std::exp(p[v] - mp), zq += std::exp(q[v] - mq);
    double kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
      kl += std::exp(lp) * (lp - lq);
    }
    kl_sum += kl;
  }
  const double nmse = err / ref, mean_kl = kl_sum / static_cast<double>(n);
  const bool q8 = GetParam() == "q8_0";
  std::printf("[ quant    ] %s logits vs f32: NMSE %.3g, mean KL %.3g over %lld positions\n",
              GetParam().c_str(), nmse, mean_kl, static_cast<long long>(n));
  EXPECT_LE(nmse, q8 ? 1e-3 : 0.1);
  EXPECT_LE(mean_kl, q8 ? 1e-3 : 0.05);
  EXPECT_GT(nmse, 0.0) << "the quantised model should not be bit-identical to f32";
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizedFixture, ::testing::Values("q8_0", "q4_0"));

}  // namespace
}  // namespace flamingo
