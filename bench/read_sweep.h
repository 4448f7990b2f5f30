// A read-only sweep: the simplest program that streams bytes from memory, and so the yardstick
// for kernels that do (GEMV streams its weights once). machine_limits_bench's ReadSum sweeps a
// DRAM-sized array with it; matmul_bench alternates it with GEMV calls over as many bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace flamingo::bench {

// The most doubles read_sweep can take in `chunks` pieces from `bytes` bytes (a multiple of
// 4 * chunks, rounded down).
inline int64_t sweep_doubles(size_t bytes, int64_t chunks) {
  const int64_t unit = 4 * chunks;
  return static_cast<int64_t>(bytes / sizeof(double)) / unit * unit;
}

// Sums x[0, n) in `chunks` fixed pieces on `pool`, one partial sum per piece into partial
// (resized to chunks). n must be a multiple of 4 * chunks. Four accumulators per piece so that
// the adds do not serialise on their latency.
inline void read_sweep(const double* x, int64_t n, int64_t chunks, ThreadPool& pool,
                       std::vector<double>& partial) {
  partial.resize(static_cast<size_t>(chunks));
  const int64_t per_chunk = n / chunks;
  pool.parallel_for(chunks, [&](int64_t t) {
    const double* p = x + t * per_chunk;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i < per_chunk; i += 4) {
      s0 += p[i];
      s1 += p[i + 1];
      s2 += p[i + 2];
      s3 += p[i + 3];
    }
    partial[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
  });
}

}  // namespace flamingo::bench
