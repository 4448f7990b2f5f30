// Arrays of doubles for the bandwidth yardsticks, in the memory the packed weights live in
// (allocate_large_buffer: 2 MiB aligned, transparent huge pages where offered). On 4 KiB pages
// the hardware prefetcher stops at every page boundary: a read sweep there ran at 23-26 GB/s on
// one thread of the Zen 4 VM while the GEMV it is meant to bound, on huge pages, read 26-28.
#pragma once

#include <algorithm>
#include <cstddef>
#include <new>

#include "util/large_buffer.h"

namespace flamingo::bench {

class HugeArray {
 public:
  HugeArray(size_t n, double value) : buffer_(allocate_large_buffer(n * sizeof(double))), n_(n) {
    if (!buffer_) throw std::bad_alloc();
    std::fill_n(data(), n_, value);
  }
  double* data() { return reinterpret_cast<double*>(buffer_.get()); }
  const double* data() const { return reinterpret_cast<const double*>(buffer_.get()); }
  size_t size() const { return n_; }

 private:
  LargeBuffer buffer_;
  size_t n_;
};

}  // namespace flamingo::bench
