// kernels::matmul for every weight type beside OpenBLAS (cblas_sgemm / cblas_sgemv) and Eigen
// 3.4 on the same shapes, in the same run.
//
// Names: matmul/<impl>/M:<m>/K:<k>/N:<n>/threads:<t>, impl ∈ {f32, f16, bf16, q8_0, q4_0,
// openblas, eigen}. Counters: FLOP/s (2·M·N·K per call) and weight_bytes/s (bytes of the
// weight matrix in its storage type per call: the GEMV figure). Weights are packed once per
// shape, outside the timed loop. Q8_0/Q4_0 at M < 8 run with int8_activations, as the
// language model's decode does. For M < 64 every call reads a different copy of the weights,
// the copies together 4× the L3 cache (dram_working_set.h), so the weights come from DRAM as in
// a real decode (one copy of 2048×2048 f32 weights fits in a 32 MiB L3 and would be read at
// cache speed).
//
// matmul_beside_sweep/<type>/M:1/K:<k>/N:<n>/threads:<t>: the GEMV row of the same name,
// alternated call by call with a read sweep of as many bytes (run_gemv_beside_sweep); its
// of_sweep counter is the GEMV's share of the bandwidth the machine gave at that moment.
//
// microkernel/f32_gemm_6x16_<isa>/kc:<kc>: the GEMM's register tile alone, hot: one kc×16
// weight sub-panel (L1) against 32 packed 6-row A tiles (L2), as the blocked GEMM calls it.
// Its FLOP/s is the ceiling any cache blocking around this tile can reach.
//
// BM_PeakFma/<threads>: the machine's FMA loop (peak_fma.h) among these rows, so that a run
// with --benchmark_enable_random_interleaving measures the yardstick in the same minutes as
// the kernels (run_kernels.sh with INTERLEAVE=1).
//
// microkernel/gemv_<type>_<isa>/K:<k>: one GEMV kernel alone, hot: M = 1 against the panels of
// a matrix of about 768 KiB (resident in L2), no thread pool. Its weight bytes/s is the
// rate the kernel can consume when memory is not the limit: if it is not well above the DRAM
// bandwidth per core, the kernel and not the memory bounds the decode.
// microkernel/gemv_<q8_0|q4_0>_1x32_<isa>/K:<k>: the same with the decode kernel that takes two
// panels at once (what matmul runs for M = 1 on the quantised types under DecodeStreams::kSeveral).
// microkernel/gemv_<f32|f16|bf16>_1x16_avx2/K:<k>: the single-stream decode kernel
// (DecodeStreams::kOne). The matmul rows run the CPU's own choice (kernels/cpu.h);
// FLAMINGO_DECODE_STREAMS=one or several makes them run the other.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "dram_working_set.h"
#include "huge_array.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"
#include "kernels/matmul_packed.h"
#include "peak_fma.h"
#include "random_inputs.h"
#include "read_sweep.h"
#include "util/thread_pool.h"
#include "weight_inputs.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using flamingo::kernels::WeightType;
namespace fk = flamingo::kernels;

using flamingo::bench::random_vector;

// fp32 weights of one (K, N) shape, generated once.
const std::vector<float>& weights_f32(int64_t k, int64_t n) {
  static std::map<std::pair<int64_t, int64_t>, std::vector<float>> cache;
  auto& w = cache[{k, n}];
  if (w.empty()) w = random_vector(static_cast<size_t>(k * n), static_cast<uint32_t>(k * 31 + n));
  return w;
}

// Packed from the same values as weights_f32(k, n).
fk::PackedMatrix pack(WeightType type, int64_t k, int64_t n) {
  return fk::pack_matrix(flamingo::bench::make_source_weights(type, k, n).view);
}

// `copies` packed copies of one (type, K, N) weight matrix; only the latest set is kept.
const std::vector<fk::PackedMatrix>& packed(WeightType type, int64_t k, int64_t n, size_t copies) {
  static std::tuple<int, int64_t, int64_t, size_t> key{-1, 0, 0, 0};
  static std::vector<fk::PackedMatrix> cache;
  const auto want = std::make_tuple(static_cast<int>(type), k, n, copies);
  if (key != want) {
    cache.clear();
    for (size_t i = 0; i < copies; ++i) cache.push_back(pack(type, k, n));
    key = want;
  }
  return cache;
}

