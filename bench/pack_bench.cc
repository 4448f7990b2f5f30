// Weight packing (kernels::pack_matrix), which is most of a model's load time: bytes of source
// weights packed per second by each ISA's packing kernels (pack/<type>_<isa>), beside the same
// bytes copied with memcpy into a freshly allocated buffer of the same kind (2 MiB aligned,
// huge pages advised: what a plain copy into new memory costs, page faults and the kernel's
// zeroing included) in the same run; and at a model's scale (4× the L3) that memcpy and its two
// parts apart: the first touch of fresh pages, and a memcpy into resident ones.
//
//   build/bench/pack_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dram_working_set.h"
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

// Writing `bytes` into memory: a memcpy into a fresh buffer (the baseline of the pack rows),
// and at a model's scale (4× the L3, so that neither the zeroed pages nor the copy stay in
// cache, as when gigabytes load) that memcpy's two parts apart: the fresh buffer's first touch
// alone (one byte per 4 KiB page: the page faults and the kernel zeroing each page before
// handing it over), and the same memcpy into pages already resident. A load that packs into
// new memory pays for both; nothing in user space avoids the first. A fresh buffer is freed
// inside the timed loop, as the pack rows free theirs.
enum class Fill { kMemcpyFresh, kFirstTouch, kMemcpyResident };

void run_fill(benchmark::State& state, size_t bytes, Fill fill) {
  std::unique_ptr<uint8_t[]> src;
  if (fill != Fill::kFirstTouch) {
    src.reset(new uint8_t[bytes]);
    std::memset(src.get(), 1, bytes);
  }
  flamingo::LargeBuffer resident;
  if (fill == Fill::kMemcpyResident) {
    resident = flamingo::allocate_large_buffer(bytes);
    if (resident) std::memset(resident.get(), 0, bytes);
  }
  for (auto _ : state) {
    flamingo::LargeBuffer fresh;
    if (fill != Fill::kMemcpyResident) fresh = flamingo::allocate_large_buffer(bytes);
    uint8_t* dst = fill == Fill::kMemcpyResident ? resident.get() : fresh.get();
    if (dst == nullptr) {
      state.SkipWithError("out of memory");
      break;
    }
    if (fill == Fill::kFirstTouch) {
      auto* p = static_cast<volatile uint8_t*>(dst);
      for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    } else {
      std::memcpy(dst, src.get(), bytes);
    }
    benchmark::DoNotOptimize(dst);
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
        [=](benchmark::State& s) { run_fill(s, fk::weight_bytes(type, n, k), Fill::kMemcpyFresh); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  const size_t big = flamingo::bench::dram_working_set_bytes();
  const std::pair<const char*, Fill> fills[] = {{"pack/memcpy_fresh", Fill::kMemcpyFresh},
                                                {"pack/first_touch", Fill::kFirstTouch},
                                                {"pack/memcpy_resident", Fill::kMemcpyResident}};
  for (const auto& f : fills) {
    const Fill fill = f.second;
    benchmark::RegisterBenchmark((f.first + std::string("/bytes:") + std::to_string(big)).c_str(),
                                 [=](benchmark::State& s) { run_fill(s, big, fill); })
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
