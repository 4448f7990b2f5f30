#include "util/large_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace flamingo {
namespace {

TEST(LargeBuffer, SmallBuffersAre64ByteAlignedAndLargeOnesHugePageAligned) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{64}, size_t{100'000}, kHugePageBytes - 1,
                       kHugePageBytes, kHugePageBytes * 3 + 5}) {
    SCOPED_TRACE(bytes);
    const LargeBuffer b = allocate_large_buffer(bytes);
    ASSERT_NE(b, nullptr);
    const auto addr = reinterpret_cast<uintptr_t>(b.get());
    EXPECT_EQ(addr % 64, 0u);
    if (bytes >= kHugePageBytes) EXPECT_EQ(addr % kHugePageBytes, 0u);
    std::memset(b.get(), 0xA5, bytes);  // every requested byte is writable (ASan checks it)
  }
}

// Rounding up to the alignment must not wrap to a small allocation. (Sizes that round without
// wrapping go to aligned_alloc, which fails on its own; ASan would report those as errors.)
TEST(LargeBuffer, SizesThatWouldWrapWhenRoundedGiveNull) {
  EXPECT_EQ(allocate_large_buffer(SIZE_MAX), nullptr);
  EXPECT_EQ(allocate_large_buffer(SIZE_MAX - kHugePageBytes + 2), nullptr);
}

}  // namespace
}  // namespace flamingo
