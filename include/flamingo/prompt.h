// An interleaved prompt of text and media items.
//
// Either build it piece by piece (add_text / add_media), or give text with "<image>" markers
// and the media in marker order. Each <image> marker (or add_media) stands for one media item;
// text tokens attend to the latest media item before them. Validation happens when a Session
// tokenises the prompt: the number of markers must equal the number of media items.
#pragma once

#include <string>
#include <vector>

#include "flamingo/image.h"

namespace flamingo {

class Prompt {
 public:
  Prompt() = default;
  // Text containing "<image>" markers (and any other special tokens of the model), with the
  // media in the order of the markers.
  Prompt(std::string text, std::vector<Media> media);

  Prompt& add_text(const std::string& text);
  // Appends an "<image>" marker bound to this media item.
  Prompt& add_media(Media media);

  const std::string& text() const { return text_; }
  const std::vector<Media>& media() const { return media_; }

 private:
  std::string text_;
  std::vector<Media> media_;
};

}  // namespace flamingo
