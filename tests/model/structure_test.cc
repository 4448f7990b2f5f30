// Structural properties of the Flamingo forward pass that hold for any weights: zero gates
// give the plain LM bit for bit, a token's cross-attention sees only its own media item,
// text before the first image ignores the images, and KV-cached decoding equals recomputing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "generate/media_tracker.h"
#include "io/config.h"
#include "model/flamingo_model.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

// Deterministic random weights for any tensor name; gates can be forced to zero.
class RandomWeights : public model::WeightSource {
 public:
  explicit RandomWeights(bool zero_gates) : zero_gates_(zero_gates) {}

  kernels::WeightView matrix(const std::string& name, int64_t n, int64_t k) override {
    const std::vector<float>& t = tensor(name, n * k, 1.f / std::sqrt(static_cast<float>(k)));
    kernels::WeightView v;
    v.type = kernels::WeightType::kF32;
    v.data = t.data();
    v.n = n;
    v.k = k;
    return v;
  }
  std::vector<float> floats(const std::string& name, int64_t numel) override {
    const bool gate = name.find("_gate") != std::string::npos;
    if (gate && zero_gates_) return std::vector<float>(static_cast<size_t>(numel), 0.f);
    if (name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos) {
      std::vector<float> w = tensor(name, numel, 0.1f);
      for (float& x : w) x += 1.f;
      return w;
    }
    return tensor(name, numel, gate ? 1.f : 0.5f);
  }
  bool has(const std::string&) const override { return true; }

 private:
  const std::vector<float>& tensor(const std::string& name, int64_t numel, float scale) {
    auto it = store_.find(name);
    if (it == store_.end()) {
      const uint64_t seed = std::hash<std::string>{}(name);
      std::vector<float> t =
          testing::random_floats(static_cast<size_t>(numel), seed, -scale, scale);
      it = store_.emplace(name, std::move(t)).first;
    }
    return it->second;
  }
  bool zero_gates_;
  std::map<std::string, std::vector<float>> store_;
};

io::ModelConfig tiny_config(io::XattnPlacement placement) {
  io::ModelConfig c;
  c.vision.image_size = 64;
  c.vision.stem_channels = {4, 4, 8, 8};
  c.vision.depths = {1, 1, 2, 1};
  c.vision.widths = {16, 16, 32, 32};
  c.vision.group_width = 8;
  c.vision.final_conv_channels = 0;
  c.resampler.dim = 32;
  c.resampler.depth = 2;
  c.resampler.heads = 2;
  c.resampler.head_dim = 8;
  c.resampler.num_latents = 4;
  c.resampler.ff_mult = 2;
  c.xattn.every = 1;
  c.xattn.placement = placement;
  c.xattn.heads = 2;
  c.xattn.head_dim = 8;
  c.xattn.ff_dim = 64;
  c.lm.dim = 32;
  c.lm.layers = 3;
  c.lm.heads = 4;
  c.lm.kv_heads = 2;
  c.lm.head_dim = 8;
  c.lm.ffn_dim = 64;
  c.lm.vocab_size = 64;
  c.lm.max_seq_len = 128;
  c.tokens.bos = 1;
  c.tokens.eos = 2;
  c.tokens.pad = 62;
  c.tokens.image = 60;
  c.tokens.endofchunk = 61;
  c.tokens.special = {{"<image>", 60}, {"<|endofchunk|>", 61}, {"<PAD>", 62}};
  c.preprocess.mean = {0.5, 0.5, 0.5};
  c.preprocess.std = {0.25, 0.25, 0.25};
  io::validate_config(c, "tiny test config");
  return c;
}

constexpr int32_t kImg = 60;
constexpr int32_t kEoc = 61;

struct Harness {
  io::ModelConfig config;
  RandomWeights weights;
  model::FlamingoModel net;
  ThreadPool pool{2};

