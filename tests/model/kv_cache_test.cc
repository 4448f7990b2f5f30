// KvCache::assign_prefix, which beam search uses to fork a beam: the copy holds the source's
// filled positions bit for bit, whatever buffers the destination had before.
#include <gtest/gtest.h>

#include <cstdint>

#include "model/llama.h"

namespace flamingo::model {
namespace {

KvCache filled_cache(int64_t reserved, int layers, int64_t row, int64_t length, float base) {
  KvCache c;
  c.reserve(reserved, layers, row);
  for (int l = 0; l < layers; ++l)
    for (int64_t i = 0; i < length * row; ++i) {
      c.k[static_cast<size_t>(l)][static_cast<size_t>(i)] = base + static_cast<float>(l * 1000 + i);
      c.v[static_cast<size_t>(l)][static_cast<size_t>(i)] =
          -base - static_cast<float>(l * 1000 + i);
    }
  c.length = length;
  return c;
}

void expect_same_prefix(const KvCache& got, const KvCache& want, int64_t row) {
  ASSERT_EQ(got.length, want.length);
  ASSERT_EQ(got.reserved, want.reserved);
  ASSERT_EQ(got.k.size(), want.k.size());
  for (size_t l = 0; l < want.k.size(); ++l) {
    ASSERT_EQ(got.k[l].size(), want.k[l].size());
    for (int64_t i = 0; i < want.length * row; ++i) {
      EXPECT_EQ(got.k[l][static_cast<size_t>(i)], want.k[l][static_cast<size_t>(i)]);
      EXPECT_EQ(got.v[l][static_cast<size_t>(i)], want.v[l][static_cast<size_t>(i)]);
    }
  }
}

TEST(KvCache, AssignPrefixIntoAnEmptyCache) {
  const KvCache src = filled_cache(10, 3, 8, 7, 1.f);
  KvCache dst;
  dst.assign_prefix(src);
  expect_same_prefix(dst, src, 8);
}

TEST(KvCache, AssignPrefixReusesSameShapedBuffersAndOverwritesOldContent) {
  const KvCache src = filled_cache(10, 3, 8, 4, 1.f);
  KvCache dst = filled_cache(10, 3, 8, 9, 500.f);
  const float* k0 = dst.k[0].data();
  dst.assign_prefix(src);
  expect_same_prefix(dst, src, 8);
  EXPECT_EQ(dst.k[0].data(), k0) << "same-shaped buffers should be reused, not reallocated";
}

TEST(KvCache, AssignPrefixReshapesADifferentCache) {
  const KvCache src = filled_cache(6, 2, 4, 6, 3.f);
  KvCache bigger = filled_cache(20, 5, 16, 20, 9.f);
  bigger.assign_prefix(src);
  expect_same_prefix(bigger, src, 4);
  KvCache empty_src;
  bigger.assign_prefix(empty_src);
  EXPECT_EQ(bigger.length, 0);
  EXPECT_TRUE(bigger.k.empty());
}

}  // namespace
}  // namespace flamingo::model
