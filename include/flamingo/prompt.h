// An interleaved prompt of text and media items.
//
// Either build it piece by piece (add_text / add_literal_text / add_media), or give text with
// "<image>" markers and the media in marker order, or both: the constructor's text is the
// first part. Each <image> marker (in add_text text or the constructor's) and each add_media
// stands for one media item: the n-th of them, counted through the whole prompt, for
// media()[n]. Text tokens attend to the latest media item before them. Validation happens
// when a Session tokenises the prompt: the number of markers and add_media calls together
// must equal the number of media items. Each part is tokenised on its own, so text split
// across parts may tokenise differently from the same text in one part.
//
// Text given to add_text (and to the constructor) may contain the model's special strings
// ("<image>", "<|endofchunk|>", ...), and each one becomes that token: use it for the prompt
// template you wrote. Text given to add_literal_text is tokenised as plain text whatever it
// contains: use it for anything a user typed, so that a typed "<image>" cannot ask for a
// media item or end a chunk.
#pragma once

#include <string>
#include <vector>

#include "flamingo/image.h"

namespace flamingo {

class Prompt {
 public:
  // One piece of the prompt, in order.
  struct Part {
    enum class Kind {
      kText,         // special strings are tokens, "<image>" markers stand for media items
      kLiteralText,  // tokenised as plain text
      kMedia,        // an "<image>" from add_media
    };
    Kind kind = Kind::kText;
    std::string text;  // kText and kLiteralText
  };

  Prompt() = default;
  // Text containing "<image>" markers (and any other special tokens of the model), with the
  // media in the order of the markers.
  Prompt(std::string text, std::vector<Media> media);

  Prompt& add_text(const std::string& text);
  Prompt& add_literal_text(const std::string& text);
  // Appends an "<image>" bound to this media item.
  Prompt& add_media(Media media);

  const std::vector<Part>& parts() const { return parts_; }
  const std::vector<Media>& media() const { return media_; }

 private:
  std::vector<Part> parts_;
  std::vector<Media> media_;
};

}  // namespace flamingo
