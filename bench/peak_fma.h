// The machine's fp32 FMA throughput, the yardstick of every "% of peak" in the kernel tables:
// each thread runs 12 independent FMA chains with no memory traffic. machine_limits_bench
// reports it before and after the other benchmarks; a kernel benchmark can also register it
// among its own rows, so that with --benchmark_enable_random_interleaving its repetitions are
// spread over the same minutes as the kernels' and a busy host slows both alike.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "util/thread_pool.h"

namespace flamingo::bench {

inline constexpr int64_t kFmaIters = 1 << 22;

// Written in assembly so that no compiler spills or folds the chains: 12 accumulators cover
// the FMA latency (4 cycles) × throughput (2 per cycle) with room to spare. R is the register
// kind: "ymm" (AVX2) or "zmm" (AVX-512). Plain assembly text, so the file needs no -mavx512f;
// the zmm loop runs only where the CPU and the OS (XCR0) support AVX-512.
// clang-format off
#define FLAMINGO_COPY0(R, n) "vmovaps %%" R "0, %%" R #n "\n\t"
#define FLAMINGO_FMA(R, n) "vfmadd231ps %%" R "15, %%" R "14, %%" R #n "\n\t"
#define FLAMINGO_FMA_LOOP(name, R)                                                              \
  inline float name(int64_t iters) {                                                            \
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

FLAMINGO_FMA_LOOP(fma_loop_ymm, "ymm")
FLAMINGO_FMA_LOOP(fma_loop_zmm, "zmm")
#undef FLAMINGO_FMA_LOOP
#undef FLAMINGO_FMA

// An f16 GEMV's instruction roof: each of 12 chains converts 8 fp16 values with vcvtph2ps
// from memory (an L1-resident 192-byte block, as a GEMV's weights come from memory) into one
// FMA. Where the conversion competes with the FMAs for pipes, this and not DRAM can bound a
// one-thread f16 decode. On Zen 4 the memory form runs at the FMA peak (107-117 GB/s of fp16
// per thread); the register form, which this loop used at first, ran at half (58.6).
// clang-format off
#define FLAMINGO_CVT_FMA(n, t, off)                                                             \
  "vcvtph2ps " #off "(%1), %%ymm" #t "\n\tvfmadd231ps %%ymm" #t ", %%ymm14, %%ymm" #n "\n\t"
inline float f16_fma_loop_ymm(int64_t iters) {
  alignas(64) static const uint16_t kHalves[96] = {};  // +0.0: no subnormal or NaN inputs
  __asm__ volatile(
      "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"
      FLAMINGO_COPY0("ymm", 1) FLAMINGO_COPY0("ymm", 2) FLAMINGO_COPY0("ymm", 3)
      FLAMINGO_COPY0("ymm", 4) FLAMINGO_COPY0("ymm", 5) FLAMINGO_COPY0("ymm", 6)
      FLAMINGO_COPY0("ymm", 7) FLAMINGO_COPY0("ymm", 8) FLAMINGO_COPY0("ymm", 9)
      FLAMINGO_COPY0("ymm", 10) FLAMINGO_COPY0("ymm", 11) FLAMINGO_COPY0("ymm", 14)
      "1:\n\t"
      FLAMINGO_CVT_FMA(0, 12, 0) FLAMINGO_CVT_FMA(1, 13, 16) FLAMINGO_CVT_FMA(2, 12, 32)
      FLAMINGO_CVT_FMA(3, 13, 48) FLAMINGO_CVT_FMA(4, 12, 64) FLAMINGO_CVT_FMA(5, 13, 80)
      FLAMINGO_CVT_FMA(6, 12, 96) FLAMINGO_CVT_FMA(7, 13, 112) FLAMINGO_CVT_FMA(8, 12, 128)
      FLAMINGO_CVT_FMA(9, 13, 144) FLAMINGO_CVT_FMA(10, 12, 160) FLAMINGO_CVT_FMA(11, 13, 176)
      "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"
      : "+r"(iters)
      : "r"(kHalves)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "cc", "memory");
  return static_cast<float>(iters);
}
// clang-format on
#undef FLAMINGO_CVT_FMA
#undef FLAMINGO_COPY0

// Every thread (state.range(0) of them) runs `loop` once per iteration, each call worth
// `per_call` of `unit` (FLOPs of the 12 FMA chains, or the fp16 bytes they convert).
// Counters: <unit>/s and <unit>/s_per_thread.
inline void run_peak(benchmark::State& state, float (*loop)(int64_t), double per_call,
                     const std::string& unit) {
  const int threads = static_cast<int>(state.range(0));
  ThreadPool pool(threads);
  std::vector<float> sink(static_cast<size_t>(threads));
  for (auto _ : state) {
    pool.parallel_for(threads, [&](int64_t t) { sink[static_cast<size_t>(t)] = loop(kFmaIters); });
    benchmark::DoNotOptimize(sink.data());
  }
  const double total = per_call * threads;
  state.counters[unit + "/s"] =
      benchmark::Counter(total, benchmark::Counter::kIsIterationInvariantRate);
  state.counters[unit + "/s_per_thread"] =
      benchmark::Counter(per_call, benchmark::Counter::kIsIterationInvariantRate);
}

// `name`/<threads> for 1 and 2 threads, skipped with `missing` where `supported()` is false.
inline void register_peak(const char* name, bool (*supported)(), const char* missing,
                          float (*loop)(int64_t), double per_call, const char* unit) {
  benchmark::RegisterBenchmark(name,
                               [=](benchmark::State& s) {
                                 if (!supported()) {
                                   s.SkipWithError(missing);
                                   return;
                                 }
                                 run_peak(s, loop, per_call, unit);
                               })
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

// FLOPs of one call of an FMA loop: 12 chains of `lanes`-float FMAs.
inline double fma_loop_flops(int lanes) {
  return 2.0 * lanes * 12 * static_cast<double>(kFmaIters);
}

// BM_PeakFma (ymm: the ceiling of our AVX2 kernels) and, with `with_zmm`, BM_PeakFma512 (the
// machine's own ceiling where AVX-512 exists).
inline void register_peak_fma(bool with_zmm) {
  register_peak("BM_PeakFma", kernels::cpu_has_avx2, "no AVX2/FMA", fma_loop_ymm, fma_loop_flops(8),
                "FLOP");
  if (with_zmm)
    register_peak(
        "BM_PeakFma512", [] { return __builtin_cpu_supports("avx512f") != 0; }, "no AVX-512",
        fma_loop_zmm, fma_loop_flops(16), "FLOP");
}

// BM_PeakF16Fma/<threads>: the f16 GEMV's roof beside the FMA peak, in bytes of fp16 weights
// (16 per convert-FMA pair), to set beside a GEMV's GB/s.
inline void register_peak_f16_fma() {
  register_peak(
      "BM_PeakF16Fma",
      [] { return kernels::cpu_has_avx2() && __builtin_cpu_supports("f16c") != 0; },
      "no AVX2/FMA/F16C", f16_fma_loop_ymm, 16.0 * 12 * static_cast<double>(kFmaIters), "bytes");
}

}  // namespace flamingo::bench
