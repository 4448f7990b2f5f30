// libFuzzer target: untrusted prompt text through the marker count, UTF-8 check, special-token
// split, sentencepiece and the context check — both the text form and the structured form —
// with the test tokenizer (tests/data/tokenizer/tiny.model and its config). The first byte picks
// the number of images, the context length and the options; the rest is the prompt, which the
// structured form splits into segments at 0x1F bytes (0x1E before a segment makes it an image,
// 0x1D makes it literal, 0x1C text whose markers count, as the public Prompt's add_text).
// Successful results are decoded again and checked for consistency. Any exception other than
// flamingo::Error, and any kInternal error, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "flamingo/error.h"
#include "text/prompt.h"
#include "text/tokenizer.h"

namespace {

constexpr int32_t kImage = 401;

const flamingo::text::Tokenizer& tokenizer() {
  static const flamingo::text::Tokenizer tok = [] {
    flamingo::text::TokenizerConfig c;
    c.vocab_size = 403;
    c.special = {{"<|endofchunk|>", 400}, {"<image>", kImage}, {"<PAD>", 402}};
    c.bos = 1;
    c.eos = 2;
    c.image = kImage;
    c.add_bos = true;
    return flamingo::text::Tokenizer::from_file(FLAMINGO_FUZZ_TOKENIZER, c);
  }();
  return tok;
}

void check(const flamingo::Error& e) {
  if (e.code() == flamingo::ErrorCode::kInternal) std::abort();
}

void check_result(const flamingo::text::Tokenizer& tok, const flamingo::text::TokenizedPrompt& p,
                  size_t num_images, int64_t max_seq_len) {
  if (p.image_positions.size() != num_images) std::abort();
  if (static_cast<int64_t>(p.ids.size()) > max_seq_len) std::abort();
  for (size_t pos : p.image_positions) {
    if (pos >= p.ids.size() || p.ids[pos] != kImage) std::abort();
  }
  for (int32_t id : p.ids) {
    if (id < 0 || id >= tok.vocab_size()) std::abort();
  }
  const std::string text = tok.decode(p.ids);
  flamingo::text::StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : p.ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const flamingo::text::Tokenizer& tok = tokenizer();
  const uint8_t control = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t num_images = control & 3u;
  flamingo::text::PromptOptions options;
  options.max_seq_len = (control & 4u) ? 16 : 2048;
  options.add_bos = (control & 8u) != 0;
  options.max_prompt_bytes = 1 << 16;

  try {
    const auto p = flamingo::text::tokenize_prompt(tok, text, num_images, options);
    check_result(tok, p, num_images, options.max_seq_len);
    // The text form and the marker count must agree.
    if (flamingo::text::count_image_markers(tok, text) != num_images) std::abort();
  } catch (const flamingo::Error& e) {
    check(e);
  }

  std::vector<flamingo::text::PromptSegment> segments;
  size_t images = 0;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find('\x1f', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view piece = text.substr(begin, end - begin);
    if (!piece.empty() && piece.front() == '\x1e') {
      segments.push_back(flamingo::text::PromptSegment::image());
      ++images;
      piece.remove_prefix(1);
    }
    if (!piece.empty() && piece.front() == '\x1d') {
      segments.push_back(flamingo::text::PromptSegment::literal_text(std::string(piece.substr(1))));
    } else if (!piece.empty() && piece.front() == '\x1c') {
      segments.push_back(flamingo::text::PromptSegment::with_markers(std::string(piece.substr(1))));
    } else if (!piece.empty()) {
      segments.push_back(flamingo::text::PromptSegment::plain(std::string(piece)));
    }
    begin = end + 1;
  }
  const size_t claimed = (control >> 4) & 1u ? images : num_images;
  try {
    const auto p = flamingo::text::tokenize_prompt(tok, segments, claimed, options);
    check_result(tok, p, claimed, options.max_seq_len);
  } catch (const flamingo::Error& e) {
    check(e);
  }
  return 0;
}
