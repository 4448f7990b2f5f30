#include "util/large_buffer.h"

#include <sys/mman.h>

namespace flamingo {

LargeBuffer allocate_large_buffer(size_t bytes) {
  const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  if (bytes > SIZE_MAX - align) return nullptr;
  const size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc needs a multiple
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(align, rounded == 0 ? align : rounded));
  // Only advice: where huge pages are off or unavailable the buffer is simply 4 KiB pages.
  // Only the whole huge pages the data fills are advised: a huge page over the tail would
  // populate up to 2 MiB nobody uses (TinyLlama q4_0 had 235 MB of such tails in its peak RSS,
  // 1.18x its weight file).
  if (p != nullptr && align == kHugePageBytes)
    ::madvise(p, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);
  return LargeBuffer(p);
}

}  // namespace flamingo
