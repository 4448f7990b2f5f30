// The element-wise kernels (activations, SwiGLU, softmax, norms) on each ISA, one thread, on
// buffers that stay in L2 (n = 16384 floats per operand), so the figure is the kernel's own
// speed, not memory's. Names: elementwise/<op>_<isa>; counter elements/s (values produced per
// second). NFNet's encoder applies a scaled erf GELU to every conv output, so gelu_erf's rate
// against the GEMM tile's says what share of the encoder it costs. The activations also run
// on wide inputs (elementwise/<op>_wide_<isa>, uniform on [−32, 32]): a deep encoder's
// outputs reach such magnitudes, and a kernel that computes a subnormal on the way pays a
// microcode assist per value there (the erf GELU did, 2026-12-05) while the [−4, 4] figure
// stays the same.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/cpu.h"
#include "kernels/norm.h"
#include "random_inputs.h"

namespace {

namespace fk = flamingo::kernels;
using flamingo::bench::random_vector;

constexpr int64_t kN = 16384;
constexpr int64_t kDim = 2048;  // norms: kN / kDim rows of a LLaMA-1B width

using Op = std::function<void(const float* x, const float* x2, float* y)>;

void run(benchmark::State& state, fk::Isa isa, const Op& op, float range) {
  const fk::Isa saved = fk::active_isa();
  fk::set_isa(isa);
  // Uniform on [−range, range]; 4: both of the GELU's branches, and the exponentials' usual
  // range.
  std::vector<float> x = random_vector(kN, 11), x2 = random_vector(kN, 12), y(kN);
  for (float& v : x) v *= range;
  for (auto _ : state) {
    op(x.data(), x2.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["elements/s"] =
      benchmark::Counter(static_cast<double>(kN), benchmark::Counter::kIsIterationInvariantRate);
  fk::set_isa(saved);
}

void register_all() {
  const std::vector<float> ones(kDim, 1.f), zeros(kDim, 0.f);
  const std::pair<const char*, Op> ops[] = {
      {"gelu_erf", [](const float* x, const float*, float* y) { fk::gelu_erf(x, y, kN, 1.7f); }},
      {"gelu_tanh", [](const float* x, const float*, float* y) { fk::gelu_tanh(x, y, kN); }},
      {"silu", [](const float* x, const float*, float* y) { fk::silu(x, y, kN); }},
      {"sigmoid", [](const float* x, const float*, float* y) { fk::sigmoid(x, y, kN); }},
      {"tanh", [](const float* x, const float*, float* y) { fk::tanh_act(x, y, kN); }},
      {"relu", [](const float* x, const float*, float* y) { fk::relu(x, y, kN); }},
      {"swiglu", [](const float* x, const float* u, float* y) { fk::swiglu(x, u, y, kN); }},
      {"softmax",
       [](const float* x, const float*, float* y) {
         std::copy(x, x + kN, y);
         fk::softmax(y, kN);
       }},
      {"rmsnorm", [ones](const float* x, const float*,
                         float* y) { fk::rmsnorm(x, ones.data(), kN / kDim, kDim, 1e-6f, y); }},
      {"layernorm",
       [ones, zeros](const float* x, const float*, float* y) {
         fk::layernorm(x, ones.data(), zeros.data(), kN / kDim, kDim, 1e-6f, y);
       }},
  };
  std::vector<fk::Isa> isas{fk::Isa::kScalar};
  if (fk::cpu_has_avx2()) isas.push_back(fk::Isa::kAvx2);
  const std::string activations[] = {"gelu_erf", "gelu_tanh", "silu",   "sigmoid",
                                     "tanh",     "swiglu",    "softmax"};
  for (const auto& [name, op] : ops) {
    const bool activation =
        std::find(std::begin(activations), std::end(activations), name) != std::end(activations);
    for (const float range : {4.f, 32.f}) {
      if (range != 4.f && !activation) continue;
      for (fk::Isa isa : isas) {
        const Op f = op;
        benchmark::RegisterBenchmark(
            ("elementwise/" + std::string(name) + (range != 4.f ? "_wide" : "") +
             (isa == fk::Isa::kAvx2 ? "_avx2" : "_scalar"))
                .c_str(),
            [isa, f, range](benchmark::State& s) { run(s, isa, f, range); })
            ->UseRealTime();
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
