// Memory a forward pass reuses from one call to the next on the same thread.
#pragma once

#include <cstddef>

#include "util/large_buffer.h"

namespace flamingo {

// Grows to the largest size asked for and keeps it; contents are unspecified. Fresh
// temporaries on every call cost a zero-fill pass and, above glibc's mmap threshold, a page
// fault per 4 KiB page each time: a 64-token prefill of TinyLlama allocated 98 MB of them
// across its 22 layers. Large buffers come on huge pages (allocate_large_buffer). Use one
// per thread (thread_local): a buffer is not shared.
class ScratchBuffer {
 public:
  // n floats, 64-byte aligned; throws flamingo::Error (kResourceLimit) if they cannot be had.
  float* floats(size_t n);

 private:
  LargeBuffer buffer_;
  size_t capacity_ = 0;  // floats
};

}  // namespace flamingo
