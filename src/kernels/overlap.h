// Whether two float buffers share memory: the check behind the kernels' "output overlaps
// input" errors, where parallel tasks would otherwise read values another task already wrote.
#pragma once

#include <cstdint>

namespace flamingo::kernels {

// Whether [a, a + na) and [b, b + nb), in floats, share a byte.
inline bool overlaps(const float* a, int64_t na, const float* b, int64_t nb) {
  const auto at = [](const float* q) { return reinterpret_cast<uintptr_t>(q); };
  return at(a) < at(b) + 4 * static_cast<uintptr_t>(nb) &&
         at(b) < at(a) + 4 * static_cast<uintptr_t>(na);
}

}  // namespace flamingo::kernels
