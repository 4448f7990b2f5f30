#include "flamingo/prompt.h"

#include <utility>

namespace flamingo {

Prompt::Prompt(std::string text, std::vector<Media> media) : media_(std::move(media)) {
  parts_.push_back({Part::Kind::kText, std::move(text)});
}

Prompt& Prompt::add_text(const std::string& text) {
  // Appending to the previous text part keeps a marker split across two calls a marker, as
  // it was when the prompt was one string.
  if (!parts_.empty() && parts_.back().kind == Part::Kind::kText)
    parts_.back().text += text;
  else
    parts_.push_back({Part::Kind::kText, text});
  return *this;
}

Prompt& Prompt::add_literal_text(const std::string& text) {
  if (!parts_.empty() && parts_.back().kind == Part::Kind::kLiteralText)
    parts_.back().text += text;
  else
    parts_.push_back({Part::Kind::kLiteralText, text});
  return *this;
}

Prompt& Prompt::add_media(Media media) {
  parts_.push_back({Part::Kind::kMedia, {}});
  media_.push_back(std::move(media));
  return *this;
}

}  // namespace flamingo
