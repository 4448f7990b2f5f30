// Convolutions and pooling on every ISA path against a naive direct convolution in double
// with TF-SAME padding worked out independently. Threshold NMSE ≤ 1e-10 (fp32 sums of up to
// 1152 products; f16/bf16 weights are compared against the reference run on the same rounded
// weights, so the threshold does not change).
#include "kernels/conv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "support/isa_scope.h"
#include "support/test_util.h"
#include "util/check.h"
#include "util/huge_page_arena.h"
#include "util/thread_pool.h"

namespace flamingo {
namespace {

using kernels::Conv2dParams;
using kernels::Isa;
using kernels::WeightType;
using kernels::WeightView;

// TF "SAME", straight from the definition: out = ceil(in/s), pad_total = max((out-1)s + k - in, 0).
void same_padding(int64_t in, int k, int s, int64_t* out, int64_t* before) {
  *out = (in + s - 1) / s;
  const int64_t total = std::max<int64_t>((*out - 1) * s + k - in, 0);
  *before = total / 2;
}

// weight is OIHW, in/out are HWC.
std::vector<float> conv_ref(const Conv2dParams& p, const std::vector<float>& in,
                            const std::vector<float>& weight, const float* bias) {
  int64_t oh, ow, pt, pl;
  same_padding(p.in_h, p.kernel, p.stride, &oh, &pt);
  same_padding(p.in_w, p.kernel, p.stride, &ow, &pl);
  const int64_t cin = p.in_c / p.groups, cout = p.out_c / p.groups;
  std::vector<float> out(static_cast<size_t>(oh * ow * p.out_c));
  for (int64_t oy = 0; oy < oh; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox)
      for (int64_t o = 0; o < p.out_c; ++o) {
        const int64_t g = o / cout;
        double acc = bias ? bias[o] : 0.0;
        for (int64_t i = 0; i < cin; ++i)
          for (int kh = 0; kh < p.kernel; ++kh)
            for (int kw = 0; kw < p.kernel; ++kw) {
              const int64_t iy = oy * p.stride - pt + kh, ix = ox * p.stride - pl + kw;
              if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
              acc += double{in[(iy * p.in_w + ix) * p.in_c + g * cin + i]} *
                     weight[((o * cin + i) * p.kernel + kh) * p.kernel + kw];
            }
        out[(oy * ow + ox) * p.out_c + o] = static_cast<float>(acc);
      }
  return out;
}

struct ConvCase {
  Conv2dParams p;
  WeightType type = WeightType::kF32;
  bool bias = true;
};

std::string describe(const ConvCase& c) {
  const auto& p = c.p;
  return str_cat(p.in_h, "x", p.in_w, "x", p.in_c, " -> ", p.out_c, " k", p.kernel, " s", p.stride,
                 " g", p.groups, " ", kernels::weight_type_name(c.type), c.bias ? " +bias" : "");
}

// A case's input, bias and weights (stored in the case's type, `weight` holding the values
// that type keeps), from three seeds.
struct ConvInputs {
  std::vector<float> in, weight, bias;
  std::vector<uint16_t> half, scales;
  std::vector<int8_t> q8;
  WeightView view;
  ConvInputs(const ConvCase& c, uint64_t seed) {
    const auto& p = c.p;
    const int64_t k = p.in_c / p.groups * p.kernel * p.kernel;
    in = testing::random_floats(static_cast<size_t>(p.in_h * p.in_w * p.in_c), seed, -1.f, 1.f);
    weight = testing::random_floats(static_cast<size_t>(p.out_c * k), seed + 1, -0.5f, 0.5f);
    bias = testing::random_floats(static_cast<size_t>(p.out_c), seed + 2, -1.f, 1.f);
    view = WeightView{c.type, weight.data(), nullptr, p.out_c, k};
    if (c.type == WeightType::kF16 || c.type == WeightType::kBF16) {
      half.resize(weight.size());
      for (size_t i = 0; i < weight.size(); ++i) {
        half[i] = c.type == WeightType::kF16 ? kernels::fp32_to_fp16(weight[i])
                                             : kernels::fp32_to_bf16(weight[i]);
        weight[i] = c.type == WeightType::kF16 ? kernels::fp16_to_fp32(half[i])
                                               : kernels::bf16_to_fp32(half[i]);
      }
      view.data = half.data();
    } else if (c.type == WeightType::kQ8_0) {
      q8.resize(weight.size());
      scales.resize(weight.size() / 32 + 1);
      for (int64_t r = 0; r < p.out_c; ++r)
        kernels::quantize_row_q8_0(weight.data() + r * k, k, q8.data() + r * k,
                                   scales.data() + r * k / 32);
      view.data = q8.data();
      view.scales = scales.data();
      for (int64_t r = 0; r < p.out_c; ++r) kernels::dequantize_row(view, r, weight.data() + r * k);
    }
  }
  ConvInputs(const ConvInputs&) = delete;  // view points into the vectors
  ConvInputs& operator=(const ConvInputs&) = delete;
};

// Packs, runs and checks one case; returns the output for further comparisons.
std::vector<float> run_case(const ConvCase& c, ThreadPool& pool, uint64_t seed) {
  const auto& p = c.p;
  const ConvInputs x(c, seed);
  const auto conv = kernels::pack_conv2d(p, x.view);
  int64_t oh, ow, pad;
  same_padding(p.in_h, p.kernel, p.stride, &oh, &pad);
  same_padding(p.in_w, p.kernel, p.stride, &ow, &pad);
  EXPECT_EQ(conv.out_h(), oh);
  EXPECT_EQ(conv.out_w(), ow);
  testing::GuardedBuffer out(static_cast<size_t>(oh * ow * p.out_c));
  const float* bias = c.bias ? x.bias.data() : nullptr;
  kernels::conv2d(x.in.data(), conv, bias, out.data(), pool);
  EXPECT_TRUE(out.intact()) << describe(c);
  const auto ref = conv_ref(p, x.in, x.weight, bias);
  EXPECT_LE(testing::nmse(out.data(), ref.data(), ref.size()), 1e-10) << describe(c);
  return std::vector<float>(out.data(), out.data() + out.size());
}

TEST(Conv, SamePaddingRule) {
  EXPECT_EQ(kernels::same_out_size(224, 2), 112);
  EXPECT_EQ(kernels::same_pad_before(224, 3, 2), 0);  // even input, stride 2: 0 before, 1 after
  EXPECT_EQ(kernels::same_pad_before(7, 3, 2), 1);    // odd input: 1 and 1
  EXPECT_EQ(kernels::same_out_size(7, 2), 4);
  EXPECT_EQ(kernels::same_pad_before(56, 3, 1), 1);
  EXPECT_EQ(kernels::same_pad_before(9, 1, 1), 0);
  EXPECT_EQ(kernels::same_pad_before(8, 2, 1), 0);  // even kernel: 0 before, 1 after
  EXPECT_EQ(kernels::same_pad_before(8, 4, 2), 1);
}

TEST(Conv, OneByOneAcrossChannelCounts) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  testing::for_each_isa([&](Isa) {
    for (int64_t ic : testing::edge_sizes())
      for (int64_t oc : {int64_t{1}, int64_t{17}, int64_t{33}, int64_t{129}}) {
        ConvCase c{{.in_h = 3, .in_w = 5, .in_c = ic, .out_c = oc}};
        run_case(c, pool, static_cast<uint64_t>(ic * 1000 + oc));
      }
  });
}

TEST(Conv, GroupedAndStridedAcrossShapes) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  std::vector<ConvCase> cases;
  for (int64_t h : {1, 2, 5, 8})
    for (int64_t w : {1, 3, 8, 9})
      for (int s : {1, 2})
        cases.push_back(
            {{.in_h = h, .in_w = w, .in_c = 6, .out_c = 9, .kernel = 3, .stride = s, .groups = 3}});
  for (int64_t cpg : testing::edge_sizes())  // channels per group
    cases.push_back({{.in_h = 6,
                      .in_w = 7,
                      .in_c = 2 * cpg,
                      .out_c = 2 * cpg,
                      .kernel = 3,
                      .stride = 1,
                      .groups = 2}});
  for (int k : {1, 2, 4, 5})
    for (int s : {1, 2})
      cases.push_back({{.in_h = 9, .in_w = 6, .in_c = 5, .out_c = 18, .kernel = k, .stride = s}});
  // NFNet-F0: stem (in_c = 3, stride 2 on an even input), and 128-wide groups, stride 1 and 2.
  cases.push_back({{.in_h = 32, .in_w = 32, .in_c = 3, .out_c = 16, .kernel = 3, .stride = 2}});
  cases.push_back({{.in_h = 16, .in_w = 16, .in_c = 16, .out_c = 32, .kernel = 3, .stride = 1}});
  cases.push_back({{.in_h = 16, .in_w = 16, .in_c = 64, .out_c = 128, .kernel = 3, .stride = 2}});
  cases.push_back(
      {{.in_h = 10, .in_w = 10, .in_c = 256, .out_c = 256, .kernel = 3, .stride = 2, .groups = 2}});
  cases.push_back(
      {{.in_h = 7, .in_w = 7, .in_c = 256, .out_c = 256, .kernel = 3, .stride = 1, .groups = 2}});
  cases.push_back(
      {{.in_h = 4, .in_w = 4, .in_c = 768, .out_c = 768, .kernel = 3, .stride = 1, .groups = 6},
       WeightType::kF32,
       false});
  cases.push_back({{.in_h = 9, .in_w = 8, .in_c = 128, .out_c = 256, .kernel = 1}});
  testing::for_each_isa([&](Isa) {
    for (size_t i = 0; i < cases.size(); ++i) run_case(cases[i], pool, 500 + i);
  });
}