size_t copies_for(int64_t m, size_t weight_bytes) {
  static const size_t evict_bytes = flamingo::bench::dram_working_set_bytes();
  return m >= 64 ? 1 : (evict_bytes + weight_bytes - 1) / weight_bytes;
}

void set_counters(benchmark::State& state, int64_t m, int64_t k, int64_t n, size_t weight_bytes) {
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n),
      benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_bytes/s"] = benchmark::Counter(
      static_cast<double>(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
}

void run_flamingo(benchmark::State& state, WeightType type, int64_t m, int64_t k, int64_t n,
                  int threads) {
  const std::vector<fk::PackedMatrix>& w =
      packed(type, k, n, copies_for(m, fk::weight_bytes(type, n, k)));
  const std::vector<float> a = random_vector(static_cast<size_t>(m * k), 7);
  std::vector<float> c(static_cast<size_t>(m * n));
  flamingo::ThreadPool pool(threads);
  // As the language model calls it: Q8_0/Q4_0 GEMVs on 8-bit activations.
  fk::MatmulEpilogue ep;
  ep.int8_activations = true;
  size_t next = 0;
  for (auto _ : state) {
    fk::matmul(a.data(), k, m, w[next], c.data(), n, pool, ep);
    next = next + 1 == w.size() ? 0 : next + 1;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n, fk::weight_bytes(type, n, k));
}

// One GEMV (M = 1) and one read sweep of as many bytes, alternated call by call and timed
// apart: on a host whose bandwidth swings by half within seconds (the Zen 4 VM's 2-thread
// sweep ran 31-53 GB/s), a yardstick measured minutes away says more about the host than the
// kernel. Each GEMV reads the next DRAM-cold copy of the weights, each sweep the next DRAM-cold
// stretch of its own array; the order flips every iteration so neither always follows the
// other. Counters: weight_bytes/s, sweep_bytes/s and their ratio, of_sweep.
void run_gemv_beside_sweep(benchmark::State& state, WeightType type, int64_t k, int64_t n,
                           int threads) {
  constexpr int64_t kSweepChunks = 64;
  const size_t bytes = fk::weight_bytes(type, n, k);
  const std::vector<fk::PackedMatrix>& w = packed(type, k, n, copies_for(1, bytes));
  static const flamingo::bench::HugeArray sweep_array(flamingo::bench::dram_working_set_bytes() / 8,
                                                      1.0);
  const int64_t per_sweep = flamingo::bench::sweep_doubles(bytes, kSweepChunks);
  const std::vector<float> a = random_vector(static_cast<size_t>(k), 7);
  std::vector<float> c(static_cast<size_t>(n));
  std::vector<double> partial;
  flamingo::ThreadPool pool(threads);
  fk::MatmulEpilogue ep;
  ep.int8_activations = true;
  size_t next = 0;
  int64_t offset = 0;
  double gemv_s = 0, sweep_s = 0;
  int64_t calls = 0;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    const auto gemv = [&] {
      const auto t0 = Clock::now();
      fk::matmul(a.data(), k, 1, w[next], c.data(), n, pool, ep);
      benchmark::DoNotOptimize(c.data());
      benchmark::ClobberMemory();
      gemv_s += std::chrono::duration<double>(Clock::now() - t0).count();
      next = next + 1 == w.size() ? 0 : next + 1;
    };
    const auto sweep = [&] {
      if (offset + per_sweep > static_cast<int64_t>(sweep_array.size())) offset = 0;
      const auto t0 = Clock::now();
      flamingo::bench::read_sweep(sweep_array.data() + offset, per_sweep, kSweepChunks, pool,
                                  partial);
      benchmark::DoNotOptimize(partial.data());
      sweep_s += std::chrono::duration<double>(Clock::now() - t0).count();
      offset += per_sweep;
    };
    if (calls++ % 2 == 0) {
      gemv();
      sweep();
    } else {
      sweep();
      gemv();
    }
  }
  const double gemv_rate = static_cast<double>(bytes) * static_cast<double>(calls) / gemv_s;
  const double sweep_rate = 8.0 * static_cast<double>(per_sweep * calls) / sweep_s;
  state.counters["weight_bytes/s"] = gemv_rate;
  state.counters["sweep_bytes/s"] = sweep_rate;
  state.counters["of_sweep"] = gemv_rate / sweep_rate;
}

