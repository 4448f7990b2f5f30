// How many bytes a benchmark must sweep so that its data comes from DRAM, not the last-level
// cache: 4× the L3 the C library reports (STREAM's rule), and at least 128 MiB. The machines
// this runs on range from a 32 MiB to a 260 MiB L3, so a fixed size would measure the cache on
// some of them.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>

namespace flamingo::bench {

inline size_t dram_working_set_bytes() {
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max(size_t{128} << 20, l3 > 0 ? 4 * static_cast<size_t>(l3) : size_t{0});
}

}  // namespace flamingo::bench
