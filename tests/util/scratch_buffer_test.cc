#include "util/scratch_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "flamingo/error.h"

namespace flamingo {
namespace {

TEST(ScratchBuffer, GrowsToTheLargestRequestAndKeepsIt) {
  ScratchBuffer s;
  float* small = s.floats(100);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 64, 0u);
  std::memset(small, 0, 100 * sizeof(float));
  float* big = s.floats(1'000'000);  // past a huge page
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % kHugePageBytes, 0u);
  std::memset(big, 0, 1'000'000 * sizeof(float));  // every float writable (ASan checks)
  big[999'999] = 7.f;
  // A smaller request reuses the same memory, contents untouched.
  EXPECT_EQ(s.floats(10), big);
  EXPECT_EQ(s.floats(1'000'000), big);
  EXPECT_EQ(big[999'999], 7.f);
}

TEST(ScratchBuffer, ImpossibleSizesThrowAndLeaveItUsable) {
  ScratchBuffer s;
  // Counts whose byte size overflows. (Sizes that fit go to aligned_alloc, whose failure on
  // absurd sizes ASan reports as an error instead of returning null.)
  for (size_t n : {SIZE_MAX, SIZE_MAX / 4 + 1}) {
    try {
      s.floats(n);
      FAIL() << n << " floats were granted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kResourceLimit) << e.what();
    }
  }
  float* p = s.floats(16);
  ASSERT_NE(p, nullptr);
  p[15] = 1.f;
}

}  // namespace
}  // namespace flamingo
