// The machine's measured limits, the yardsticks for the kernel benchmarks:
//   PeakFma:  fp32 FMA throughput per thread (12 independent ymm FMA chains, no memory
//             traffic), counter FLOP/s: the ceiling of our AVX2 kernels;
//   PeakFma512: the same with zmm registers, on machines with AVX-512 only: the machine's
//             real ceiling, which our AVX2 kernels cannot reach (context for the reader);
//   PeakF16Fma: 12 chains of vcvtph2ps from L1 + FMA, counter bytes/s of fp16 weights: the
//             f16 GEMV's ceiling where the conversion, not memory, is the limit;
//   Triad:    STREAM triad a[i] = b[i] + s·c[i] on three double arrays of together at least
//             4× the L3 (dram_working_set.h), counter bytes/s counted as STREAM does (24 bytes
//             per element);
//   ReadSum:  a read-only sweep of one array of the same total size (what a GEMV does to its
//             weights).
// Each takes the thread count as its argument and splits the work into fixed chunks on a
// flamingo::ThreadPool.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dram_working_set.h"
#include "huge_array.h"
#include "peak_fma.h"
#include "read_sweep.h"
#include "util/thread_pool.h"

namespace {

// Registered first, so that the FMA rows come before the memory ones.
[[maybe_unused]] const bool kPeakFmaRegistered =
    (flamingo::bench::register_peak_fma(/*with_zmm=*/true),
     flamingo::bench::register_peak_f16_fma(), true);

constexpr int64_t kChunks = 256;

// Doubles per triad array, a multiple of 4·kChunks.
int64_t triad_n() {
  static const int64_t n = [] {
    const int64_t want = static_cast<int64_t>(flamingo::bench::dram_working_set_bytes() / 24);
    const int64_t unit = 4 * kChunks;
    return (want + unit - 1) / unit * unit;
  }();
  return n;
}

// In huge pages, as the packed weights a GEMV streams are (huge_array.h).
struct Arrays {
  flamingo::bench::HugeArray a{static_cast<size_t>(triad_n()), 0.0};
  flamingo::bench::HugeArray b{static_cast<size_t>(triad_n()), 1.0};
  flamingo::bench::HugeArray c{static_cast<size_t>(triad_n()), 2.0};
};
Arrays& arrays() {
  static Arrays arr;
  return arr;
}

void BM_Triad(benchmark::State& state) {
  flamingo::ThreadPool pool(static_cast<int>(state.range(0)));
  Arrays& arr = arrays();
  double* a = arr.a.data();
  const double* b = arr.b.data();
  const double* c = arr.c.data();
  const double s = 3.0;
  const int64_t n = triad_n();
  for (auto _ : state) {
    pool.parallel_for(kChunks, [&](int64_t t) {
      const int64_t i0 = t * (n / kChunks), i1 = i0 + n / kChunks;
      for (int64_t i = i0; i < i1; ++i) a[i] = b[i] + s * c[i];
    });
    benchmark::ClobberMemory();
  }
  state.counters["bytes/s"] = benchmark::Counter(24.0 * static_cast<double>(n),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Triad)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ReadSum(benchmark::State& state) {
  flamingo::ThreadPool pool(static_cast<int>(state.range(0)));
  static const flamingo::bench::HugeArray x(static_cast<size_t>(3 * triad_n()), 1.0);
  std::vector<double> partial;
  const int64_t n = static_cast<int64_t>(x.size());
  for (auto _ : state) {
    flamingo::bench::read_sweep(x.data(), n, kChunks, pool, partial);
    benchmark::DoNotOptimize(partial.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(8.0 * static_cast<double>(n),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadSum)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
