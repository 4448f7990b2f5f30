// The public API end to end on a tiny converted model (the openflamingo parity fixture):
// loading, generation options, scoring, streaming, determinism and concurrency.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "flamingo/flamingo.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path fixture_dir() { return testing::test_data_dir() / "parity" / "openflamingo"; }

Image test_image(uint8_t seed) {
  std::vector<uint8_t> rgb(40 * 30 * 3);
  for (size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<uint8_t>((i * 37 + seed * 101) % 251);
  return Image::from_rgb(40, 30, rgb.data());
}

// The prompt's length in tokens, run or kept from the previous call.
int prompt_tokens(const Timings& t) { return t.prefill_tokens + t.prompt_tokens_reused; }

std::shared_ptr<const Model> load(int threads = 2) {
  ModelOptions o;
  o.threads = threads;
  return Model::load(fixture_dir().string(), o);
}

TEST(Model, LoadReportsWhatItLoaded) {
  auto m = load();
  const ModelInfo& i = m->info();
  EXPECT_GT(i.parameters, 0);
  EXPECT_GT(i.weight_bytes, 0);
  EXPECT_GT(i.lm_layers, 0);
  EXPECT_GT(i.gated_blocks, 0);
  EXPECT_GT(i.visual_tokens, 0);
  EXPECT_FALSE(i.default_prompt.empty());
  EXPECT_GE(m->load_ms(), 0.0);
}

TEST(Model, LoadReportsProgressAndStopsWhenTheCallbackSaysSo) {
  std::vector<float> seen;
  ModelOptions o;
  o.threads = 2;
  o.on_progress = [&](float f) {
    seen.push_back(f);
    return true;
  };
  const std::shared_ptr<const Model> whole = Model::load(fixture_dir().string(), o);
  ASSERT_GE(seen.size(), 20u) << "one report per weight tensor or so";
  EXPECT_EQ(seen.front(), 0.f);
  EXPECT_EQ(seen.back(), 1.f);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_GT(std::count_if(seen.begin(), seen.end(), [](float f) { return f > 0.1f && f < 0.9f; }),
            2);

  const Prompt p("<image>Output:", {test_image(2)});
  GenerateOptions g;
  g.max_new_tokens = 4;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  const GenerateResult expected = Session(whole).generate(p, g);
  // Stopping at the first report, in the middle, and at the final 1.
  for (const size_t stop_at : {size_t{0}, seen.size() / 2, seen.size() - 1}) {
    size_t calls = 0;
    ModelOptions c;
    c.threads = 2;
    c.on_progress = [&](float) { return calls++ < stop_at; };
    try {
      Model::load(fixture_dir().string(), c);
      ADD_FAILURE() << "load went on after the callback returned false at call " << stop_at;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCancelled) << e.what();
      EXPECT_NE(std::string(e.what()).find("cancelled by the progress callback"),
                std::string::npos);
    }
    EXPECT_EQ(calls, stop_at + 1) << "no call after the one that said stop";
  }
  // Nothing shared was left behind: a new load gives the same model.
  const GenerateResult again = Session(load()).generate(p, g);
  ASSERT_EQ(again.tokens.size(), expected.tokens.size());
  for (size_t i = 0; i < again.tokens.size(); ++i)
    EXPECT_EQ(again.tokens[i].logprob, expected.tokens[i].logprob) << i;
}

TEST(Model, MissingDirectoryIsAnIoError) {
  try {
    Model::load("/nonexistent/flamingo/model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/flamingo/model"), std::string::npos);
  }
}

