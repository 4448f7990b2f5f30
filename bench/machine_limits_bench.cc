// The machine's measured limits, the yardsticks for the kernel benchmarks:
//   PeakFma:  fp32 FMA throughput per thread (12 independent ymm FMA chains, no memory
//             traffic), counter FLOP/s: the ceiling of our AVX2 kernels;
//   PeakFma512: the same with zmm registers, on machines with AVX-512 only: the machine's
//             real ceiling, which our AVX2 kernels cannot reach (context for the reader);
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
#include "kernels/cpu.h"
#include "util/thread_pool.h"

namespace {

constexpr int64_t kFmaIters = 1 << 22;

// Written in assembly so that no compiler spills or folds the chains: 12 accumulators cover
// the FMA latency (4 cycles) × throughput (2 per cycle) with room to spare. R is the register
// kind: "ymm" (AVX2) or "zmm" (AVX-512). Plain assembly text, so the file needs no -mavx512f;
// the zmm loop runs only where the CPU and the OS (XCR0) support AVX-512.
// clang-format off
#define FLAMINGO_COPY0(R, n) "vmovaps %%" R "0, %%" R #n "\n\t"
#define FLAMINGO_FMA(R, n) "vfmadd231ps %%" R "15, %%" R "14, %%" R #n "\n\t"
#define FLAMINGO_FMA_LOOP(name, R)                                                              \
  float name(int64_t iters) {                                                                   \
    __asm__ volatile(                                                                           \
        "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"                                                     \
        FLAMINGO_COPY0(R, 1) FLAMINGO_COPY0(R, 2) FLAMINGO_COPY0(R, 3) FLAMINGO_COPY0(R, 4)     \
        FLAMINGO_COPY0(R, 5) FLAMINGO_COPY0(R, 6) FLAMINGO_COPY0(R, 7) FLAMINGO_COPY0(R, 8)     \
        FLAMINGO_COPY0(R, 9) FLAMINGO_COPY0(R, 10) FLAMINGO_COPY0(R, 11) FLAMINGO_COPY0(R, 14)  \
        FLAMINGO_COPY0(R, 15)                                                                   \
        "1:\n\t"                                                                                \
        FLAMINGO_FMA(R, 0) FLAMINGO_FMA(R, 1) FLAMINGO_FMA(R, 2) FLAMINGO_FMA(R, 3)             \
        FLAMINGO_FMA(R, 4) FLAMINGO_FMA(R, 5) FLAMINGO_FMA(R, 6) FLAMINGO_FMA(R, 7)             \
        FLAMINGO_FMA(R, 8) FLAMINGO_FMA(R, 9) FLAMINGO_FMA(R, 10) FLAMINGO_FMA(R, 11)           \
        "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"                                                    \
        : "+r"(iters)                                                                           \
        :                                                                                       \
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",       \
          "xmm10", "xmm11", "xmm14", "xmm15", "cc");                                            \
    return static_cast<float>(iters);                                                           \
  }
// clang-format on

FLAMINGO_FMA_LOOP(fma_loop, "ymm")
FLAMINGO_FMA_LOOP(fma_loop_512, "zmm")
#undef FLAMINGO_FMA_LOOP
#undef FLAMINGO_FMA
#undef FLAMINGO_COPY0

// Every thread runs `loop` once per iteration; `lanes` floats per FMA, 12 chains.
void run_peak_fma(benchmark::State& state, float (*loop)(int64_t), int lanes) {
  const int threads = static_cast<int>(state.range(0));
  flamingo::ThreadPool pool(threads);
  std::vector<float> sink(static_cast<size_t>(threads));
  for (auto _ : state) {
    pool.parallel_for(threads, [&](int64_t t) { sink[static_cast<size_t>(t)] = loop(kFmaIters); });
    benchmark::DoNotOptimize(sink.data());
  }
  const double flops = 2.0 * lanes * 12 * static_cast<double>(kFmaIters) * threads;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s_per_thread"] =
      benchmark::Counter(flops / threads, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PeakFma(benchmark::State& state) {
  if (!flamingo::kernels::cpu_has_avx2()) {
    state.SkipWithError("no AVX2/FMA");
    return;
  }
  run_peak_fma(state, fma_loop, 8);
}
BENCHMARK(BM_PeakFma)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_PeakFma512(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("no AVX-512");
    return;
  }
  run_peak_fma(state, fma_loop_512, 16);
}
BENCHMARK(BM_PeakFma512)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

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

struct Arrays {
  std::vector<double> a, b, c;
  Arrays() : a(triad_n(), 0.0), b(triad_n(), 1.0), c(triad_n(), 2.0) {}
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
  static std::vector<double> x(static_cast<size_t>(3 * triad_n()), 1.0);
  std::vector<double> partial(kChunks);
  const int64_t n = static_cast<int64_t>(x.size());
  for (auto _ : state) {
    pool.parallel_for(kChunks, [&](int64_t t) {
      const int64_t i0 = t * (n / kChunks), i1 = i0 + n / kChunks;
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t i = i0; i < i1; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
      }
      partial[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
    });
    benchmark::DoNotOptimize(partial.data());
  }
  state.counters["bytes/s"] =
      benchmark::Counter(8.0 * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadSum)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
