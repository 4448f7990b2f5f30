// Every distinct conv layer shape of NFNet-F0 at 256×256 input, ours beside a straightforward
// im2col + OpenBLAS cblas_sgemm baseline, in the same run.
//
// Names:
// conv/<impl>/H:<h>/W:<w>/C:<in_c>/O:<out_c>/k:<kernel>/s:<stride>/g:<groups>/n:<count>/threads:<t>
// with impl ∈ {ours, im2col_openblas} and n = how many layers of that shape F0 has (the
// table weights whole-network figures by it). Counter FLOP/s = 2·out_h·out_w·out_c·(in_c/g)·k².
// Weights are packed once per shape, outside the timed loop; bias is added in both.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/conv.h"
#include "random_inputs.h"
#include "util/thread_pool.h"

namespace {

namespace fk = flamingo::kernels;

struct Layer {
  int64_t h, w, c, o;
  int k, s, g, count;
};

// NFNet-F0 (depths 1, 2, 6, 3; widths 256, 512, 1536, 1536; group width 128) at 256×256.
const std::vector<Layer> kLayers = {
    {256, 256, 3, 16, 3, 2, 1, 1},   {128, 128, 16, 32, 3, 1, 1, 1},   // stem
    {128, 128, 32, 64, 3, 1, 1, 1},  {128, 128, 64, 128, 3, 2, 1, 1},  //
    {64, 64, 128, 128, 1, 1, 1, 1},                                    // stage 0: conv1
    {64, 64, 128, 128, 3, 1, 1, 2},                                    //   conv2, conv2b
    {64, 64, 128, 256, 1, 1, 1, 2},                                    //   conv3, shortcut
    {64, 64, 256, 256, 1, 1, 1, 1},   // stage 1: conv1 (before stride)
    {64, 64, 256, 256, 3, 2, 2, 1},   //   conv2 stride 2
    {32, 32, 256, 256, 3, 1, 2, 3},   //   conv2b, block 1 conv2/2b
    {32, 32, 256, 512, 1, 1, 1, 3},   //   conv3 ×2, shortcut
    {32, 32, 512, 256, 1, 1, 1, 1},   //   block 1 conv1
    {32, 32, 512, 768, 1, 1, 1, 1},   // stage 2: conv1
    {32, 32, 768, 768, 3, 2, 6, 1},   //   conv2 stride 2
    {16, 16, 768, 768, 3, 1, 6, 11},  //   conv2b, blocks 1-5 conv2/2b
    {16, 16, 768, 1536, 1, 1, 1, 6},  //   conv3 ×6
    {16, 16, 512, 1536, 1, 1, 1, 1},  //   shortcut
    {16, 16, 1536, 768, 1, 1, 1, 6},  //   blocks 1-5 conv1, stage 3 conv1
    {16, 16, 768, 768, 3, 2, 6, 1},   // stage 3: conv2 stride 2
    {8, 8, 768, 768, 3, 1, 6, 5},     //   conv2b, blocks 1-2 conv2/2b
    {8, 8, 768, 1536, 1, 1, 1, 3},    //   conv3 ×3
    {8, 8, 1536, 1536, 1, 1, 1, 1},   //   shortcut
    {8, 8, 1536, 768, 1, 1, 1, 2},    //   blocks 1-2 conv1
    {8, 8, 1536, 3072, 1, 1, 1, 1},   // final_conv
};

using flamingo::bench::random_vector;

struct Data {
  std::vector<float> in, weight, bias, out, col;
  fk::PackedConv2d packed;
  int64_t oh, ow;
};

Data& data_for(const Layer& l) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int, int, int>,
                  std::unique_ptr<Data>>
      cache;
  auto& d = cache[{l.h, l.w, l.c, l.o, l.k, l.s, l.g}];
  if (d) return *d;
  d = std::make_unique<Data>();
  const int64_t kdim = l.c / l.g * l.k * l.k;
  d->in = random_vector(static_cast<size_t>(l.h * l.w * l.c), 1);
  d->weight = random_vector(static_cast<size_t>(l.o * kdim), 2);
  d->bias = random_vector(static_cast<size_t>(l.o), 3);
  fk::Conv2dParams p{.in_h = l.h,
                     .in_w = l.w,
                     .in_c = l.c,
                     .out_c = l.o,
                     .kernel = l.k,
                     .stride = l.s,
                     .groups = l.g};
  d->packed = fk::pack_conv2d(
      p, fk::WeightView{fk::WeightType::kF32, d->weight.data(), nullptr, l.o, kdim});
  d->oh = d->packed.out_h();
  d->ow = d->packed.out_w();
  d->out.resize(static_cast<size_t>(d->oh * d->ow * l.o));
  return *d;
}

