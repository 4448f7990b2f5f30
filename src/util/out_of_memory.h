// Public entry points run their work through reporting_out_of_memory(), so that an allocation
// failing anywhere below them (a std::vector, sentencepiece, a worker thread of the pool)
// reaches the caller as Error(kOutOfMemory, "out of memory while ...") like every other
// failure, rather than as a std::bad_alloc that the API does not promise.
#pragma once

#include <new>

#include "util/check.h"

namespace flamingo {

template <typename F, typename... What>
auto reporting_out_of_memory(F&& work, const What&... what) -> decltype(work()) {
  try {
    return work();
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::kOutOfMemory, "out of memory while ", what...);
  }
}

}  // namespace flamingo