TEST(Conv, ReducedPrecisionWeights) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  testing::for_each_isa([&](Isa) {
    for (WeightType t : {WeightType::kF16, WeightType::kBF16}) {
      run_case(
          {{.in_h = 7, .in_w = 6, .in_c = 32, .out_c = 40, .kernel = 3, .stride = 2, .groups = 2},
           t},
          pool, 1);
      run_case({{.in_h = 5, .in_w = 5, .in_c = 32, .out_c = 40, .kernel = 1}, t}, pool, 2);
    }
    run_case({{.in_h = 5, .in_w = 5, .in_c = 64, .out_c = 40, .kernel = 1}, WeightType::kQ8_0},
             pool, 3);
  });
}

TEST(Conv, BitwiseIdenticalForAnyThreadCount) {
  testing::for_each_isa([](Isa) {
    const std::vector<ConvCase> cases = {
        {{.in_h = 20, .in_w = 20, .in_c = 128, .out_c = 96, .kernel = 3, .stride = 2, .groups = 2}},
        {{.in_h = 20, .in_w = 21, .in_c = 64, .out_c = 96, .kernel = 1}}};
    for (const ConvCase& c : cases) {
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        const auto out = run_case(c, pool, 42);
        if (first.empty())
          first = out;
        else
          EXPECT_EQ(0, std::memcmp(first.data(), out.data(), sizeof(float) * out.size()))
              << threads << " threads";
      }
    }
  });
}