double flops(const Layer& l, const Data& d) {
  return 2.0 * static_cast<double>(d.oh * d.ow * l.o) * static_cast<double>(l.c / l.g * l.k * l.k);
}

void BM_ConvOurs(benchmark::State& state, Layer l) {
  const int threads = static_cast<int>(state.range(0));
  Data& d = data_for(l);
  flamingo::ThreadPool pool(threads);
  for (auto _ : state) {
    fk::conv2d(d.in.data(), d.packed, d.bias.data(), d.out.data(), pool);
    benchmark::DoNotOptimize(d.out.data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(flops(l, d), benchmark::Counter::kIsIterationInvariantRate);
}

// The textbook baseline: per group, im2col into a [pixels, (in_c/g)·k²] matrix in PyTorch's
// (i, kh, kw) column order with TF-SAME zero padding, then one cblas_sgemm against the OIHW
// weights; 1×1 stride-1 convs skip the im2col. Bias is a separate pass.
void BM_ConvIm2colOpenblas(benchmark::State& state, Layer l) {
  const int threads = static_cast<int>(state.range(0));
  openblas_set_num_threads(threads);
  Data& d = data_for(l);
  const int64_t cin = l.c / l.g, cout = l.o / l.g, kdim = cin * l.k * l.k, pixels = d.oh * d.ow;
  const int64_t pt = fk::same_pad_before(l.h, l.k, l.s), pl = fk::same_pad_before(l.w, l.k, l.s);
  const bool direct = l.k == 1 && l.s == 1 && l.g == 1;
  if (!direct) d.col.resize(static_cast<size_t>(pixels * kdim));
  for (auto _ : state) {
    for (int64_t g = 0; g < l.g; ++g) {
      const float* a = d.in.data();
      int64_t lda = l.c;
      if (!direct) {
        for (int64_t oy = 0; oy < d.oh; ++oy)
          for (int64_t ox = 0; ox < d.ow; ++ox) {
            float* row = d.col.data() + (oy * d.ow + ox) * kdim;
            for (int64_t i = 0; i < cin; ++i)
              for (int kh = 0; kh < l.k; ++kh)
                for (int kw = 0; kw < l.k; ++kw) {
                  const int64_t iy = oy * l.s - pt + kh, ix = ox * l.s - pl + kw;
                  *row++ = (iy < 0 || iy >= l.h || ix < 0 || ix >= l.w)
                               ? 0.f
                               : d.in[(iy * l.w + ix) * l.c + g * cin + i];
                }
          }
        a = d.col.data();
        lda = kdim;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(pixels),
                  static_cast<int>(cout), static_cast<int>(kdim), 1.f, a, static_cast<int>(lda),
                  d.weight.data() + g * cout * kdim, static_cast<int>(kdim), 0.f,
                  d.out.data() + g * cout, static_cast<int>(l.o));
    }
    for (int64_t r = 0; r < pixels; ++r)
      for (int64_t j = 0; j < l.o; ++j)
        d.out[static_cast<size_t>(r * l.o + j)] += d.bias[static_cast<size_t>(j)];
    benchmark::DoNotOptimize(d.out.data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(flops(l, d), benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  for (const Layer& l : kLayers) {
    const std::string shape = "H:" + std::to_string(l.h) + "/W:" + std::to_string(l.w) +
                              "/C:" + std::to_string(l.c) + "/O:" + std::to_string(l.o) +
                              "/k:" + std::to_string(l.k) + "/s:" + std::to_string(l.s) +
                              "/g:" + std::to_string(l.g) + "/n:" + std::to_string(l.count);
    for (const char* impl : {"ours", "im2col_openblas"}) {
      auto* b = benchmark::RegisterBenchmark(
          ("conv/" + std::string(impl) + "/" + shape).c_str(),
          std::strcmp(impl, "ours") == 0 ? BM_ConvOurs : BM_ConvIm2colOpenblas, l);
      b->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
