#include "util/scratch_buffer.h"

#include "util/check.h"

namespace flamingo {

float* ScratchBuffer::floats(size_t n) {
  if (n > capacity_) {
    if (n > SIZE_MAX / sizeof(float))
      fail(ErrorCode::kResourceLimit, "scratch buffer of ", n, " floats is too large");
    buffer_ = allocate_large_buffer(n * sizeof(float));
    if (!buffer_) {
      capacity_ = 0;
      fail(ErrorCode::kOutOfMemory, "cannot allocate ", n * sizeof(float), " bytes of activations");
    }
    capacity_ = n;
  }
  return reinterpret_cast<float*>(buffer_.get());
}

}  // namespace flamingo