// Row-major f32 copies of one (K, N) weight matrix for the baselines, as for our kernels.
const std::vector<std::vector<float>>& f32_copies(int64_t k, int64_t n, size_t copies) {
  static std::tuple<int64_t, int64_t, size_t> key{0, 0, 0};
  static std::vector<std::vector<float>> cache;
  if (key != std::make_tuple(k, n, copies)) {
    cache.assign(copies, weights_f32(k, n));
    key = std::make_tuple(k, n, copies);
  }
  return cache;
}

void run_openblas(benchmark::State& state, int64_t m, int64_t k, int64_t n, int threads) {
  openblas_set_num_threads(threads);
  const auto& ws = f32_copies(k, n, copies_for(m, fk::weight_bytes(WeightType::kF32, n, k)));
  size_t next = 0;
  const std::vector<float> a = random_vector(static_cast<size_t>(m * k), 7);
  std::vector<float> c(static_cast<size_t>(m * n));
  const blasint M = static_cast<blasint>(m), N = static_cast<blasint>(n),
                K = static_cast<blasint>(k);
  for (auto _ : state) {
    const std::vector<float>& w = ws[next];
    next = next + 1 == ws.size() ? 0 : next + 1;
    if (m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.f, w.data(), K, a.data(), 1, 0.f, c.data(),
                  1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, a.data(), K, w.data(), K,
                  0.f, c.data(), N);
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n, fk::weight_bytes(WeightType::kF32, n, k));
}

