// One loaded model shared by eight sessions on eight threads, each with its own images, prompt
// and sampling seed: every result must be bitwise the result of the same request run alone
// (token ids, log-probabilities, text, stop reason). The model's thread pool is shared too, so
// this also exercises concurrent submissions to one pool. .ci/run builds this file with
// ThreadSanitizer (job "tsan"); the model is the openflamingo parity fixture.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "flamingo/flamingo.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

constexpr int kSessions = 8;

Image pattern_image(int w, int h, int seed) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<uint8_t>((i * (7 + 2 * seed) + seed * 53) % 253);
  return Image::from_rgb(w, h, rgb.data());
}

struct Request {
  Prompt prompt;
  GenerateOptions options;
};

// Request t: one or two images of its own, one of three prompt shapes, greedy or sampled.
Request request(int t) {
  Request r;
  const std::vector<std::string> files = {"0.png", "1.png", "2.png"};
  const fs::path images = testing::test_data_dir() / "parity" / "openflamingo" / "images";
  Image a = (t % 2 == 0)
                ? Image::from_file((images / files[static_cast<size_t>(t / 2 % 3)]).string())
                : pattern_image(20 + 3 * t, 31 - t, t);
  switch (t % 3) {
    case 0:
      r.prompt = Prompt("<image>Output:", {a});
      break;
    case 1:
      r.prompt = Prompt("<image>Output: a picture.<|endofchunk|><image>Output:",
                        {a, pattern_image(17, 17 + t, 100 + t)});
      break;
    default:
      r.prompt = Prompt("A question " + std::to_string(t) + "<image>Answer:", {a});
      break;
  }
  r.options.max_new_tokens = 8;
  r.options.stop_at_endofchunk = r.options.stop_at_eos = false;
  if (t % 4 != 0) {
    r.options.temperature = 0.7f + 0.1f * static_cast<float>(t);
    r.options.top_k = 20;
    r.options.top_p = 0.9f;
    r.options.seed = 1000 + static_cast<uint64_t>(t);
  }
  return r;
}

void expect_same(const GenerateResult& alone, const GenerateResult& together, int t) {
  EXPECT_EQ(alone.text, together.text) << "session " << t;
  EXPECT_EQ(alone.stop_reason, together.stop_reason) << "session " << t;
  ASSERT_EQ(alone.tokens.size(), together.tokens.size()) << "session " << t;
  for (size_t i = 0; i < alone.tokens.size(); ++i) {
    EXPECT_EQ(alone.tokens[i].id, together.tokens[i].id) << "session " << t << " token " << i;
    // Bitwise: the same float, not merely close.
    EXPECT_EQ(alone.tokens[i].logprob, together.tokens[i].logprob)
        << "session " << t << " token " << i;
  }
}

TEST(Concurrency, EightSessionsOnEightThreadsMatchTheSameRequestsRunAlone) {
  ModelOptions mo;
  mo.threads = 2;
  const std::shared_ptr<const Model> model =
      Model::load((testing::test_data_dir() / "parity" / "openflamingo").string(), mo);

  std::vector<GenerateResult> alone;
  for (int t = 0; t < kSessions; ++t) {
    Session s(model);
    const Request r = request(t);
    alone.push_back(s.generate(r.prompt, r.options));
    ASSERT_EQ(alone.back().tokens.size(), 8u);
  }
  // The requests really differ, or equality below would prove little.
  int distinct = 0;
  for (int t = 1; t < kSessions; ++t)
    distinct += alone[static_cast<size_t>(t)].text != alone[0].text;
  EXPECT_GT(distinct, 0);

  for (int round = 0; round < 2; ++round) {
    std::vector<GenerateResult> together(kSessions);
    std::vector<std::string> errors(kSessions);
    std::vector<std::thread> threads;
    for (int t = 0; t < kSessions; ++t) {
      threads.emplace_back([&, t] {
        try {
          Session s(model);
          const Request r = request(t);
          together[static_cast<size_t>(t)] = s.generate(r.prompt, r.options);
          // A second call on the same session reuses its cached media and must not drift.
          const GenerateResult again = s.generate(r.prompt, r.options);
          if (again.text != together[static_cast<size_t>(t)].text)
            errors[static_cast<size_t>(t)] = "second call differs";
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(t)] = e.what();
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kSessions; ++t) {
      EXPECT_EQ(errors[static_cast<size_t>(t)], "") << "session " << t;
      expect_same(alone[static_cast<size_t>(t)], together[static_cast<size_t>(t)], t);
    }
  }
}

// Same seed and inputs → the same tokens and bitwise the same log-probabilities with a pool of
// 1, 2 or 3 threads, for greedy, sampled and beam-search decoding.
TEST(Determinism, SampledGreedyAndBeamOutputsAreIndependentOfThreadCount) {
  const fs::path dir = testing::test_data_dir() / "parity" / "idefics";
  std::vector<std::shared_ptr<const Model>> models;
  for (int threads : {1, 2, 3}) {
    ModelOptions mo;
    mo.threads = threads;
    models.push_back(Model::load(dir.string(), mo));
  }
  const Image img = Image::from_file((dir / "images" / "0.png").string());
  const Prompt prompt("<image>Output:", {img});
  std::vector<GenerateOptions> variants(3);
  for (auto& g : variants) {
    g.max_new_tokens = 10;
    g.stop_at_endofchunk = g.stop_at_eos = false;
  }
  variants[1].temperature = 1.2f;
  variants[1].seed = 42;
  variants[2].num_beams = 3;
  for (size_t v = 0; v < variants.size(); ++v) {
    Session first(models[0]);
    const GenerateResult want = first.generate(prompt, variants[v]);
    for (size_t m = 0; m < models.size(); ++m) {
      Session s(models[m]);
      expect_same(want, s.generate(prompt, variants[v]), static_cast<int>(10 * v + m));
    }
  }
}

}  // namespace
}  // namespace flamingo
