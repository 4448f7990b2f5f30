// libFuzzer target: a whole request through the public API on a tiny parity model (by default
// tests/data/parity/openflamingo: 0.2 MB, 40x40 images; see session()): image bytes through the
// decoders and preprocessing, a prompt of template and literal text through the tokenizer and the
// marker checks, then the vision encoder, resampler, gated cross-attention and LM for a few
// generated tokens (greedy, sampled or beam search) or a scoring call. One Session serves every
// input, so its media cache and kept prompt see a long stream of requests; a call that reused
// the previous prompt's keys and values is run again on a new session, which must give the
// same bits. The reliability spec's fuzz_e2e_tiny.
//
// Input layout (fuzz/corpus/e2e_fuzzer has examples):
//   byte 0      bits 0-1 media items given (copies of the image), bit 2 score instead of
//               generate, bits 3-4 max_new_tokens - 1, bit 5 sample (temperature 0.9, top-k 5,
//               top-p 0.9), bit 6 beam search (2 beams), bit 7 repeat penalty and a stop string
//   bytes 1-2   image length L, little-endian (capped at what is left)
//   L bytes     the image file (PNG or JPEG)
//   the rest    the prompt: template text (its <image> markers count) up to the first 0x00,
//               then literal text (special strings stay text) up to the next 0x00, and so on
//               alternating
// Any exception other than flamingo::Error, any kInternal error, generated text that is not
// UTF-8, more tokens than asked for, or a log-probability that is not finite and <= 0 is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flamingo/flamingo.h"
#include "text/utf8.h"

namespace {

// The model directory: $FLAMINGO_FUZZ_MODEL, else the OpenFlamingo parity model. The other
// parity models (idefics, paper, video, quant_q8_0, quant_q4_0) take the same inputs down
// other placements, gates, resamplers and weight types.
const std::shared_ptr<const flamingo::Model>& model() {
  static const std::shared_ptr<const flamingo::Model> m = [] {
    flamingo::ModelOptions o;
    o.threads = 1;
    const char* dir = std::getenv("FLAMINGO_FUZZ_MODEL");
    return flamingo::Model::load(dir ? dir : FLAMINGO_FUZZ_MODEL, o);
  }();
  return m;
}

flamingo::Session& session() {
  static flamingo::Session s(model());
  return s;
}

// A call that reused the previous prompt's keys and values must give bitwise what a new
// session gives.
void check_same(const flamingo::GenerateResult& got, const flamingo::GenerateResult& want) {
  if (got.text != want.text || got.tokens.size() != want.tokens.size()) std::abort();
  for (size_t i = 0; i < got.tokens.size(); ++i)
    if (got.tokens[i].id != want.tokens[i].id || got.tokens[i].logprob != want.tokens[i].logprob)
      std::abort();
}

void check(const flamingo::Error& e) {
  if (e.code() == flamingo::ErrorCode::kInternal) std::abort();
}

void check_logprob(double lp) {
  if (!std::isfinite(lp) || lp > 1e-6) std::abort();
}

flamingo::Prompt build_prompt(std::string_view text, const std::vector<flamingo::Media>& media) {
  flamingo::Prompt p;
  bool literal = false;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find('\0', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string part(text.substr(begin, end - begin));
    if (literal)
      p.add_literal_text(part);
    else
      p.add_text(part);
    literal = !literal;
    begin = end + 1;
  }
  // The media go after the text parts so that marker/media mismatches reach the checks too.
  for (const flamingo::Media& m : media) p.add_media(m);
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  size_t image_len = data[1] | (static_cast<size_t>(data[2]) << 8);
  data += 3;
  size -= 3;
  if (image_len > size) image_len = size;
  const std::string_view prompt_text(reinterpret_cast<const char*>(data + image_len),
                                     size - image_len);

  flamingo::ImageLimits limits;
  limits.max_pixels = 512 * 512;  // keeps each input fast; larger images are the image fuzzer's
  limits.max_side = 2048;
  std::vector<flamingo::Media> media;
  try {
    const flamingo::Image img = flamingo::Image::from_memory(data, image_len, "fuzz", limits);
    for (int i = 0; i < (flags & 3); ++i) media.emplace_back(img);
  } catch (const flamingo::Error& e) {
    check(e);
    if (flags & 3) return 0;  // no image to give
  }

  try {
    const flamingo::Prompt prompt = build_prompt(prompt_text, media);
    if (flags & 4) {
      const std::vector<std::string> conts = {" a", std::string(prompt_text.substr(0, 8))};
      const std::vector<flamingo::ScoreResult> scores = session().score(prompt, conts);
      for (const flamingo::ScoreResult& s : scores) check_logprob(s.logprob);
      if (session().timings().prompt_tokens_reused > 0) {
        const std::vector<flamingo::ScoreResult> fresh =
            flamingo::Session(model()).score(prompt, conts);
        for (size_t i = 0; i < scores.size(); ++i)
          if (scores[i].logprob != fresh[i].logprob) std::abort();
      }
      return 0;
    }
    flamingo::GenerateOptions g;
    g.max_new_tokens = 1 + ((flags >> 3) & 3);
    if (flags & 32) {
      g.temperature = 0.9f;
      g.top_k = 5;
      g.top_p = 0.9f;
      g.seed = flags;
    }
    if (flags & 64) g.num_beams = 2;
    if (flags & 128) {
      g.repeat_penalty = 1.3f;
      g.stop_strings = {"e"};
    }
    const flamingo::GenerateResult r = session().generate(prompt, g);
    if (r.tokens.size() > static_cast<size_t>(g.max_new_tokens)) std::abort();
    if (flamingo::text::find_invalid_utf8(r.text) != std::string_view::npos) std::abort();
    for (const flamingo::TokenInfo& t : r.tokens) check_logprob(t.logprob);
    if (r.timings.prompt_tokens_reused > 0)
      check_same(r, flamingo::Session(model()).generate(prompt, g));
  } catch (const flamingo::Error& e) {
    check(e);
  }
  return 0;
}