TEST(Model, MissingTokenizerIsReported) {
  testing::TempDir tmp;
  for (const auto& e : fs::directory_iterator(fixture_dir()))
    if (e.path().filename() != "tokenizer.model" && e.is_regular_file())
      fs::copy_file(e.path(), tmp.path() / e.path().filename());
  try {
    Model::load(tmp.path().string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
}

TEST(Session, GreedyIsDeterministicAndIndependentOfThreads) {
  const Prompt p("<image>Output:", {test_image(1)});
  GenerateOptions g;
  g.max_new_tokens = 12;
  g.stop_at_endofchunk = false;
  g.stop_at_eos = false;
  Session s1(load(1)), s2(load(2));
  const GenerateResult a = s1.generate(p, g), b = s2.generate(p, g), c = s1.generate(p, g);
  ASSERT_EQ(a.tokens.size(), 12u);
  EXPECT_EQ(a.text, b.text);
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    EXPECT_EQ(a.tokens[i].id, b.tokens[i].id);
    EXPECT_EQ(a.tokens[i].logprob, b.tokens[i].logprob)
        << "logprobs must be bitwise equal across thread counts";
    EXPECT_EQ(a.tokens[i].id, c.tokens[i].id);
  }
  EXPECT_EQ(a.stop_reason, StopReason::kMaxTokens);
}

TEST(Session, SameSeedSameSampleDifferentSeedDifferentSample) {
  Session s(load());
  const Prompt p("<image>Output:", {test_image(2)});
  GenerateOptions g;
  g.max_new_tokens = 16;
  g.temperature = 1.5f;
  g.top_k = 0;
  g.top_p = 1.f;
  g.stop_at_endofchunk = false;
  g.stop_at_eos = false;
  g.seed = 7;
  const std::string a = s.generate(p, g).text, b = s.generate(p, g).text;
  g.seed = 8;
  const std::string c = s.generate(p, g).text;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Session, MarkersMustMatchMedia) {
  Session s(load());
  try {
    s.generate(Prompt("<image>a<image>b", {test_image(1)}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("2 <image> markers"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.generate(Prompt("no image here", {test_image(1)})), Error);
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "<image>";
  EXPECT_THROW(s.generate(Prompt(many, {test_image(1)})), Error);
}

// The builder and the text form make one prompt: the same tokens and the same generation,
// whichever way the parts were put together.
TEST(Session, BuiltPromptEqualsItsTextForm) {
  Session s(load());
  const Image a = test_image(1), b = test_image(2);
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  const GenerateResult text =
      s.generate(Prompt("<image>red<|endofchunk|><image>Output:", {a, b}), g);
  Prompt built;
  built.add_media(a).add_text("red<|end").add_text("ofchunk|>").add_media(b).add_text("Output:");
  Prompt mixed("<image>red<|endofchunk|>", {a});
  mixed.add_media(b).add_text("Output:");
  for (const Prompt* p : {&built, &mixed}) {
    const GenerateResult r = s.generate(*p, g);
    EXPECT_EQ(prompt_tokens(r.timings), prompt_tokens(text.timings));
    ASSERT_EQ(r.tokens.size(), text.tokens.size());
    for (size_t i = 0; i < r.tokens.size(); ++i) {
      EXPECT_EQ(r.tokens[i].id, text.tokens[i].id) << i;
      EXPECT_EQ(r.tokens[i].logprob, text.tokens[i].logprob) << i;
    }
  }
  // A marker in added text still needs a media item of its own.
  Prompt extra;
  extra.add_media(a).add_text("<image>");
  try {
    s.generate(extra, g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(),
                 "prompt has 2 images (1 <image> markers in its text, 1 image segments) but 1 "
                 "image was given");
  }
}

// Text a user typed goes in as text: a typed "<image>" asks for no media item and a typed
// "<|endofchunk|>" is not the chunk token.
TEST(Session, LiteralTextKeepsSpecialStringsAsText) {
  Session s(load());
  const Image a = test_image(1);
  const std::string typed = "<image> and <|endofchunk|>";
  GenerateOptions g;
  g.max_new_tokens = 2;
  Prompt as_template;
  as_template.add_media(a).add_text(typed);
  EXPECT_THROW(s.generate(as_template, g), Error);  // two markers, one media item

  Prompt literal;
  literal.add_media(a).add_literal_text(typed).add_text("Output:");
  const int literal_tokens = prompt_tokens(s.generate(literal, g).timings);
  // The same bytes without the special strings: the literal form may only add the pieces
  // that spell "<image>" and "<|endofchunk|>", never the two special tokens.
  Prompt spelled;
  spelled.add_media(a).add_text(" and Output:");
  const int spelled_tokens = prompt_tokens(s.generate(spelled, g).timings);
  EXPECT_GT(literal_tokens, spelled_tokens + 2);
  // The template text around it keeps its specials: one token for the marker-free chunk end.
  Prompt around("<image>", {a});
  around.add_literal_text(typed).add_text("<|endofchunk|>");
  Prompt around_plain("<image>", {a});
  around_plain.add_literal_text(typed);
  EXPECT_EQ(prompt_tokens(s.generate(around, g).timings),
            prompt_tokens(s.generate(around_plain, g).timings) + 1);
  // Literal text is still checked as UTF-8.
  Prompt bad;
  bad.add_literal_text("caf\xC3");
  try {
    s.generate(bad, g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 at byte 3"), std::string::npos)
        << e.what();
  }
}

// A session holds the model: the caller may drop its own handle while a request runs on
// another thread, and the model goes when the last session does.
TEST(Session, KeepsTheModelAliveAfterTheCallerDropsIt) {
  const Prompt p("<image>Output:", {test_image(9)});
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  const GenerateResult expected = Session(load()).generate(p, g);

  std::shared_ptr<const Model> m = load();
  const std::weak_ptr<const Model> weak = m;
  std::atomic<bool> started{false}, dropped{false};
  GenerateResult result;
  GenerateOptions waiting = g;
  waiting.on_token = [&](const TokenInfo&, const std::string&) {
    started = true;
    while (!dropped) std::this_thread::yield();
    return true;
  };
  std::thread worker([&, s = Session(m)]() mutable { result = s.generate(p, waiting); });
  while (!started) std::this_thread::yield();
  m.reset();
  EXPECT_FALSE(weak.expired()) << "the running session must keep the model";
  dropped = true;
  worker.join();
  EXPECT_TRUE(weak.expired()) << "the model must go with its last session";
  ASSERT_EQ(result.tokens.size(), expected.tokens.size());
  for (size_t i = 0; i < result.tokens.size(); ++i) {
    EXPECT_EQ(result.tokens[i].id, expected.tokens[i].id) << i;
    EXPECT_EQ(result.tokens[i].logprob, expected.tokens[i].logprob) << i;
  }
}

TEST(Session, CallbackCanStopAndSeesEveryToken) {
  Session s(load());
  GenerateOptions g;
  g.max_new_tokens = 10;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  int calls = 0;
  g.on_token = [&](const TokenInfo&, const std::string&) { return ++calls < 3; };
  const GenerateResult r = s.generate(Prompt("<image>Output:", {test_image(3)}), g);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.stop_reason, StopReason::kCallback);
}

TEST(Session, MediaAreEncodedOnceAndReused) {
  Session s(load());
  const Image img = test_image(4);
  GenerateOptions g;
  g.max_new_tokens = 4;
  s.generate(Prompt("<image>a<image>b", {img, test_image(5)}), g);
  EXPECT_EQ(s.timings().media_encoded, 2);
  EXPECT_GT(s.timings().visual_kv_computed, 0);
  s.generate(Prompt("<image>Output:", {img}), g);
  EXPECT_EQ(s.timings().media_encoded, 0);
  EXPECT_EQ(s.timings().media_reused, 1);
  EXPECT_EQ(s.timings().visual_kv_computed, 0) << "decode must not recompute visual K/V";
}

// The cache keeps the most recently used media: an image reused in every call survives any
// number of new images passing through (the cache holds 64).
TEST(Session, MediaCacheEvictsTheLeastRecentlyUsed) {
  Session s(load());
  const Image shared = test_image(7);
  GenerateOptions g;
  g.max_new_tokens = 1;
  std::vector<Image> fresh;
  for (int i = 0; i < 80; ++i) {
    fresh.push_back(test_image(static_cast<uint8_t>(100 + i)));
    s.generate(Prompt("<image>a<image>b", {shared, fresh.back()}), g);
    if (i == 0) continue;
    ASSERT_EQ(s.timings().media_reused, 1) << "call " << i;
    ASSERT_EQ(s.timings().media_encoded, 1) << "call " << i;
  }
  // The first new image was evicted long ago; the last one was not.
  s.generate(Prompt("<image>a<image>b", {shared, fresh.front()}), g);
  EXPECT_EQ(s.timings().media_encoded, 1);
  s.generate(Prompt("<image>a<image>b", {shared, fresh.back()}), g);
  EXPECT_EQ(s.timings().media_encoded, 0);
  EXPECT_EQ(s.timings().media_reused, 2);
}

TEST(Session, OneBeamEqualsGreedy) {
  Session s(load());
  const Prompt p("<image>Output:", {test_image(6)});
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  const GenerateResult greedy = s.generate(p, g);
  g.num_beams = 3;
  const GenerateResult beam = s.generate(p, g);
  ASSERT_FALSE(beam.tokens.empty());
  // Beam search maximises the sequence log-probability, so it is never below greedy's.
  double lg = 0, lb = 0;
  for (const auto& t : greedy.tokens) lg += t.logprob;
  for (const auto& t : beam.tokens) lb += t.logprob;
  if (beam.tokens.size() == greedy.tokens.size()) EXPECT_GE(lb, lg - 1e-4);
}

// Same text, tokens, bitwise log-probabilities and stop reason.
void expect_same_results(const GenerateResult& got, const GenerateResult& want) {
  EXPECT_EQ(got.text, want.text);
  ASSERT_EQ(got.tokens.size(), want.tokens.size());
  for (size_t i = 0; i < got.tokens.size(); ++i) {
    EXPECT_EQ(got.tokens[i].id, want.tokens[i].id) << "token " << i;
    EXPECT_EQ(got.tokens[i].logprob, want.tokens[i].logprob) << "token " << i << " (bitwise)";
  }
  EXPECT_EQ(got.stop_reason, want.stop_reason);
}

// The previous prompt's keys and values are reused as far as the next prompt starts the same
// way (tokens and Image objects), and the results are bitwise those of a new session: greedy,
// beam search and scoring, on every parity fixture (OpenFlamingo, IDEFICS, the paper's variant,
// q8_0 and q4_0 weights, video with media-time embeddings).
TEST(Session, APromptThatStartsLikeTheLastOneReusesItsKeysAndValues) {
  for (const char* fixture :
       {"openflamingo", "idefics", "paper", "quant_q8_0", "quant_q4_0", "video"}) {
    SCOPED_TRACE(fixture);
    ModelOptions mo;
    mo.threads = 2;
    const auto model = Model::load((testing::test_data_dir() / "parity" / fixture).string(), mo);
    const Image shot1 = test_image(20), shot2 = test_image(21), other2 = test_image(22),
                query = test_image(23), query2 = test_image(24);
    // The query part is long enough (well over 8 tokens after its marker) that where a prompt
    // parts from the kept one, not the 8-token tail every prefill runs, sets the reuse.
    const std::string text =
        "<image>An apple.<|endofchunk|><image>A dog.<|endofchunk|><image>This photo shows, in "
        "a few words, the following:";
    const Prompt first(text, {shot1, shot2, query});
    const Prompt new_query(text, {shot1, shot2, query2});    // parts at the third marker
    const Prompt new_second(text, {shot1, other2, query2});  // parts at the second marker
    GenerateOptions g;
    g.max_new_tokens = 6;
    g.stop_at_endofchunk = g.stop_at_eos = false;

    Session warm(model);
    const GenerateResult r1 = warm.generate(first, g);
    const int n = r1.timings.prefill_tokens;
    EXPECT_EQ(r1.timings.prompt_tokens_reused, 0);
    ASSERT_GT(n, 24);

    const GenerateResult same = warm.generate(first, g);
    EXPECT_EQ(same.timings.prompt_tokens_reused, n - 8) << "all but the last 8 tokens kept";
    EXPECT_EQ(same.timings.prefill_tokens, 8);
    expect_same_results(same, r1);

    const GenerateResult q = warm.generate(new_query, g);
    const int at_third = q.timings.prompt_tokens_reused;
    EXPECT_GT(at_third, 0);
    EXPECT_LT(at_third, n - 8);
    EXPECT_EQ(at_third + q.timings.prefill_tokens, n);
    expect_same_results(q, Session(model).generate(new_query, g));

    const GenerateResult s2 = warm.generate(new_second, g);
    EXPECT_GT(s2.timings.prompt_tokens_reused, 0);
    EXPECT_LT(s2.timings.prompt_tokens_reused, at_third);
    expect_same_results(s2, Session(model).generate(new_second, g));

    GenerateOptions beams = g;
    beams.num_beams = 3;
    const GenerateResult b = warm.generate(new_query, beams);
    EXPECT_GT(b.timings.prompt_tokens_reused, 0);
    expect_same_results(b, Session(model).generate(new_query, beams));

    const std::vector<std::string> conts = {" a red fruit", " two cats"};
    const std::vector<ScoreResult> ws = warm.score(new_query, conts);
    EXPECT_EQ(warm.timings().prompt_tokens_reused, n - 8);
    const std::vector<ScoreResult> cs = Session(model).score(new_query, conts);
    ASSERT_EQ(ws.size(), cs.size());
    for (size_t i = 0; i < ws.size(); ++i) EXPECT_EQ(ws[i].logprob, cs[i].logprob) << "bitwise";

    // Forgetting the media forgets the kept prompt with them.
    warm.clear_media_cache();
    EXPECT_EQ(warm.generate(new_query, g).timings.prompt_tokens_reused, 0);
  }
}

// A prompt of fewer than 8 tokens runs on the decode path, whose sums differ in the last bits
// from a batched prefill: it is never kept, and never reuses.
TEST(Session, ShortPromptsAreNotKept) {
  Session s(load());
  const Prompt p("<image>Output:", {test_image(8)});
  GenerateOptions g;
  g.max_new_tokens = 3;
  const GenerateResult a = s.generate(p, g), b = s.generate(p, g);
  ASSERT_LT(a.timings.prefill_tokens, 8);
  EXPECT_EQ(b.timings.prompt_tokens_reused, 0);
  EXPECT_EQ(b.timings.prefill_tokens, a.timings.prefill_tokens);
  expect_same_results(b, a);
}

TEST(Session, ScoreMatchesTheLogprobsOfGeneration) {
  Session s(load());
  const Prompt p("<image>Output:", {test_image(7)});
  GenerateOptions g;
  g.max_new_tokens = 5;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  const GenerateResult r = s.generate(p, g);
  double sum = 0;
  for (const auto& t : r.tokens) sum += t.logprob;
  // The greedy continuation, scored, has the same log-likelihood as generation reported.
  const std::vector<ScoreResult> scores = s.score(p, {r.text, r.text + " zzz"});
  ASSERT_EQ(scores.size(), 2u);
  if (scores[0].tokens == static_cast<int>(r.tokens.size()))
    EXPECT_NEAR(scores[0].logprob, sum, 1e-3);
  EXPECT_GT(scores[0].logprob, scores[1].logprob);
  EXPECT_THROW(s.score(p, {}), Error);
}

// An <image> in a scored continuation (or generated by the model) has no media item: the
// tokens after it see no image, and nothing reads past the prompt's media (an out-of-bounds
// read before; the ASan job runs this).
TEST(Session, ImageTokenBeyondTheGivenMediaAttendsToNone) {
  Session s(load());
  for (const Prompt& p : {Prompt("<image>Output:", {test_image(7)}), Prompt("Output:", {})}) {
    const std::vector<ScoreResult> a = s.score(p, {"<image> a red", " a<image><image>"});
    const std::vector<ScoreResult> b = s.score(p, {"<image> a red", " a<image><image>"});
    ASSERT_EQ(a.size(), 2u);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(std::isfinite(a[i].logprob)) << i;
      EXPECT_LE(a[i].logprob, 0.0) << i;
      EXPECT_EQ(a[i].logprob, b[i].logprob) << i;
    }
  }
}

// Beam search that reaches the end of the context stops there for each beam (a beam left
// without logits was indexed out of bounds before: found by fuzz/e2e_fuzzer).
TEST(Session, BeamSearchStopsAtTheEndOfTheContext) {
  const std::shared_ptr<const Model> m = load();
  Session s(m);
  const int ctx = m->info().max_seq_len;
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.num_beams = 3;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  std::string text = "<image>";
  int prompt_len = 0;
  for (int words = 1; prompt_len < ctx - 3; ++words) {
    text += " a";
    GenerateOptions one = g;
    one.max_new_tokens = 1;
    one.num_beams = 1;
    prompt_len = prompt_tokens(s.generate(Prompt(text, {test_image(3)}), one).timings);
    ASSERT_LT(words, 4 * ctx) << "the prompt does not grow";
  }
  ASSERT_LT(prompt_len, ctx);
  const GenerateResult r = s.generate(Prompt(text, {test_image(3)}), g);
  EXPECT_EQ(r.stop_reason, StopReason::kContextFull);
  EXPECT_LE(prompt_len + static_cast<int>(r.tokens.size()), ctx);
  EXPECT_FALSE(r.tokens.empty());
}

TEST(Session, BadOptionsAreRejected) {
  Session s(load());
  const Prompt p("<image>Output:", {test_image(1)});
  GenerateOptions g;
  g.top_p = 0.f;
  EXPECT_THROW(s.generate(p, g), Error);
  g = {};
  g.num_beams = 0;
  EXPECT_THROW(s.generate(p, g), Error);
  g = {};
  g.max_new_tokens = -1;
  EXPECT_THROW(s.generate(p, g), Error);
}

TEST(Session, EightSessionsShareOneModel) {
  auto model = load(2);
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.stop_at_endofchunk = g.stop_at_eos = false;
  std::vector<std::string> alone;
  for (int t = 0; t < 8; ++t) {
    Session s(model);
    alone.push_back(
        s.generate(Prompt("<image>Output:", {test_image(static_cast<uint8_t>(10 + t))}), g).text);
  }
  std::vector<std::string> together(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      Session s(model);
      together[static_cast<size_t>(t)] =
          s.generate(Prompt("<image>Output:", {test_image(static_cast<uint8_t>(10 + t))}), g).text;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(alone, together);
}

}  // namespace
}  // namespace flamingo
