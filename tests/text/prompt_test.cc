#include "text/prompt.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "flamingo/error.h"
#include "support/test_util.h"

namespace flamingo::text {
namespace {

using flamingo::testing::test_data_dir;

constexpr int32_t kBos = 1, kEoc = 400, kImage = 401;

const Tokenizer& tok() {
  static const Tokenizer t = [] {
    TokenizerConfig c;
    c.vocab_size = 403;
    c.special = {{"<|endofchunk|>", kEoc}, {"<image>", kImage}, {"<PAD>", 402}};
    c.bos = kBos;
    c.eos = 2;
    c.image = kImage;
    c.add_bos = true;
    return Tokenizer::from_file(test_data_dir() / "tokenizer" / "tiny.model", c);
  }();
  return t;
}

PromptOptions ctx(int64_t max_seq_len = 2048) {
  PromptOptions o;
  o.max_seq_len = max_seq_len;
  return o;
}

Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "");
}

TEST(Prompt, TextFormMatchesTokenizerAndFindsImages) {
  const std::string text =
      "<image>An image of two cats.<|endofchunk|><image>An image of a bathroom sink.";
  const TokenizedPrompt p = tokenize_prompt(tok(), text, 2, ctx());
  EXPECT_EQ(p.ids, tok().encode(text));
  EXPECT_EQ(p.ids.front(), kBos);
  ASSERT_EQ(p.image_positions.size(), 2u);
  EXPECT_EQ(p.image_positions[0], 1u);
  for (size_t pos : p.image_positions) EXPECT_EQ(p.ids[pos], kImage);
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), kEoc), 1);
}

TEST(Prompt, TextBeforeTheFirstImageAndMarkerAtTheEnd) {
  const TokenizedPrompt p = tokenize_prompt(tok(), "Describe: <image>", 1, ctx());
  ASSERT_EQ(p.image_positions.size(), 1u);
  EXPECT_EQ(p.image_positions[0], p.ids.size() - 1);
  EXPECT_GT(p.image_positions[0], 1u);
}

TEST(Prompt, MarkerCountMustEqualImageCount) {
  Error e = error_of([] { tokenize_prompt(tok(), "<image>a<image>b<image>c", 2, ctx()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "prompt has 3 <image> markers but 2 images were given");
  e = error_of([] { tokenize_prompt(tok(), "<image>", 2, ctx()); });
  EXPECT_STREQ(e.what(), "prompt has 1 <image> markers but 2 images were given");
  e = error_of([] { tokenize_prompt(tok(), "no marker", 1, ctx()); });
  EXPECT_STREQ(e.what(), "prompt has 0 <image> markers but 1 image was given");
  // Partial markers are text, not images.
  EXPECT_EQ(count_image_markers(tok(), "<imag <image <image> image>"), 1u);
  EXPECT_NO_THROW(tokenize_prompt(tok(), "<imag", 0, ctx()));
}

TEST(Prompt, TenThousandMarkersAreCheckedFast) {
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "<image>";
  const auto t0 = std::chrono::steady_clock::now();
  const Error e = error_of([&] { tokenize_prompt(tok(), text, 1, ctx()); });
  EXPECT_STREQ(e.what(), "prompt has 10000 <image> markers but 1 image was given");
  // Matching images: then the context bound applies, naming both numbers.
  const Error too_long = error_of([&] { tokenize_prompt(tok(), text, 10000, ctx(2048)); });
  EXPECT_EQ(too_long.code(), ErrorCode::kResourceLimit);
  EXPECT_STREQ(too_long.what(), "prompt (10001 tokens) exceeds the context (2048 tokens)");
  const TokenizedPrompt p = tokenize_prompt(tok(), text, 10000, ctx(20000));
  EXPECT_EQ(p.image_positions.size(), 10000u);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 500.0);  // three passes over 70 KB; microseconds in practice
}

TEST(Prompt, StructuredFormYieldsTheSameIds) {
  using S = PromptSegment;
  const std::vector<std::pair<std::string, std::vector<S>>> cases = {
      {"<image>Output:", {S::image(), S::plain("Output:")}},
      {"Look: <image> and <image>",
       {S::plain("Look: "), S::image(), S::plain(" and "), S::image()}},
      {"<image>A red circle.<|endofchunk|><image>Output:",
       {S::image(), S::plain("A red circle.<|endofchunk|>"), S::image(), S::plain("Output:")}},
      {"<image><image>", {S::image(), S::image()}},
  };
  for (const auto& [text, segments] : cases) {
    const size_t images = count_image_markers(tok(), text);
    const TokenizedPrompt a = tokenize_prompt(tok(), text, images, ctx());
    const TokenizedPrompt b = tokenize_prompt(tok(), segments, images, ctx());
    EXPECT_EQ(a.ids, b.ids) << text;
    EXPECT_EQ(a.image_positions, b.image_positions) << text;
    // The text as one segment whose markers count: the text form itself.
    const std::vector<PromptSegment> whole = {PromptSegment::with_markers(text)};
    const TokenizedPrompt c = tokenize_prompt(tok(), whole, images, ctx());
    EXPECT_EQ(a.ids, c.ids) << text;
    EXPECT_EQ(a.image_positions, c.image_positions) << text;
  }
}

TEST(Prompt, StructuredTextCannotSmuggleImages) {
  using S = PromptSegment;
  const std::vector<S> smuggled = {S::image(), S::plain("hi <image>")};
  const Error e = error_of([&] { tokenize_prompt(tok(), smuggled, 1, ctx()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("segment 1 contains the image marker <image> at byte 3"),
            std::string::npos)
      << e.what();
  // Literal text keeps user-typed special strings as text.
  const std::vector<S> literal = {S::image(), S::literal_text("hi <image><|endofchunk|>")};
  const TokenizedPrompt p = tokenize_prompt(tok(), literal, 1, ctx());
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), kImage), 1);
  EXPECT_EQ(std::count(p.ids.begin(), p.ids.end(), kEoc), 0);
  EXPECT_EQ(tok().decode(p.ids), "<image> hi <image><|endofchunk|>");
  const Error count = error_of([&] { tokenize_prompt(tok(), literal, 2, ctx()); });
  EXPECT_STREQ(count.what(), "prompt has 1 image segments but 2 images were given");
}

