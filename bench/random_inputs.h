// Deterministic pseudo-random inputs for the benchmarks: the same seed gives the same values in
// every run and every benchmark program, so figures are comparable across runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flamingo::bench {

// n values uniform in [-1, 1) from a 32-bit LCG (cheap enough for multi-GiB weight copies).
inline std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) * (2.f / 16777216.f) - 1.f;
  }
  return v;
}

}  // namespace flamingo::bench