  Harness(io::XattnPlacement placement, bool zero_gates)
      : config(tiny_config(placement)), weights(zero_gates), net(config, weights) {}

  model::MediaKV media_from_seed(uint64_t seed) {
    const int64_t s = config.vision.image_size;
    const std::vector<float> pixels =
        testing::random_floats(static_cast<size_t>(s * s * 3), seed, -2.f, 2.f);
    const std::vector<float> features = net.encode_frame(pixels.data(), pool);
    return net.visual_kv(net.resample({features}, 0, pool), pool);
  }

  // Hidden states after every gated block and the final logits of every token.
  struct Run {
    std::map<int, std::vector<float>> blocks;
    std::vector<float> logits;
  };
  Run run(const std::vector<int32_t>& ids, const std::vector<model::MediaKV>& media) {
    generate::MediaTracker tracker(kImg, 2, false);
    std::vector<const model::MediaKV*> media_of;
    for (int32_t id : ids) {
      const int32_t m = tracker.advance(id);
      media_of.push_back(m > 0 ? &media[static_cast<size_t>(m - 1)] : nullptr);
    }
    const int64_t n = static_cast<int64_t>(ids.size()), d = config.lm.dim;
    model::KvCache cache;
    std::vector<float> h(static_cast<size_t>(n * d));
    Run r;
    net.forward(ids.data(), n, media_of.data(), cache, h.data(), pool,
                [&](int b, const float* hb, int64_t rows, int64_t dim) {
                  r.blocks[b].assign(hb, hb + rows * dim);
                });
    r.logits.resize(static_cast<size_t>(n * config.lm.vocab_size));
    net.logits(h.data(), n, r.logits.data(), pool);
    return r;
  }
};

bool rows_equal(const std::vector<float>& a, const std::vector<float>& b, int64_t row,
                int64_t dim) {
  return std::memcmp(a.data() + row * dim, b.data() + row * dim,
                     static_cast<size_t>(dim) * sizeof(float)) == 0;
}

const std::vector<int32_t> kPrompt = {1, 5, 6, kImg, 7, 8, kEoc, kImg, 9, 10, 11};

TEST(FlamingoStructure, ZeroGatesGiveThePlainLanguageModelBitForBit) {
  for (auto placement : {io::XattnPlacement::kOpenFlamingo, io::XattnPlacement::kIdefics}) {
    Harness hz(placement, /*zero_gates=*/true);
    const std::vector<model::MediaKV> media = {hz.media_from_seed(1), hz.media_from_seed(2)};
    const Harness::Run with_blocks = hz.run(kPrompt, media);

    // The same LM without any gated block.
    const model::Llama& lm = hz.net.lm();
    const int64_t n = static_cast<int64_t>(kPrompt.size()), d = hz.config.lm.dim;
    std::vector<float> h(static_cast<size_t>(n * d));
    lm.embed(kPrompt.data(), n, h.data());
    model::KvCache cache;
    hz.net.reserve_cache(cache, n);
    for (int l = 0; l < lm.config().layers; ++l) lm.layer_forward(l, h.data(), n, cache, hz.pool);
    std::vector<float> plain(static_cast<size_t>(n * hz.config.lm.vocab_size));
    lm.logits(h.data(), n, plain.data(), hz.pool);
    ASSERT_EQ(plain.size(), with_blocks.logits.size());
    EXPECT_EQ(0,
              std::memcmp(plain.data(), with_blocks.logits.data(), plain.size() * sizeof(float)));
  }
}