// The activation rides in the epilogue of each output block; it must give the bits of a
// separate pass over the whole output, for grouped convs (several m blocks and groups), strided
// ones, and the 1×1 convs that run as a matmul.
TEST(Conv, ActivationEpilogueEqualsASeparatePass) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  const ConvCase cases[] = {
      {{.in_h = 20, .in_w = 21, .in_c = 64, .out_c = 96, .kernel = 3, .stride = 1, .groups = 2}},
      {{.in_h = 20, .in_w = 20, .in_c = 48, .out_c = 40, .kernel = 3, .stride = 2},
       WeightType::kF16},
      {{.in_h = 17, .in_w = 15, .in_c = 64, .out_c = 72, .kernel = 1}},
      {{.in_h = 17, .in_w = 15, .in_c = 64, .out_c = 72, .kernel = 1}, WeightType::kQ8_0}};
  const kernels::Activation acts[] = {kernels::Activation::kGelu, kernels::Activation::kGeluTanh,
                                      kernels::Activation::kRelu, kernels::Activation::kIdentity};
  testing::for_each_isa([&](Isa) {
    uint64_t seed = 900;
    for (const ConvCase& c : cases) {
      const auto plain = run_case(c, pool, seed);  // checked against the reference
      const ConvInputs x(c, seed);
      const auto conv = kernels::pack_conv2d(c.p, x.view);
      for (const kernels::Activation f : acts) {
        std::vector<float> want = plain;
        kernels::activate(f, want.data(), want.data(), static_cast<int64_t>(want.size()), 1.7f);
        testing::GuardedBuffer got(want.size());
        kernels::conv2d(x.in.data(), conv, x.bias.data(), got.data(), pool, f, 1.7f);
        EXPECT_TRUE(got.intact()) << describe(c);
        EXPECT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * want.size()))
            << describe(c) << " activation " << static_cast<int>(f);
      }
      seed += 10;
    }
  });
}

