// FNV-1a, 64-bit: a hash that is the same in every run and build (std::hash is not), for keys
// and digests that are written to files.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flamingo {

inline constexpr uint64_t kFnv1aSeed = 1469598103934665603ull;

// Hashes n bytes, continuing from h (the hash of what came before, or the seed).
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnv1aSeed) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace flamingo
