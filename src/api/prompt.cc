#include "flamingo/prompt.h"

#include <utility>

namespace flamingo {

Prompt::Prompt(std::string text, std::vector<Media> media)
    : text_(std::move(text)), media_(std::move(media)) {}

Prompt& Prompt::add_text(const std::string& text) {
  text_ += text;
  return *this;
}

Prompt& Prompt::add_media(Media media) {
  text_ += "<image>";
  media_.push_back(std::move(media));
  return *this;
}

}  // namespace flamingo