TEST(FlamingoStructure, ATokenSeesOnlyTheLatestMediaItem) {
  for (auto placement : {io::XattnPlacement::kOpenFlamingo, io::XattnPlacement::kIdefics}) {
    Harness hz(placement, /*zero_gates=*/false);
    const model::MediaKV a = hz.media_from_seed(1), a2 = hz.media_from_seed(3),
                         b = hz.media_from_seed(2);
    const Harness::Run r1 = hz.run(kPrompt, {a, b});
    const Harness::Run r2 = hz.run(kPrompt, {a2, b});
    const int64_t d = hz.config.lm.dim;
    // In the first gated block every input is the same, so rows attending to image 2
    // (positions 7..10) must not change when image 1 is replaced; rows attending to image 1
    // (3..6) must (else this test could not fail).
    const std::vector<float>& x1 = r1.blocks.at(0);
    const std::vector<float>& x2 = r2.blocks.at(0);
    for (int64_t row = 7; row < 11; ++row) EXPECT_TRUE(rows_equal(x1, x2, row, d)) << "row " << row;
    for (int64_t row = 3; row < 7; ++row) EXPECT_FALSE(rows_equal(x1, x2, row, d)) << "row " << row;
  }
}

TEST(FlamingoStructure, TextBeforeTheFirstImageIgnoresTheImages) {
  Harness hz(io::XattnPlacement::kOpenFlamingo, /*zero_gates=*/false);
  const Harness::Run r1 = hz.run(kPrompt, {hz.media_from_seed(1), hz.media_from_seed(2)});
  const Harness::Run r2 = hz.run(kPrompt, {hz.media_from_seed(4), hz.media_from_seed(5)});
  const int64_t v = hz.config.lm.vocab_size;
  for (int64_t row = 0; row < 3; ++row)
    EXPECT_TRUE(rows_equal(r1.logits, r2.logits, row, v)) << "row " << row;
  // ... while the dense half still changed them: with gates on, the first block is not the
  // identity.
  Harness plain(io::XattnPlacement::kOpenFlamingo, /*zero_gates=*/true);
  const Harness::Run r0 = plain.run(kPrompt, {plain.media_from_seed(1), plain.media_from_seed(2)});
  EXPECT_FALSE(rows_equal(r0.logits, r1.logits, 0, v));
  for (int64_t row = 3; row < 11; ++row)
    EXPECT_FALSE(rows_equal(r1.logits, r2.logits, row, v)) << "row " << row;
}

TEST(FlamingoStructure, CachedDecodingEqualsFullRecomputation) {
  Harness hz(io::XattnPlacement::kIdefics, /*zero_gates=*/false);
  const std::vector<model::MediaKV> media = {hz.media_from_seed(1), hz.media_from_seed(2)};
  const Harness::Run full = hz.run(kPrompt, media);
  // Prefill the first 5 tokens, then feed the rest one at a time.
  generate::MediaTracker tracker(kImg, 2, false);
  model::KvCache cache;
  const int64_t d = hz.config.lm.dim, v = hz.config.lm.vocab_size;
  std::vector<float> h(static_cast<size_t>(5 * d)), logits(static_cast<size_t>(v));
  std::vector<const model::MediaKV*> mo;
  for (int i = 0; i < 5; ++i) {
    const int32_t m = tracker.advance(kPrompt[static_cast<size_t>(i)]);
    mo.push_back(m > 0 ? &media[static_cast<size_t>(m - 1)] : nullptr);
  }
  hz.net.forward(kPrompt.data(), 5, mo.data(), cache, h.data(), hz.pool);
  for (size_t i = 5; i < kPrompt.size(); ++i) {
    const int32_t m = tracker.advance(kPrompt[i]);
    const model::MediaKV* mk = m > 0 ? &media[static_cast<size_t>(m - 1)] : nullptr;
    std::vector<float> h1(static_cast<size_t>(d));
    hz.net.forward(&kPrompt[i], 1, &mk, cache, h1.data(), hz.pool);
    hz.net.logits(h1.data(), 1, logits.data(), hz.pool);
    const float* want = full.logits.data() + static_cast<int64_t>(i) * v;
    EXPECT_LT(testing::nmse(logits.data(), want, static_cast<size_t>(v)), 1e-10) << "token " << i;
  }
}

}  // namespace
}  // namespace flamingo
