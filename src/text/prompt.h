// Interleaved prompts: text with image markers → token ids, checked against the images.
//
// OpenFlamingo silently attends uniformly to all images when the markers and the images
// disagree (reliability spec §5.3); here any mismatch is an error, found by an O(n) scan
// before sentencepiece runs, so 10 000 stray markers cost microseconds, not a tokenisation.
//
// Two equivalent forms:
//  * text: "<image>Output: two cats.<|endofchunk|><image>Output:" — every special string
//    (tokens.special) is a token, "<image>" (the string of tokens.image) marks an image;
//  * structured: segments {image} and {text}; text segments are split on the special strings
//    like the text form, except that the image marker is refused inside them (images are
//    only given as image segments), or, with `literal`, taken as plain text throughout —
//    the way to pass untrusted user text that may contain "<image>" or "<|endofchunk|>" —
//    or, with `markers`, counted as an image exactly as in the text form (the public Prompt's
//    add_text, which may sit beside add_media and add_literal_text in one prompt).
// The structured form [image, text "Output:"] yields exactly the ids of "<image>Output:", and
// [markers "<image>Output:"] the same.
//
// Checks, in order: prompt bytes ≤ max_prompt_bytes (kResourceLimit); valid UTF-8
// (kInvalidArgument with the byte offset); markers == images (kInvalidArgument: "prompt has 3
// <image> markers but 2 images were given"); non-empty (an empty prompt gives [BOS] with
// add_bos and kInvalidArgument without); tokens ≤ max_seq_len (kResourceLimit with both).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace flamingo::text {

struct PromptOptions {
  std::optional<bool> add_bos;  // default: the tokenizer config's add_bos
  int64_t max_seq_len = 0;      // the LM context (config lm.max_seq_len); required
  size_t max_prompt_bytes = size_t{1} << 20;
};

struct PromptSegment {
  enum class Kind { kText, kImage };
  Kind kind = Kind::kText;
  std::string text;
  bool literal = false;  // text only: no special-token parsing at all
  bool markers = false;  // text only: an image marker in the text stands for the next image

  static PromptSegment image() { return {Kind::kImage, {}, false, false}; }
  static PromptSegment plain(std::string t) { return {Kind::kText, std::move(t), false, false}; }
  static PromptSegment literal_text(std::string t) {
    return {Kind::kText, std::move(t), true, false};
  }
  static PromptSegment with_markers(std::string t) {
    return {Kind::kText, std::move(t), false, true};
  }
};

struct TokenizedPrompt {
  std::vector<int32_t> ids;
  std::vector<size_t> image_positions;  // index into ids of each image token, in order
};

// Number of image markers in `text` (the leftmost-longest special split, so a marker that is
// part of a longer special string does not count). No UTF-8 check, no sentencepiece.
size_t count_image_markers(const Tokenizer& tok, std::string_view text);

TokenizedPrompt tokenize_prompt(const Tokenizer& tok, std::string_view text, size_t num_images,
                                const PromptOptions& options);
TokenizedPrompt tokenize_prompt(const Tokenizer& tok, std::span<const PromptSegment> segments,
                                size_t num_images, const PromptOptions& options);

}  // namespace flamingo::text
