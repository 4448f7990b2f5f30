#include "util/huge_page_arena.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "util/large_buffer.h"

namespace flamingo {
namespace {

TEST(HugePageArena, BlocksAreAlignedDisjointAndWritable) {
  HugePageArena arena(kHugePageBytes);
  std::vector<std::pair<uint8_t*, size_t>> blocks;
  std::vector<std::shared_ptr<const void>> owners;
  // Sizes off the 64-byte alignment, and enough of them to need a second reservation.
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{100'000},
                       kHugePageBytes / 2, kHugePageBytes / 2 + 1, size_t{4096}}) {
    SCOPED_TRACE(bytes);
    HugePageArena::Block b = arena.allocate(bytes);
    ASSERT_NE(b.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, 0u);
    std::memset(b.data, static_cast<int>(blocks.size() + 1), bytes);
    blocks.emplace_back(b.data, bytes);
    owners.push_back(b.owner);
  }
  EXPECT_EQ(arena.reserved(), 2 * kHugePageBytes);
  // Every block still holds its own byte: none overlaps one written after it.
  for (size_t i = 0; i < blocks.size(); ++i)
    for (size_t j = 0; j < blocks[i].second; ++j)
      ASSERT_EQ(blocks[i].first[j], static_cast<uint8_t>(i + 1)) << "block " << i << " byte " << j;
}

TEST(HugePageArena, TheFirstBlockOfAReservationIsHugePageAligned) {
  HugePageArena arena(4 * kHugePageBytes);
  const HugePageArena::Block b = arena.allocate(100);
  ASSERT_NE(b.data, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % kHugePageBytes, 0u);
}

TEST(HugePageArena, ALargeRequestGetsItsOwnReservationAndSmallOnesCarryOn) {
  HugePageArena arena(kHugePageBytes);
  const HugePageArena::Block a = arena.allocate(1000);
  const HugePageArena::Block big = arena.allocate(3 * kHugePageBytes + 7);
  const HugePageArena::Block c = arena.allocate(1000);
  ASSERT_TRUE(a.data && big.data && c.data);
  std::memset(big.data, 1, 3 * kHugePageBytes + 7);
  EXPECT_EQ(c.data, a.data + 1024);  // the small blocks stay side by side
  EXPECT_EQ(arena.reserved(), 5 * kHugePageBytes);
  EXPECT_EQ(arena.used(), 1024 + 3 * kHugePageBytes + 64 + 1024);
}

TEST(HugePageArena, BlocksOutliveTheArena) {
  HugePageArena::Block b;
  {
    HugePageArena arena;
    b = arena.allocate(256);
    ASSERT_NE(b.data, nullptr);
  }
  std::memset(b.data, 7, 256);  // still mapped: the owner holds the reservation (ASan checks)
  EXPECT_EQ(b.data[255], 7);
}

TEST(HugePageArena, ImpossibleRequestsGiveNull) {
  HugePageArena arena;
  EXPECT_EQ(arena.allocate(SIZE_MAX).data, nullptr);
  EXPECT_EQ(arena.allocate(SIZE_MAX / 2 + 1).data, nullptr);
  EXPECT_NE(arena.allocate(64).data, nullptr);  // and the arena still works
}

TEST(HugePageArena, ConcurrentRequestsGetDisjointBlocks) {
  HugePageArena arena(kHugePageBytes);
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::vector<HugePageArena::Block>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        got[t].push_back(arena.allocate(5000));
        std::memset(got[t].back().data, t + 1, 5000);
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (const auto& b : got[t])
      for (size_t j = 0; j < 5000; j += 499) ASSERT_EQ(b.data[j], t + 1);
}

}  // namespace
}  // namespace flamingo
