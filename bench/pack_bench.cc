// Weight packing (kernels::pack_matrix), which is most of a model's load time: bytes of source
// weights packed per second by each ISA's packing kernels (pack/<type>_<isa>), beside the same
// bytes copied with memcpy into a freshly allocated buffer of the same kind (2 MiB aligned,
// huge pages advised: what any rearrangement into new memory costs at least, page faults and
// the kernel's zeroing included) in the same run.
//
//   build/bench/pack_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "util/large_buffer.h"
#include "util/thread_pool.h"
#include "weight_inputs.h"

namespace {

namespace fk = flamingo::kernels;
using fk::WeightType;

void run_pack(benchmark::State& state, WeightType type, fk::Isa isa, int64_t k, int64_t n,
              int threads) {
  const flamingo::bench::SourceWeights src = flamingo::bench::make_source_weights(type, k, n);
  flamingo::ThreadPool pool(threads);
  const fk::Isa saved = fk::active_isa();
  fk::set_isa(isa);
  for (auto _ : state) {
    fk::PackedMatrix p = fk::pack_matrix(src.view, pool);
    benchmark::DoNotOptimize(&p);
  }
  fk::set_isa(saved);
  state.counters["bytes/s"] = benchmark::Counter(static_cast<double>(fk::weight_bytes(type, n, k)),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void run_memcpy(benchmark::State& state, WeightType type, int64_t k, int64_t n) {
  const size_t bytes = fk::weight_bytes(type, n, k);
  const std::unique_ptr<uint8_t[]> src(new uint8_t[bytes]);
  std::memset(src.get(), 1, bytes);
  for (auto _ : state) {
    const flamingo::LargeBuffer dst = flamingo::allocate_large_buffer(bytes);
    if (!dst) {
      state.SkipWithError("out of memory");
      break;
    }
    std::memcpy(dst.get(), src.get(), bytes);
    benchmark::DoNotOptimize(dst.get());
    benchmark::ClobberMemory();
  }
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  const int64_t k = 2048, n = 5632;  // a TinyLlama MLP matrix
  std::vector<fk::Isa> isas{fk::Isa::kScalar};
  if (fk::cpu_has_avx2()) isas.push_back(fk::Isa::kAvx2);
  for (WeightType type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16, WeightType::kQ8_0,
                          WeightType::kQ4_0}) {
    const std::string shape = "/K:" + std::to_string(k) + "/N:" + std::to_string(n);
    for (fk::Isa isa : isas)
      for (int t : {1, 2})
        benchmark::RegisterBenchmark(("pack/" + std::string(fk::weight_type_name(type)) +
                                      (isa == fk::Isa::kAvx2 ? "_avx2" : "_scalar") + shape +
                                      "/threads:" + std::to_string(t))
                                         .c_str(),
                                     [=](benchmark::State& s) { run_pack(s, type, isa, k, n, t); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(
        ("pack/memcpy_" + std::string(fk::weight_type_name(type)) + shape).c_str(),
        [=](benchmark::State& s) { run_memcpy(s, type, k, n); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Every buffer from fresh pages, as when a model loads: glibc would otherwise hand back the
  // previous iteration's freed memory, and the page faults that dominate loading would vanish.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
