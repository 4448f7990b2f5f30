// Which media item each token cross-attends to (spec §3.4).
//
// Token s attends to the latest media item at or before it: the <image> token itself sees its
// own image, and <|endofchunk|> does not reset anything. With reset_at_eos (IDEFICS), the
// tokens after an EOS see no media until the next <image>. Feeding tokens one at a time
// (decode) gives the same answer as feeding the whole sequence (prefill).
#pragma once

#include <cstdint>

namespace flamingo::generate {

class MediaTracker {
 public:
  MediaTracker() = default;
  MediaTracker(int32_t image_id, int32_t eos_id, bool reset_at_eos)
      : image_id_(image_id), eos_id_(eos_id), reset_at_eos_(reset_at_eos) {}

  // Consumes the next token; returns the 1-based media item it attends to, 0 for none.
  int32_t advance(int32_t id) {
    if (id == image_id_) {
      current_ = ++seen_;
      after_eos_ = false;
    } else if (after_eos_) {
      current_ = 0;
    }
    if (reset_at_eos_ && id == eos_id_) after_eos_ = true;
    return current_;
  }

  // The media item the next token would see if it is not an <image> (decode keeps it).
  int32_t current() const { return after_eos_ ? 0 : current_; }
  int32_t images_seen() const { return seen_; }

 private:
  int32_t image_id_ = -1;
  int32_t eos_id_ = -1;
  bool reset_at_eos_ = false;
  int32_t seen_ = 0;
  int32_t current_ = 0;
  bool after_eos_ = false;
};

}  // namespace flamingo::generate