TEST(Prompt, EmptyPrompt) {
  EXPECT_EQ(tokenize_prompt(tok(), "", 0, ctx()).ids, std::vector<int32_t>{kBos});
  PromptOptions no_bos = ctx();
  no_bos.add_bos = false;
  Error e = error_of([&] { tokenize_prompt(tok(), "", 0, no_bos); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("prompt is empty"), std::string::npos);
  e = error_of([&] { tokenize_prompt(tok(), std::vector<PromptSegment>{}, 0, no_bos); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  // An image alone is a prompt.
  EXPECT_EQ(tokenize_prompt(tok(), "<image>", 1, no_bos).ids, std::vector<int32_t>{kImage});
}

TEST(Prompt, ContextAndSizeLimits) {
  const std::string text = "a large red circle above a small blue triangle";
  const size_t n = tokenize_prompt(tok(), text, 0, ctx()).ids.size();
  EXPECT_NO_THROW(tokenize_prompt(tok(), text, 0, ctx(static_cast<int64_t>(n))));
  const Error e =
      error_of([&] { tokenize_prompt(tok(), text, 0, ctx(static_cast<int64_t>(n) - 1)); });
  EXPECT_EQ(e.code(), ErrorCode::kResourceLimit);
  EXPECT_EQ(std::string(e.what()), "prompt (" + std::to_string(n) +
                                       " tokens) exceeds the context (" + std::to_string(n - 1) +
                                       " tokens)");
  PromptOptions small = ctx();
  small.max_prompt_bytes = 10;
  EXPECT_EQ(error_of([&] { tokenize_prompt(tok(), text, 0, small); }).code(),
            ErrorCode::kResourceLimit);
  EXPECT_EQ(error_of([&] { tokenize_prompt(tok(), text, 0, ctx(0)); }).code(),
            ErrorCode::kInvalidArgument);
}

TEST(Prompt, InvalidUtf8IsRejectedWithOffset) {
  const Error e = error_of([] { tokenize_prompt(tok(), "<image>caption \xff", 1, ctx()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "prompt is not valid UTF-8 at byte 15");
  const std::vector<PromptSegment> segs = {PromptSegment::image(), PromptSegment::plain("ok \xC3")};
  EXPECT_STREQ(error_of([&] { tokenize_prompt(tok(), segs, 1, ctx()); }).what(),
               "prompt segment 1 is not valid UTF-8 at byte 3");
}

}  // namespace
}  // namespace flamingo::text