// Packing on a pool (model loading: groups in parallel, or the panels of an ungrouped conv)
// gives the same packed weights as on one thread: same size, bitwise the same outputs.
TEST(Conv, PoolPackingGivesTheSameConv) {
  ThreadPool pool(3, /*min_parallel_ns=*/0), one(1);
  const Conv2dParams shapes[] = {
      {.in_h = 9, .in_w = 8, .in_c = 48, .out_c = 72, .kernel = 3, .stride = 2, .groups = 3},
      {.in_h = 9, .in_w = 8, .in_c = 16, .out_c = 40, .kernel = 3, .stride = 1, .groups = 1},
      {.in_h = 9, .in_w = 8, .in_c = 64, .out_c = 40, .kernel = 1}};
  for (const Conv2dParams& p : shapes) {
    const int64_t k = p.in_c / p.groups * p.kernel * p.kernel;
    const auto weight = testing::random_floats(static_cast<size_t>(p.out_c * k), 5, -0.5f, 0.5f);
    std::vector<uint16_t> half(weight.size());
    for (size_t i = 0; i < weight.size(); ++i) half[i] = kernels::fp32_to_fp16(weight[i]);
    const auto in =
        testing::random_floats(static_cast<size_t>(p.in_h * p.in_w * p.in_c), 6, -1.f, 1.f);
    for (WeightType t : {WeightType::kF32, WeightType::kF16}) {
      const WeightView view{t,
                            t == WeightType::kF32 ? static_cast<const void*>(weight.data())
                                                  : static_cast<const void*>(half.data()),
                            nullptr, p.out_c, k};
      const auto serial = kernels::pack_conv2d(p, view);
      const auto pooled = kernels::pack_conv2d(p, view, pool);
      HugePageArena arena;
      const auto in_arena = kernels::pack_conv2d(p, view, &pool, &arena);
      ASSERT_EQ(serial.bytes(), pooled.bytes());
      ASSERT_EQ(serial.bytes(), in_arena.bytes());
      EXPECT_GE(arena.used(), in_arena.bytes());
      const size_t n = static_cast<size_t>(serial.out_h() * serial.out_w() * p.out_c);
      std::vector<float> a(n), b(n), c(n);
      kernels::conv2d(in.data(), serial, nullptr, a.data(), one);
      kernels::conv2d(in.data(), pooled, nullptr, b.data(), one);
      kernels::conv2d(in.data(), in_arena, nullptr, c.data(), one);
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * n))
          << "groups " << p.groups << " kernel " << p.kernel;
      EXPECT_EQ(0, std::memcmp(a.data(), c.data(), sizeof(float) * n))
          << "arena, groups " << p.groups << " kernel " << p.kernel;
    }
  }
}

