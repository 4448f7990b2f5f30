// The NFNet vision encoder alone (model::NfnetEncoder::forward on one image), from a model
// directory: FLOP/s of the whole network at 1 and 2 threads, to set beside
// machine_limits_bench's FMA peak. Separates the encoder from what e2e_bench's vision stage
// also pays (the first call's first-touch of the workspace, the other stages' cache state).
//
//   build/bench/vision_bench --model=build/bench-models/tinyllama-f32 \
//       --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Without --model it runs the bundled demo model (a few MFLOP: only a smoke test).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "flamingo/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/nfnet.h"
#include "model/safetensors_weight_source.h"
#include "util/thread_pool.h"

namespace {

using namespace flamingo;

struct Encoder {
  io::ModelConfig config;
  std::unique_ptr<io::ModelWeights> weights;
  std::unique_ptr<model::NfnetEncoder> encoder;
};

// Built once: the bytes a model's packing writes do not depend on the thread count.
const Encoder& encoder_of(const std::string& dir) {
  static Encoder e = [&] {
    Encoder x;
    x.config = io::load_config(dir + "/config.json");
    x.weights = std::make_unique<io::ModelWeights>(
        io::ModelWeights::open_directory(dir, io::MapMode::kMmap));
    model::SafetensorsWeightSource source(*x.weights);
    ThreadPool pool(2);
    source.set_pack_pool(&pool);
    x.encoder = std::make_unique<model::NfnetEncoder>(x.config.vision, source);
    return x;
  }();
  return e;
}

void run_forward(benchmark::State& state, const std::string& dir, int threads) {
  const Encoder& e = encoder_of(dir);
  const int64_t s = e.config.vision.image_size;
  std::vector<float> image(static_cast<size_t>(s * s * 3));
  // A fixed pattern in [-1, 1): the encoder's cost does not depend on the pixels.
  for (size_t i = 0; i < image.size(); ++i)
    image[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.f - 1.f;
  std::vector<float> out(static_cast<size_t>(e.encoder->positions() * e.encoder->out_channels()));
  ThreadPool pool(threads);
  e.encoder->forward(image.data(), out.data(), pool);  // first-touch of the workspace
  for (auto _ : state) {
    e.encoder->forward(image.data(), out.data(), pool);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(e.encoder->flops(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s_per_thread"] = benchmark::Counter(
      e.encoder->flops() / threads, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = FLAMINGO_SOURCE_DIR "/models/demo";
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0)
      dir = argv[i] + 8;
    else
      rest.push_back(argv[i]);
  }
  int rest_argc = static_cast<int>(rest.size());
  try {
    const Encoder& e = encoder_of(dir);
    std::fprintf(stderr, "%s: NFNet at %lld×%lld, %.1f GFLOP per image\n", dir.c_str(),
                 static_cast<long long>(e.config.vision.image_size),
                 static_cast<long long>(e.config.vision.image_size), e.encoder->flops() / 1e9);
  } catch (const Error& err) {
    std::fprintf(stderr, "error: %s\n", err.what());
    return 1;
  }
  for (int t : {1, 2})
    benchmark::RegisterBenchmark(("vision/forward/threads:" + std::to_string(t)).c_str(),
                                 [dir, t](benchmark::State& s) { run_forward(s, dir, t); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