void run_eigen(benchmark::State& state, int64_t m, int64_t k, int64_t n, int threads) {
#ifdef _OPENMP
  Eigen::setNbThreads(threads);
#else
  if (threads != 1) {
    state.SkipWithError("Eigen built without OpenMP runs one thread");
    return;
  }
#endif
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto& ws = f32_copies(k, n, copies_for(m, fk::weight_bytes(WeightType::kF32, n, k)));
  size_t next = 0;
  const std::vector<float> av = random_vector(static_cast<size_t>(m * k), 7);
  std::vector<float> cv(static_cast<size_t>(m * n));
  Eigen::Map<const RowMajor> a(av.data(), m, k);
  Eigen::Map<RowMajor> c(cv.data(), m, n);
  for (auto _ : state) {
    Eigen::Map<const RowMajor> w(ws[next].data(), n, k);
    next = next + 1 == ws.size() ? 0 : next + 1;
    if (m == 1) {
      c.row(0).transpose().noalias() = w * a.row(0).transpose();
    } else {
      c.noalias() = a * w.transpose();
    }
    benchmark::DoNotOptimize(cv.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n, fk::weight_bytes(WeightType::kF32, n, k));
}

void run_microkernel(benchmark::State& state, fk::detail::GemmFn gemm, int64_t kc) {
  constexpr int64_t kTiles = 32;
  const std::vector<float> a = random_vector(static_cast<size_t>(kTiles * 6 * kc), 3);
  const std::vector<float> b = random_vector(static_cast<size_t>(16 * kc), 5);
  std::vector<float> c(static_cast<size_t>(kTiles * 6 * 16));
  for (auto _ : state) {
    for (int64_t t = 0; t < kTiles; ++t)
      gemm(6, kc, a.data() + t * 6 * kc, b.data(), c.data() + t * 96, 16, 16, true, nullptr, 1);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * kTiles * 6 * 16 * static_cast<double>(kc),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// One decode kernel of each kind; run_gemv_hot uses the one that is set.
struct GemvKernel {
  fk::detail::GemvFn gemv = nullptr;                 // f32/f16/bf16, any M (run with M = 1)
  fk::detail::GemvRowFn row = nullptr;               // f32/f16/bf16, one row, one stream
  fk::detail::GemvQuantFn quant = nullptr;           // Q8_0/Q4_0, any M (run with M = 1)
  fk::detail::GemvQuantRowFn quant_row = nullptr;    // Q8_0/Q4_0, one row, one stream
  fk::detail::GemvQuantPairFn quant_pair = nullptr;  // Q8_0/Q4_0, one row, two panels
};

void run_gemv_hot(benchmark::State& state, WeightType type, GemvKernel kernel,
                  fk::detail::QuantizeRowsFn quantize, int64_t k) {
  // As many 16-row panels as fill about 768 KiB: in L2 (≥ 1 MiB on the machines we run), well
  // past L1.
  const auto panel =
      static_cast<int64_t>(fk::detail::panel_bytes(static_cast<fk::detail::PanelType>(type), k));
  const int64_t n = fk::detail::kPanelRows * std::max<int64_t>(1, (int64_t{768} << 10) / panel);
  const fk::PackedMatrix w = pack(type, k, n);
  const fk::PackedMatrix::Impl& impl = w.impl();
  const std::vector<float> a = random_vector(static_cast<size_t>(k), 7);
  std::vector<int8_t> aq(static_cast<size_t>(k));
  std::vector<float> ad(static_cast<size_t>(k / fk::detail::kQBlock));
  std::vector<int32_t> asum(ad.size());
  fk::detail::QuantizedRows rows{aq.data(), ad.data(), asum.data(), k};
  const bool quantised = kernel.quant || kernel.quant_row || kernel.quant_pair;
  if (quantised) quantize(a.data(), k, 1, k, aq.data(), ad.data(), asum.data());
  float out[fk::detail::kPanelRows], out1[fk::detail::kPanelRows];
  for (auto _ : state) {
    int64_t p = 0;
    for (; kernel.quant_pair && p + 2 <= impl.num_panels; p += 2) {
      kernel.quant_pair(rows, impl.panel(p), impl.panel(p + 1), out, out1);
      benchmark::DoNotOptimize(out);
      benchmark::DoNotOptimize(out1);
    }
    for (; p < impl.num_panels; ++p) {
      if (kernel.quant_row)
        kernel.quant_row(rows, impl.panel(p), out);
      else if (kernel.quant)  // also a pair kernel's odd panel
        kernel.quant(rows, 1, impl.panel(p), out);
      else if (kernel.row)
        kernel.row(a.data(), impl.panel(p), k, out);
      else
        kernel.gemv(a.data(), k, 1, impl.panel(p), k, out);
      benchmark::DoNotOptimize(out);
    }
    benchmark::ClobberMemory();
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(fk::weight_bytes(type, n, k)),
                         benchmark::Counter::kIsIterationInvariantRate);
}

// Registers microkernel/gemv_<type>[_<tile>]_<isa>/K:<k> for each kernel given (tile "" for the
// general kernels, "1x16" for the single-stream ones, "1x32" for the pairs).
void register_gemv_hot(const char* isa, WeightType type, const char* tile, GemvKernel kernel,
                       fk::detail::QuantizeRowsFn quantize) {
  for (int64_t k : {2048, 5632}) {
    const std::string name = "microkernel/gemv_" + std::string(fk::weight_type_name(type)) +
                             (*tile ? "_" : "") + tile + "_" + isa + "/K:" + std::to_string(k);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      run_gemv_hot(s, type, kernel, quantize, k);
    })->UseRealTime();
  }
}

void register_all() {
  {
    namespace d = fk::detail;
    using W = WeightType;
    if (fk::cpu_has_avx2()) {
      const auto q = d::quantize_rows_q8_avx2;
      register_gemv_hot("avx2", W::kF32, "", {.gemv = d::gemv_f32_avx2}, q);
      register_gemv_hot("avx2", W::kF16, "", {.gemv = d::gemv_f16_avx2}, q);
      register_gemv_hot("avx2", W::kBF16, "", {.gemv = d::gemv_bf16_avx2}, q);
      register_gemv_hot("avx2", W::kQ8_0, "", {.quant = d::gemv_q8_0_q8_avx2}, q);
      register_gemv_hot("avx2", W::kQ4_0, "", {.quant = d::gemv_q4_0_q8_avx2}, q);
      register_gemv_hot("avx2", W::kF32, "1x16", {.row = d::gemv_f32_1x16_avx2}, q);
      register_gemv_hot("avx2", W::kF16, "1x16", {.row = d::gemv_f16_1x16_avx2}, q);
      register_gemv_hot("avx2", W::kBF16, "1x16", {.row = d::gemv_bf16_1x16_avx2}, q);
      register_gemv_hot("avx2", W::kQ8_0, "1x16", {.quant_row = d::gemv_q8_0_q8_1x16_avx2}, q);
      register_gemv_hot("avx2", W::kQ4_0, "1x16", {.quant_row = d::gemv_q4_0_q8_1x16_avx2}, q);
      register_gemv_hot("avx2", W::kQ8_0, "1x32",
                        {.quant = d::gemv_q8_0_q8_avx2, .quant_pair = d::gemv_q8_0_q8_1x32_avx2},
                        q);
      register_gemv_hot("avx2", W::kQ4_0, "1x32",
                        {.quant = d::gemv_q4_0_q8_avx2, .quant_pair = d::gemv_q4_0_q8_1x32_avx2},
                        q);
    }
    const auto q = d::quantize_rows_q8_scalar;
    register_gemv_hot("scalar", W::kF32, "", {.gemv = d::gemv_f32_scalar}, q);
    register_gemv_hot("scalar", W::kF16, "", {.gemv = d::gemv_f16_scalar}, q);
    register_gemv_hot("scalar", W::kBF16, "", {.gemv = d::gemv_bf16_scalar}, q);
    register_gemv_hot("scalar", W::kQ8_0, "", {.quant = d::gemv_q8_0_q8_scalar}, q);
    register_gemv_hot("scalar", W::kQ4_0, "", {.quant = d::gemv_q4_0_q8_scalar}, q);
    register_gemv_hot("scalar", W::kQ8_0, "1x32",
                      {.quant = d::gemv_q8_0_q8_scalar, .quant_pair = d::gemv_q8_0_q8_1x32_scalar},
                      q);
    register_gemv_hot("scalar", W::kQ4_0, "1x32",
                      {.quant = d::gemv_q4_0_q8_scalar, .quant_pair = d::gemv_q4_0_q8_1x32_scalar},
                      q);
  }
  for (int64_t kc : {256, 512}) {
    const std::string suffix = "/kc:" + std::to_string(kc);
    if (fk::cpu_has_avx2())
      benchmark::RegisterBenchmark(
          ("microkernel/f32_gemm_6x16_avx2" + suffix).c_str(),
          [=](benchmark::State& s) { run_microkernel(s, fk::detail::f32_gemm_6x16_avx2, kc); })
          ->UseRealTime();
    benchmark::RegisterBenchmark(
        ("microkernel/f32_gemm_6x16_scalar" + suffix).c_str(),
        [=](benchmark::State& s) { run_microkernel(s, fk::detail::f32_gemm_6x16_scalar, kc); })
        ->UseRealTime();
  }
  const std::pair<int64_t, int64_t> shapes[] = {
      {2048, 2048}, {2048, 5632}, {5632, 2048}, {4096, 4096}};
  const WeightType types[] = {WeightType::kF32, WeightType::kF16, WeightType::kBF16,
                              WeightType::kQ8_0, WeightType::kQ4_0};
  for (int64_t m : {1, 4, 7, 8, 16, 64, 512}) {
    // Copies, not structured bindings: lambdas may capture those only since clang 16.
    for (const auto& shape : shapes) {
      const int64_t k = shape.first, n = shape.second;
      for (int t : {1, 2}) {
        const std::string suffix = "/M:" + std::to_string(m) + "/K:" + std::to_string(k) +
                                   "/N:" + std::to_string(n) + "/threads:" + std::to_string(t);
        for (WeightType type : types) {
          benchmark::RegisterBenchmark(
              ("matmul/" + std::string(fk::weight_type_name(type)) + suffix).c_str(),
              [=](benchmark::State& s) { run_flamingo(s, type, m, k, n, t); })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
          if (m == 1)
            benchmark::RegisterBenchmark(
                ("matmul_beside_sweep/" + std::string(fk::weight_type_name(type)) + suffix).c_str(),
                [=](benchmark::State& s) { run_gemv_beside_sweep(s, type, k, n, t); })
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        }
        benchmark::RegisterBenchmark(("matmul/openblas" + suffix).c_str(),
                                     [=](benchmark::State& s) { run_openblas(s, m, k, n, t); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("matmul/eigen" + suffix).c_str(),
                                     [=](benchmark::State& s) { run_eigen(s, m, k, n, t); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  flamingo::bench::register_peak_fma(/*with_zmm=*/false);
  register_all();
  // OpenBLAS picks its kernels by CPU model; one it does not know falls back to an SSE3 core,
  // so the table must say which kernels the baseline ran (OPENBLAS_CORETYPE overrides).
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