// A conv rebuilt from its groups' packed matrices (what the pack cache does with adopted
// bytes) computes the same; groups that do not fit the params are refused.
TEST(Conv, AdoptedGroupsComputeTheSame) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  const Conv2dParams shapes[] = {
      {.in_h = 9, .in_w = 8, .in_c = 48, .out_c = 72, .kernel = 3, .stride = 2, .groups = 3},
      {.in_h = 9, .in_w = 8, .in_c = 64, .out_c = 40, .kernel = 1}};
  for (const Conv2dParams& p : shapes) {
    const int64_t k = p.in_c / p.groups * p.kernel * p.kernel;
    const auto weight = testing::random_floats(static_cast<size_t>(p.out_c * k), 5, -0.5f, 0.5f);
    const auto in =
        testing::random_floats(static_cast<size_t>(p.in_h * p.in_w * p.in_c), 6, -1.f, 1.f);
    const auto conv =
        kernels::pack_conv2d(p, {WeightType::kF32, weight.data(), nullptr, p.out_c, k});
    std::vector<kernels::PackedMatrix> groups;
    for (int64_t g = 0; g < conv.num_groups(); ++g) {
      const kernels::PackedMatrix& m = conv.group(g);
      groups.push_back(kernels::adopt_packed_matrix(m.type(), m.n(), m.k(), m.packed_data(),
                                                    m.bytes(), nullptr));
    }
    const auto adopted = kernels::adopt_packed_conv2d(p, std::move(groups));
    const size_t n = static_cast<size_t>(conv.out_h() * conv.out_w() * p.out_c);
    std::vector<float> a(n), b(n);
    kernels::conv2d(in.data(), conv, nullptr, a.data(), pool);
    kernels::conv2d(in.data(), adopted, nullptr, b.data(), pool);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * n)) << "groups " << p.groups;
    Conv2dParams other = p;
    other.out_c *= 2;
    std::vector<kernels::PackedMatrix> again;
    for (int64_t g = 0; g < conv.num_groups(); ++g) {
      const kernels::PackedMatrix& m = conv.group(g);
      again.push_back(kernels::adopt_packed_matrix(m.type(), m.n(), m.k(), m.packed_data(),
                                                   m.bytes(), nullptr));
    }
    EXPECT_THROW(kernels::adopt_packed_conv2d(other, std::move(again)), Error);
    EXPECT_THROW(kernels::adopt_packed_conv2d(p, {}), Error);
  }
}

TEST(Conv, RejectsBadArguments) {
  std::vector<float> w(16 * 27);
  const WeightView view{WeightType::kF32, w.data(), nullptr, 16, 27};
  const Conv2dParams ok{.in_h = 8, .in_w = 8, .in_c = 3, .out_c = 16, .kernel = 3, .stride = 2};
  EXPECT_NO_THROW(kernels::pack_conv2d(ok, view));
  auto expect_bad = [&](auto mutate) {
    Conv2dParams p = ok;
    mutate(p);
    EXPECT_THROW(kernels::pack_conv2d(p, view), Error);
  };
  expect_bad([](Conv2dParams& p) { p.stride = 3; });
  expect_bad([](Conv2dParams& p) { p.groups = 2; });  // 3 % 2 != 0
  expect_bad([](Conv2dParams& p) { p.kernel = 0; });
  expect_bad([](Conv2dParams& p) { p.in_h = 0; });
  expect_bad([](Conv2dParams& p) { p.out_c = 32; });  // weight has 16 rows
  expect_bad([](Conv2dParams& p) { p.kernel = 1; });  // weight has 27 columns
  std::vector<int8_t> q(16 * 32);
  std::vector<uint16_t> s(16);
  EXPECT_THROW(
      kernels::pack_conv2d(
          {.in_h = 4, .in_w = 4, .in_c = 64, .out_c = 16, .kernel = 1, .stride = 2, .groups = 2},
          WeightView{WeightType::kQ8_0, q.data(), s.data(), 16, 32}),
      Error);
  const auto conv = kernels::pack_conv2d(ok, view);
  std::vector<float> buf(8 * 8 * 16);
  ThreadPool pool(1);
  EXPECT_THROW(kernels::conv2d(buf.data(), conv, nullptr, buf.data() + 10, pool),
               Error);  // overlap
  EXPECT_THROW(kernels::conv2d(buf.data(), kernels::PackedConv2d(), nullptr, buf.data(), pool),
               Error);
}

