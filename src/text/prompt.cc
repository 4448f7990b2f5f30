#include "text/prompt.h"

#include "text/utf8.h"
#include "util/check.h"

namespace flamingo::text {
namespace {

std::string marker_name(const Tokenizer& tok) {
  return tok.image() >= 0 ? std::string(tok.piece(tok.image())) : std::string("<image>");
}

void check_common(const Tokenizer& tok, size_t bytes, size_t num_images,
                  const PromptOptions& options) {
  if (options.max_seq_len <= 0)
    fail(ErrorCode::kInvalidArgument, "max_seq_len must be positive, got ", options.max_seq_len);
  if (bytes > options.max_prompt_bytes)
    fail(ErrorCode::kResourceLimit, "prompt is ", bytes, " bytes, over the limit of ",
         options.max_prompt_bytes);
  if (num_images > 0 && tok.image() < 0)
    fail(ErrorCode::kInvalidArgument, num_images,
         " images were given but the model has no image token");
}

void check_image_count(const Tokenizer& tok, size_t markers, size_t num_images,
                       std::string_view what) {
  if (markers != num_images)
    fail(ErrorCode::kInvalidArgument, "prompt has ", markers, " ", what, " but ", num_images,
         num_images == 1 ? " image was" : " images were", " given");
}

bool want_bos(const Tokenizer& tok, const PromptOptions& options) {
  return options.add_bos.value_or(tok.add_bos());
}

void start(const Tokenizer& tok, const PromptOptions& options, TokenizedPrompt* p) {
  if (want_bos(tok, options)) {
    if (tok.bos() < 0) fail(ErrorCode::kInvalidArgument, "BOS requested but the model has none");
    p->ids.push_back(tok.bos());
  }
}

void push_special(const Tokenizer& tok, int32_t id, TokenizedPrompt* p) {
  if (id == tok.image()) p->image_positions.push_back(p->ids.size());
  p->ids.push_back(id);
}

TokenizedPrompt finish(TokenizedPrompt p, const PromptOptions& options) {
  if (p.ids.empty())
    fail(ErrorCode::kInvalidArgument,
         "prompt is empty: no text, no images, and no BOS token to start from");
  if (static_cast<int64_t>(p.ids.size()) > options.max_seq_len)
    fail(ErrorCode::kResourceLimit, "prompt (", p.ids.size(), " tokens) exceeds the context (",
         options.max_seq_len, " tokens)");
  return p;
}

}  // namespace

size_t count_image_markers(const Tokenizer& tok, std::string_view text) {
  if (tok.image() < 0) return 0;
  size_t n = 0;
  for (const TextSpan& s : tok.split_special(text)) n += s.special_id == tok.image();
  return n;
}

TokenizedPrompt tokenize_prompt(const Tokenizer& tok, std::string_view text, size_t num_images,
                                const PromptOptions& options) {
  check_common(tok, text.size(), num_images, options);
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    fail(ErrorCode::kInvalidArgument, "prompt is not valid UTF-8 at byte ", bad);
  const std::vector<TextSpan> spans = tok.split_special(text);
  size_t markers = 0;
  if (tok.image() >= 0)
    for (const TextSpan& s : spans) markers += s.special_id == tok.image();
  check_image_count(tok, markers, num_images, marker_name(tok) + " markers");

  TokenizedPrompt p;
  start(tok, options, &p);
  for (const TextSpan& s : spans) {
    if (s.special_id >= 0) {
      push_special(tok, s.special_id, &p);
    } else {
      tok.encode_plain(text.substr(s.begin, s.end - s.begin), s.begin, &p.ids);
    }
  }
  return finish(std::move(p), options);
}

TokenizedPrompt tokenize_prompt(const Tokenizer& tok, std::span<const PromptSegment> segments,
                                size_t num_images, const PromptOptions& options) {
  size_t bytes = 0, images = 0;
  for (const PromptSegment& seg : segments) {
    bytes += seg.text.size();
    images += seg.kind == PromptSegment::Kind::kImage;
  }
  check_common(tok, bytes, num_images, options);
  // Validate every segment before tokenizing any, so errors cost no sentencepiece time.
  std::vector<std::vector<TextSpan>> spans(segments.size());
  for (size_t i = 0; i < segments.size(); ++i) {
    const PromptSegment& seg = segments[i];
    if (seg.kind == PromptSegment::Kind::kImage) continue;
    if (const size_t bad = find_invalid_utf8(seg.text); bad != std::string_view::npos)
      fail(ErrorCode::kInvalidArgument, "prompt segment ", i, " is not valid UTF-8 at byte ", bad);
    if (seg.literal) continue;
    spans[i] = tok.split_special(seg.text);
    for (const TextSpan& s : spans[i]) {
      if (s.special_id >= 0 && s.special_id == tok.image())
        fail(ErrorCode::kInvalidArgument, "prompt segment ", i, " contains the image marker ",
             marker_name(tok), " at byte ", s.begin,
             "; pass images as image segments, or mark the text literal");
    }
  }
  check_image_count(tok, images, num_images, "image segments");

  TokenizedPrompt p;
  start(tok, options, &p);
  for (size_t i = 0; i < segments.size(); ++i) {
    const PromptSegment& seg = segments[i];
    if (seg.kind == PromptSegment::Kind::kImage) {
      push_special(tok, tok.image(), &p);
    } else if (seg.literal) {
      tok.encode_plain(seg.text, 0, &p.ids);
    } else {
      for (const TextSpan& s : spans[i]) {
        if (s.special_id >= 0) {
          push_special(tok, s.special_id, &p);
        } else {
          tok.encode_plain(std::string_view(seg.text).substr(s.begin, s.end - s.begin), s.begin,
                           &p.ids);
        }
      }
    }
  }
  return finish(std::move(p), options);
}

}  // namespace flamingo::text
