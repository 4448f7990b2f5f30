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

void check_image_count(const Tokenizer& tok, size_t markers, size_t image_segments,
                       size_t num_images) {
  const size_t found = markers + image_segments;
  if (found == num_images) return;
  const char* given = num_images == 1 ? " image was given" : " images were given";
  if (image_segments == 0)
    fail(ErrorCode::kInvalidArgument, "prompt has ", markers, " ", marker_name(tok),
         " markers but ", num_images, given);
  if (markers == 0)
    fail(ErrorCode::kInvalidArgument, "prompt has ", image_segments, " image segments but ",
         num_images, given);
  fail(ErrorCode::kInvalidArgument, "prompt has ", found, " images (", markers, " ",
       marker_name(tok), " markers in its text, ", image_segments, " image segments) but ",
       num_images, given);
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
  // The size check before the copy, so an oversized prompt is refused without one.
  check_common(tok, text.size(), num_images, options);
  const PromptSegment whole = PromptSegment::with_markers(std::string(text));
  return tokenize_prompt(tok, std::span<const PromptSegment>(&whole, 1), num_images, options);
}

TokenizedPrompt tokenize_prompt(const Tokenizer& tok, std::span<const PromptSegment> segments,
                                size_t num_images, const PromptOptions& options) {
  size_t bytes = 0, image_segments = 0;
  for (const PromptSegment& seg : segments) {
    bytes += seg.text.size();
    image_segments += seg.kind == PromptSegment::Kind::kImage;
  }
  check_common(tok, bytes, num_images, options);
  // Validate every segment before tokenizing any, so errors cost no sentencepiece time.
  std::vector<std::vector<TextSpan>> spans(segments.size());
  size_t markers = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const PromptSegment& seg = segments[i];
    if (seg.kind == PromptSegment::Kind::kImage) continue;
    if (const size_t bad = find_invalid_utf8(seg.text); bad != std::string_view::npos) {
      // A prompt of one text segment (the text form) reads as the whole prompt.
      if (segments.size() == 1)
        fail(ErrorCode::kInvalidArgument, "prompt is not valid UTF-8 at byte ", bad);
      fail(ErrorCode::kInvalidArgument, "prompt segment ", i, " is not valid UTF-8 at byte ", bad);
    }
    if (seg.literal) continue;
    spans[i] = tok.split_special(seg.text);
    for (const TextSpan& s : spans[i]) {
      if (s.special_id < 0 || s.special_id != tok.image()) continue;
      if (!seg.markers)
        fail(ErrorCode::kInvalidArgument, "prompt segment ", i, " contains the image marker ",
             marker_name(tok), " at byte ", s.begin,
             "; pass images as image segments, or mark the text literal");
      ++markers;
    }
  }
  check_image_count(tok, markers, image_segments, num_images);

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