TEST(Pool, AvgPool2x2CountsOnlyRealElements) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (int64_t h : {1, 2, 3, 8, 9})
    for (int64_t w : {1, 2, 5, 8})
      for (int64_t c : {1, 7, 256}) {
        const auto in = testing::random_floats(static_cast<size_t>(h * w * c), h * 100 + w * 10 + c,
                                               -1e3f, 1e3f);
        const int64_t oh = (h + 1) / 2, ow = (w + 1) / 2;
        testing::GuardedBuffer out(static_cast<size_t>(oh * ow * c));
        kernels::avg_pool_2x2(in.data(), h, w, c, out.data(), pool);
        ASSERT_TRUE(out.intact());
        std::vector<float> ref(out.size());
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox)
            for (int64_t j = 0; j < c; ++j) {
              double sum = 0;
              int n = 0;
              for (int64_t y = 2 * oy; y < std::min(h, 2 * oy + 2); ++y)
                for (int64_t x = 2 * ox; x < std::min(w, 2 * ox + 2); ++x, ++n)
                  sum += in[(y * w + x) * c + j];
              ref[(oy * ow + ox) * c + j] = static_cast<float>(sum / n);
            }
        EXPECT_LE(testing::nmse(out.data(), ref.data(), ref.size()), 1e-13)
            << h << "x" << w << "x" << c;
      }
}

TEST(Pool, MeanPool) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (int64_t hw : {1, 2, 49, 64, 100})
    for (int64_t c : {1, 3, 63, 64, 65, 1536}) {
      const auto in = testing::random_floats(static_cast<size_t>(hw * c), hw + c, -10.f, 10.f);
      testing::GuardedBuffer out(static_cast<size_t>(c));
      kernels::mean_pool(in.data(), hw, c, out.data(), pool);
      ASSERT_TRUE(out.intact());
      std::vector<float> ref(static_cast<size_t>(c));
      for (int64_t j = 0; j < c; ++j) {
        double s = 0;
        for (int64_t r = 0; r < hw; ++r) s += in[r * c + j];
        ref[j] = static_cast<float>(s / hw);
      }
      EXPECT_LE(testing::nmse(out.data(), ref.data(), ref.size()), 1e-12);
    }
  float x = 0;
  EXPECT_THROW(kernels::mean_pool(&x, 0, 1, &x, pool), Error);
  EXPECT_THROW(kernels::avg_pool_2x2(&x, 1, 0, 1, &x, pool), Error);
  // In place, the parallel tasks would read values others had already replaced.
  std::vector<float> buf(4 * 4 * 8, 1.f);
  EXPECT_THROW(kernels::avg_pool_2x2(buf.data(), 4, 4, 8, buf.data(), pool), Error);
  EXPECT_THROW(kernels::avg_pool_2x2(buf.data() + 8, 3, 4, 8, buf.data(), pool), Error);
  EXPECT_THROW(kernels::mean_pool(buf.data(), 16, 8, buf.data() + 120, pool), Error);
  EXPECT_NO_THROW(kernels::mean_pool(buf.data(), 15, 8, buf.data() + 120, pool));
}

// Both pools split their work by output rows or channel blocks, never by thread count.
TEST(Pool, BitwiseIdenticalForAnyThreadCount) {
  const int64_t h = 21, w = 19, c = 200;
  const auto in = testing::random_floats(static_cast<size_t>(h * w * c), 7, -1e3f, 1e3f);
  const int64_t pooled = ((h + 1) / 2) * ((w + 1) / 2) * c;
  std::vector<float> avg1(static_cast<size_t>(pooled)), mean1(static_cast<size_t>(c));
  ThreadPool one(1);
  kernels::avg_pool_2x2(in.data(), h, w, c, avg1.data(), one);
  kernels::mean_pool(in.data(), h * w, c, mean1.data(), one);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads, /*min_parallel_ns=*/0);
    std::vector<float> avg(avg1.size(), -1.f), mean(mean1.size(), -1.f);
    kernels::avg_pool_2x2(in.data(), h, w, c, avg.data(), pool);
    kernels::mean_pool(in.data(), h * w, c, mean.data(), pool);
    EXPECT_EQ(0, std::memcmp(avg.data(), avg1.data(), avg.size() * sizeof(float))) << threads;
    EXPECT_EQ(0, std::memcmp(mean.data(), mean1.data(), mean.size() * sizeof(float))) << threads;
  }
}

}  // namespace
}  // namespace flamingo
