// Allocation of large, long-lived buffers (packed weights): aligned, and backed by transparent
// huge pages where the kernel offers them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace flamingo {

struct LargeBufferFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using LargeBuffer = std::unique_ptr<uint8_t[], LargeBufferFree>;

// Buffers from this size up are 2 MiB aligned and advised MADV_HUGEPAGE.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// At least `bytes` bytes, 64-byte aligned, contents unspecified; nullptr if the memory is not
// available. Huge pages matter twice for packed weights: the first write of a 4 KiB page is a
// page fault (a model of 1 GB is 250 000 of them at load), and GEMV streams the weights, where
// every 4 KiB page is a TLB miss and a boundary the hardware prefetcher does not cross.
LargeBuffer allocate_large_buffer(size_t bytes);

}  // namespace flamingo
