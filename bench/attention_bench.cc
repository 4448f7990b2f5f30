// kernels::attention on LLaMA-style shapes (32 query heads, 4 key/value heads, head_dim 64):
// decode (one query against a 512- or 2048-entry KV cache), causal prefill, and the Flamingo
// cross-attention / resampler shapes (non-causal, 64 visual keys per image).
//
// Names: attention/<kind>/q:<n_q>/kv:<n_kv>/h:<heads>/kvh:<kv_heads>/d:<head_dim>/threads:<t>.
// Counters: FLOP/s (4·head_dim per visible query-key pair and head: q·k and p·v) and kv_bytes/s
// (bytes of K and V read once per call: the decode figure, which is bandwidth-bound).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "random_inputs.h"
#include "util/thread_pool.h"

namespace {

namespace fk = flamingo::kernels;

struct Shape {
  const char* kind;
  int64_t n_q, n_kv;
  int heads, kv_heads, dh;
  bool causal;
};

const std::vector<Shape> kShapes = {
    {"decode", 1, 512, 32, 4, 64, true},     {"decode", 1, 2048, 32, 4, 64, true},
    {"prefill", 128, 128, 32, 4, 64, true},  {"prefill", 512, 512, 32, 4, 64, true},
    {"xattn", 64, 64, 32, 32, 64, false},     // text queries → one image's 64 visual tokens
    {"resampler", 64, 128, 8, 8, 64, false},  // latents → visual tokens + latents
};

using flamingo::bench::random_vector;

void BM_Attention(benchmark::State& state, Shape s) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t qw = int64_t{s.heads} * s.dh, kvw = int64_t{s.kv_heads} * s.dh;
  const auto q = random_vector(static_cast<size_t>(s.n_q * qw), 1);
  const auto k = random_vector(static_cast<size_t>(s.n_kv * kvw), 2);
  const auto v = random_vector(static_cast<size_t>(s.n_kv * kvw), 3);
  std::vector<float> out(static_cast<size_t>(s.n_q * qw));
  fk::AttentionArgs a;
  a.q = q.data();
  a.n_q = s.n_q;
  a.q_stride = qw;
  a.k = k.data();
  a.v = v.data();
  a.n_kv = s.n_kv;
  a.kv_stride = kvw;
  a.out = out.data();
  a.out_stride = qw;
  a.n_heads = s.heads;
  a.n_kv_heads = s.kv_heads;
  a.head_dim = s.dh;
  a.scale = 1.f / std::sqrt(static_cast<float>(s.dh));
  a.causal = s.causal;
  a.q_pos0 = s.causal ? s.n_kv - s.n_q : 0;
  flamingo::ThreadPool pool(threads);
  for (auto _ : state) {
    fk::attention(a, pool);
    benchmark::DoNotOptimize(out.data());
  }
  double pairs = 0;
  for (int64_t i = 0; i < s.n_q; ++i)
    pairs += static_cast<double>(s.causal ? a.q_pos0 + i + 1 : s.n_kv);
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * s.dh * s.heads * pairs,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kv_bytes/s"] = benchmark::Counter(2.0 * 4.0 * static_cast<double>(s.n_kv * kvw),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  for (const Shape& s : kShapes) {
    const std::string name = std::string("attention/") + s.kind + "/q:" + std::to_string(s.n_q) +
                             "/kv:" + std::to_string(s.n_kv) + "/h:" + std::to_string(s.heads) +
                             "/kvh:" + std::to_string(s.kv_heads) + "/d:" + std::to_string(s.dh);
    benchmark::RegisterBenchmark(name.c_str(), BM_Attention, s)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
