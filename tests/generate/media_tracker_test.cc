#include "generate/media_tracker.h"

#include <gtest/gtest.h>

#include <vector>

namespace flamingo::generate {
namespace {

constexpr int32_t kImg = 9, kEos = 2, kEoc = 8;

std::vector<int32_t> track(MediaTracker t, const std::vector<int32_t>& ids) {
  std::vector<int32_t> out;
  for (int32_t id : ids) out.push_back(t.advance(id));
  return out;
}

TEST(MediaTracker, OpenFlamingoLatestImageInclusive) {
  // text, <image>, text, <|endofchunk|>, <image>, text: eoc does not reset, the marker sees its
  // image.
  const std::vector<int32_t> ids = {1, 5, kImg, 6, kEoc, kEos, 7, kImg, 6, 6};
  EXPECT_EQ(track(MediaTracker(kImg, kEos, false), ids),
            (std::vector<int32_t>{0, 0, 1, 1, 1, 1, 1, 2, 2, 2}));
}

TEST(MediaTracker, IdeficsResetsAfterEos) {
  const std::vector<int32_t> ids = {1, kImg, 6, kEos, 7, 7, kImg, 6};
  // The EOS token keeps its image; tokens after it see none until the next <image>.
  EXPECT_EQ(track(MediaTracker(kImg, kEos, true), ids),
            (std::vector<int32_t>{0, 1, 1, 1, 0, 0, 2, 2}));
}

TEST(MediaTracker, IncrementalEqualsBatch) {
  MediaTracker t(kImg, kEos, true);
  for (int32_t id : {1, kImg, 6}) t.advance(id);
  EXPECT_EQ(t.current(), 1);
  t.advance(kEos);
  EXPECT_EQ(t.current(), 0);
  EXPECT_EQ(t.images_seen(), 1);
}

}  // namespace
}  // namespace flamingo::generate
