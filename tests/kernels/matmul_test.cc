// kernels::matmul against a double-precision reference, for every ISA × weight type.
//
// Thresholds (NMSE, ggml test-backend-ops style, sum((out-ref)²)/sum(ref²)):
//   - every type vs the reference computed on the weights the type actually stores
//     (dequantised): ≤ 1e-7, i.e. the kernel adds nothing beyond fp32 rounding;
//   - quantisation error, vs the reference on the original fp32 weights (uniform inputs):
//     f16 ≤ 1e-6, bf16 ≤ 5e-5, q8_0 ≤ 5e-4 (all ≤ 5e-4 as issue 3 asks) and q4_0 ≤ 1e-2 (a 4-bit
//     grid of step max/8 has an error variance of about 4e-3 of the weights' variance).
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "flamingo/error.h"
#include "kernels/cpu.h"
#include "kernels/matmul_kernels.h"
#include "kernels/matmul_packed.h"
#include "kernels/pack_a_isa.h"
#include "support/matmul_reference.h"
#include "support/test_util.h"
#include "util/huge_page_arena.h"
#include "util/thread_pool.h"

namespace flamingo::kernels {
namespace {

using testing::GuardedBuffer;
using testing::make_weights;
using testing::nmse;
using testing::random_floats;
using testing::reference_matmul;
using testing::TestWeights;

constexpr WeightType kAllTypes[] = {WeightType::kF32, WeightType::kF16, WeightType::kBF16,
                                    WeightType::kQ8_0, WeightType::kQ4_0};
constexpr int64_t kSizes[] = {1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129};

bool quantised(WeightType t) { return t == WeightType::kQ8_0 || t == WeightType::kQ4_0; }

double quantisation_bound(WeightType t) {
  switch (t) {
    case WeightType::kF32:
      return 1e-7;
    case WeightType::kF16:
      return 1e-6;
    case WeightType::kBF16:
      return 5e-5;
    case WeightType::kQ8_0:
      return 5e-4;
    case WeightType::kQ4_0:
      return 1e-2;
  }
  return 0;
}

// Sets the ISA for one test and restores the previous one.
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : saved_(active_isa()) { set_isa(isa); }
  ~IsaScope() { set_isa(saved_); }

 private:
  Isa saved_;
};

class DecodeStreamsScope {
 public:
  explicit DecodeStreamsScope(DecodeStreams s) : saved_(active_decode_streams()) {
    set_decode_streams(s);
  }
  ~DecodeStreamsScope() { set_decode_streams(saved_); }

 private:
  DecodeStreams saved_;
};

// The kernel sets matmul can run: the scalar one, and AVX2 under either decode policy
// (kernels/cpu.h), whichever this CPU would pick.
struct KernelPath {
  Isa isa;
  DecodeStreams streams;
  const char* name;
};
constexpr KernelPath kPaths[] = {{Isa::kScalar, DecodeStreams::kSeveral, "scalar"},
                                 {Isa::kAvx2, DecodeStreams::kSeveral, "avx2"},
                                 {Isa::kAvx2, DecodeStreams::kOne, "avx2_one_stream"}};
void PrintTo(const KernelPath& path, std::ostream* os) { *os << path.name; }

struct Case {
  int64_t m, n, k;
  int64_t lda_pad = 0, ldc_pad = 0;
  bool bias = false, accumulate = false;
  float a_scale = 1.f, w_scale = 1.f;
};

// Runs one matmul and checks it against the reference; returns the output (M × ldc).
std::vector<float> check_case_once(WeightType type, const Case& cs, ThreadPool& pool, uint64_t seed,
                                   bool check_quantisation, bool int8) {
  SCOPED_TRACE(::testing::Message()
               << weight_type_name(type) << " M=" << cs.m << " N=" << cs.n << " K=" << cs.k
               << " lda+" << cs.lda_pad << " ldc+" << cs.ldc_pad << (cs.bias ? " bias" : "")
               << (cs.accumulate ? " accumulate" : "") << (int8 ? " int8_activations" : "")
               << " isa=" << isa_name(active_isa())
               << " decode streams=" << decode_streams_name(active_decode_streams()));
  const int64_t lda = cs.k + cs.lda_pad, ldc = cs.n + cs.ldc_pad;
  const TestWeights w = make_weights(type, cs.n, cs.k, seed, cs.w_scale);
  const std::vector<float> a =
      random_floats(static_cast<size_t>(cs.m * lda), seed + 1, -cs.a_scale, cs.a_scale);
  const std::vector<float> bias = random_floats(static_cast<size_t>(cs.n), seed + 2);
  const std::vector<float> c0 = random_floats(static_cast<size_t>(cs.m * ldc), seed + 3);
  const PackedMatrix packed = pack_matrix(w.view());
  EXPECT_EQ(packed.n(), cs.n);
  EXPECT_EQ(packed.k(), cs.k);
  EXPECT_EQ(packed.type(), type);

  GuardedBuffer c(static_cast<size_t>(cs.m * ldc));
  std::memcpy(c.data(), c0.data(), c0.size() * 4);
  MatmulEpilogue ep;
  ep.bias = cs.bias ? bias.data() : nullptr;
  ep.accumulate = cs.accumulate;
  ep.int8_activations = int8;
  matmul(a.data(), lda, cs.m, packed, c.data(), ldc, pool, ep);
  EXPECT_TRUE(c.intact()) << "write outside C";

  // The quantised GEMV multiplies A rounded to 8 bits (matmul.h); the reference takes the same
  // A, so the kernel itself must again add nothing beyond fp32 rounding.
  const std::vector<float> a_used =
      int8 && quantised(type) && cs.m < 8 ? testing::round_rows_q8(a.data(), lda, cs.m, cs.k) : a;
  const std::vector<float> ref =
      reference_matmul(a_used.data(), lda, cs.m, w.dequantised.data(), cs.n, cs.k, ep.bias,
                       cs.accumulate ? c0.data() : nullptr, ldc);
  // Compare only the M×N part; the padding columns must be untouched.
  std::vector<float> got, want;
  for (int64_t i = 0; i < cs.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float v = c.data()[i * ldc + j];
      if (j < cs.n) {
        got.push_back(v);
        want.push_back(ref[i * ldc + j]);
      } else {
        EXPECT_EQ(std::memcmp(&v, &c0[i * ldc + j], 4), 0) << "padding column " << j << " written";
      }
    }
  }
  EXPECT_TRUE(testing::all_finite(got.data(), got.size()));
  EXPECT_LE(nmse(got.data(), want.data(), got.size()), 1e-7);
  if (check_quantisation) {
    const std::vector<float> ref_orig =
        reference_matmul(a.data(), lda, cs.m, w.original.data(), cs.n, cs.k, ep.bias,
                         cs.accumulate ? c0.data() : nullptr, ldc);
    std::vector<float> want_orig;
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < cs.n; ++j) want_orig.push_back(ref_orig[i * ldc + j]);
    EXPECT_LE(nmse(got.data(), want_orig.data(), got.size()), quantisation_bound(type));
  }
  return std::vector<float>(c.data(), c.data() + c.size());
}

// check_case_once, and for the quantised GEMV (M < 8) once more with int8 activations.
std::vector<float> check_case(WeightType type, const Case& cs, ThreadPool& pool, uint64_t seed,
                              bool check_quantisation = false) {
  if (quantised(type) && cs.m < 8) check_case_once(type, cs, pool, seed, check_quantisation, true);
  return check_case_once(type, cs, pool, seed, check_quantisation, false);
}

class MatmulTest : public ::testing::TestWithParam<std::tuple<KernelPath, WeightType>> {
 protected:
  void SetUp() override {
    const KernelPath& path = std::get<0>(GetParam());
    if (path.isa == Isa::kAvx2 && !cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
    scope_ = std::make_unique<IsaScope>(path.isa);
    streams_ = std::make_unique<DecodeStreamsScope>(path.streams);
  }
  void TearDown() override {
    streams_.reset();
    scope_.reset();
  }
  WeightType type() const { return std::get<1>(GetParam()); }
  // K for the quantised types is rounded up to a multiple of 32.
  int64_t fit_k(int64_t k) const { return quantised(type()) ? (k + 31) / 32 * 32 : k; }

  std::unique_ptr<IsaScope> scope_;
  std::unique_ptr<DecodeStreamsScope> streams_;
};

// Every M × N from the size list, K cycling through the list, so each size meets every other
// within a fast run.
TEST_P(MatmulTest, SizeSweep) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  uint64_t seed = 100;
  for (size_t i = 0; i < std::size(kSizes); ++i) {
    for (size_t j = 0; j < std::size(kSizes); ++j) {
      const int64_t k = fit_k(kSizes[(i + 2 * j) % std::size(kSizes)]);
      check_case(type(), {kSizes[i], kSizes[j], k}, pool, seed++);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST_P(MatmulTest, EveryK) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  uint64_t seed = 500;
  for (int64_t k : kSizes) {
    for (int64_t m : {1, 5, 8, 13}) check_case(type(), {m, 33, fit_k(k)}, pool, seed++);
  }
  for (int64_t k : {32, 64, 96, 160, 256, 288, 544}) check_case(type(), {9, 17, k}, pool, seed++);
}

TEST_P(MatmulTest, QuantisationErrorWithinBound) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  check_case(type(), {1, 64, 256}, pool, 900, true);
  check_case(type(), {24, 48, 512}, pool, 901, true);
}

TEST_P(MatmulTest, StridesBiasAndAccumulate) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  uint64_t seed = 1000;
  for (int64_t m : {1, 3, 7, 8, 17, 100}) {
    for (bool bias : {false, true}) {
      for (bool acc : {false, true}) {
        check_case(type(), {m, 45, fit_k(70), 5, 3, bias, acc}, pool, seed++);
        check_case(type(), {m, 32, fit_k(300), 32, 16, bias, acc}, pool, seed++);
      }
    }
  }
}

TEST_P(MatmulTest, LargeMagnitudes) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  // fp16 weights stop at 65504; keep them at ±1000 so every type can hold them.
  check_case(type(), {3, 40, fit_k(96), 0, 0, true, false, 1e5f, 1e3f}, pool, 1100);
  check_case(type(), {70, 40, fit_k(300), 0, 0, false, true, 1e5f, 1e3f}, pool, 1101);
  check_case(type(), {5, 24, fit_k(64), 0, 0, false, false, 1e-4f, 1e-3f}, pool, 1102);
}

TEST_P(MatmulTest, ModelShapeDecode) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  check_case(type(), {1, 5632, 2048}, pool, 1200);
}

// The 64×2048×5632 reference costs ~0.7 GFLOP in double: run it for f32 and the 4-bit type on
// both ISAs (the other types share the GEMM driver and differ only in their sub-panel
// expansion, which the sweeps cover).
TEST(MatmulModelShape, Prefill) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    if (isa == Isa::kAvx2 && !cpu_has_avx2()) continue;
    IsaScope scope(isa);
    check_case(WeightType::kF32, {64, 5632, 2048}, pool, 1300);
    check_case(WeightType::kQ4_0, {64, 5632, 2048}, pool, 1301);
  }
}

// With K = 8192 packed A is split into chunks of 384 rows, so M = 400 runs two chunks (the
// last of 16 rows), with strides, bias and accumulation.
TEST(MatmulRowChunks, SeveralPackedChunks) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    if (isa == Isa::kAvx2 && !cpu_has_avx2()) continue;
    IsaScope scope(isa);
    check_case(WeightType::kF32, {400, 40, 8192, 5, 3, true, true}, pool, 1400);
    check_case(WeightType::kQ8_0, {400, 40, 8192, 0, 0, false, false}, pool, 1401);
  }
}

TEST_P(MatmulTest, BitwiseIdenticalForAnyThreadCount) {
  ThreadPool one(1), two(2, /*min_parallel_ns=*/0), three(3, /*min_parallel_ns=*/0);
  for (const Case& cs : std::vector<Case>{{1, 1000, fit_k(300)},
                                          {5, 300, fit_k(200)},
                                          {200, 300, fit_k(600)},
                                          {64, 530, fit_k(256)}}) {
    const TestWeights w = make_weights(type(), cs.n, cs.k, 7);
    const PackedMatrix packed = pack_matrix(w.view());
    const std::vector<float> a = random_floats(static_cast<size_t>(cs.m * cs.k), 8);
    std::vector<std::vector<float>> outs;
    for (bool int8 : {false, true}) {
      MatmulEpilogue ep;
      ep.int8_activations = int8;
      outs.clear();
      for (ThreadPool* pool : {&one, &two, &three}) {
        outs.emplace_back(static_cast<size_t>(cs.m * cs.n));
        matmul(a.data(), cs.k, cs.m, packed, outs.back().data(), cs.n, *pool, ep);
      }
      EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0)
          << "M=" << cs.m << " int8 " << int8;
      EXPECT_EQ(std::memcmp(outs[0].data(), outs[2].data(), outs[0].size() * 4), 0)
          << "M=" << cs.m << " int8 " << int8;
    }
  }
}

// From kMatmulBatchInvariantRows rows up, each row of C has the same bits whatever the other
// rows of the call: any slice of A run on its own (from the first row, the middle, the end;
// with one more row than a 6-row tile, or several tiles and a partial one) gives that slice of
// the whole call's C, with a bias, an activation, or accumulating into C.
TEST_P(MatmulTest, RowsAreComputedAloneFromTheBatchInvariantSizeUp) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  const int64_t m = 437, n = 70, k = fit_k(700), ldc = n + 2;  // k > one 512-wide k block
  const TestWeights w = make_weights(type(), n, k, 41);
  const PackedMatrix packed = pack_matrix(w.view());
  const std::vector<float> a = random_floats(static_cast<size_t>(m * k), 42, -3.f, 3.f);
  const std::vector<float> bias = random_floats(static_cast<size_t>(n), 43);
  const std::vector<float> c0 = random_floats(static_cast<size_t>(m * ldc), 44);
  struct Epi {
    bool bias, accumulate;
    Activation f;
  };
  for (const Epi& e :
       {Epi{false, false, Activation::kIdentity}, Epi{true, false, Activation::kGelu},
        Epi{false, true, Activation::kIdentity}}) {
    for (bool int8 : {false, true}) {
      MatmulEpilogue ep;
      ep.bias = e.bias ? bias.data() : nullptr;
      ep.accumulate = e.accumulate;
      ep.activation = e.f;
      ep.int8_activations = int8;
      std::vector<float> whole = c0;
      matmul(a.data(), k, m, packed, whole.data(), ldc, pool, ep);
      struct Slice {
        int64_t row0, rows;
      };
      for (const Slice sl : {Slice{0, kMatmulBatchInvariantRows}, Slice{5, 9}, Slice{200, 31},
                             Slice{m - 13, 13}, Slice{1, m - 1}, Slice{390, 47}}) {
        SCOPED_TRACE(::testing::Message()
                     << "rows [" << sl.row0 << ", " << sl.row0 + sl.rows << ") bias " << e.bias
                     << " accumulate " << e.accumulate << " activation " << static_cast<int>(e.f)
                     << " int8 " << int8);
        std::vector<float> part(c0.begin() + sl.row0 * ldc, c0.begin() + (sl.row0 + sl.rows) * ldc);
        matmul(a.data() + sl.row0 * k, k, sl.rows, packed, part.data(), ldc, pool, ep);
        EXPECT_EQ(std::memcmp(part.data(), whole.data() + sl.row0 * ldc, part.size() * 4), 0);
      }
    }
  }
}

// The activation epilogue is the same function applied to the same values as a separate pass
// after the matmul, so the two must agree bit for bit, on the GEMV and the GEMM paths, with
// N not a multiple of the 16-column panels, and with padded rows of C left untouched.
TEST_P(MatmulTest, ActivationEpilogueEqualsASeparatePass) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  struct Act {
    Activation f;
    float scale;
  };
  const Act acts[] = {{Activation::kGelu, 1.7015043f},
                      {Activation::kRelu, 1.f},
                      {Activation::kSilu, 0.5f},
                      {Activation::kIdentity, -2.f}};
  uint64_t seed = 3000;
  for (int64_t m : {1, 3, 8, 64, 200}) {
    const int64_t n = 45, k = fit_k(100), ldc = n + 3;
    const TestWeights w = make_weights(type(), n, k, seed);
    const PackedMatrix packed = pack_matrix(w.view());
    const std::vector<float> a = random_floats(static_cast<size_t>(m * k), seed + 1, -2.f, 2.f);
    const std::vector<float> bias = random_floats(static_cast<size_t>(n), seed + 2);
    for (bool int8 : {false, true}) {
      for (const Act& act : acts) {
        SCOPED_TRACE(::testing::Message()
                     << "M=" << m << " activation " << static_cast<int>(act.f) << " int8 " << int8);
        MatmulEpilogue plain;
        plain.bias = bias.data();
        plain.int8_activations = int8;
        std::vector<float> want(static_cast<size_t>(m * ldc), 7.f);
        matmul(a.data(), k, m, packed, want.data(), ldc, pool, plain);
        for (int64_t i = 0; i < m; ++i)
          kernels::activate(act.f, want.data() + i * ldc, want.data() + i * ldc, n, act.scale);
        MatmulEpilogue fused = plain;
        fused.activation = act.f;
        fused.activation_scale = act.scale;
        GuardedBuffer got(static_cast<size_t>(m * ldc));
        std::fill(got.data(), got.data() + got.size(), 7.f);
        matmul(a.data(), k, m, packed, got.data(), ldc, pool, fused);
        EXPECT_TRUE(got.intact());
        EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0);
      }
    }
    seed += 10;
  }
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<KernelPath, WeightType>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" +
         weight_type_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllIsasAndTypes, MatmulTest,
                         ::testing::Combine(::testing::ValuesIn(kPaths),
                                            ::testing::ValuesIn(kAllTypes)),
                         param_name);

TEST(MatmulAgreement, ScalarAndAvx2Agree) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (WeightType type : kAllTypes) {
    for (int64_t m : {1, 4, 7, 8, 50}) {
      // 11 panels: the GEMV's tasks take two each, the decode kernel pairs them, the last alone.
      const int64_t n = 166, k = 320;
      const TestWeights w = make_weights(type, n, k, 11);
      const PackedMatrix packed = pack_matrix(w.view());
      const std::vector<float> a = random_floats(static_cast<size_t>(m * k), 12);
      std::vector<float> scalar(static_cast<size_t>(m * n)), avx2(scalar.size());
      MatmulEpilogue ep;
      ep.int8_activations = true;  // a no-op except for the quantised GEMV
      {
        IsaScope s(Isa::kScalar);
        matmul(a.data(), k, m, packed, scalar.data(), n, pool, ep);
      }
      for (DecodeStreams streams : {DecodeStreams::kSeveral, DecodeStreams::kOne}) {
        {
          IsaScope s(Isa::kAvx2);
          DecodeStreamsScope d(streams);
          matmul(a.data(), k, m, packed, avx2.data(), n, pool, ep);
        }
        SCOPED_TRACE(::testing::Message() << weight_type_name(type) << " M=" << m
                                          << " decode streams=" << decode_streams_name(streams));
        EXPECT_LE(nmse(avx2.data(), scalar.data(), scalar.size()), 1e-12);
        // The quantised GEMV does the same integer sums and the same fp32 operations per block.
        if (quantised(type) && m < 8)
          EXPECT_EQ(std::memcmp(avx2.data(), scalar.data(), scalar.size() * 4), 0);
      }
    }
  }
}

// The AVX2 interleave that packs tiles of 1-6 rows of A (matmul) or of patches (conv) for the
// 6×16 micro-kernel: exactly the layout's definition, zeros for absent rows, and no byte
// written outside its rows·len floats (matmul packs the neighbouring tiles on other threads).
TEST(PackA, InterleaveRowsFollowsTheLayoutAndStaysInItsRun) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  constexpr int64_t kGuard = 16;
  const float canary = -12345.f;
  for (int rows = 1; rows <= 6; ++rows) {
    for (int64_t len : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 128, 129}) {
      for (int absent : {-1, 0, 3, 5}) {
        SCOPED_TRACE(::testing::Message()
                     << "rows " << rows << " len " << len << " absent " << absent);
        const std::vector<float> src = random_floats(static_cast<size_t>(rows * len),
                                                     static_cast<uint64_t>(rows * 1000 + len));
        const float* ptr[6];
        for (int r = 0; r < rows; ++r) ptr[r] = r == absent ? nullptr : src.data() + r * len;
        std::vector<float> dst(static_cast<size_t>(rows * len + 2 * kGuard), canary);
        avx2::interleave_rows(ptr, rows, len, dst.data() + kGuard);
        for (int64_t i = 0; i < kGuard; ++i) {
          EXPECT_EQ(dst[static_cast<size_t>(i)], canary) << "before " << i;
          EXPECT_EQ(dst[static_cast<size_t>(kGuard + rows * len + i)], canary) << "past " << i;
        }
        for (int64_t t = 0; t < len; ++t)
          for (int r = 0; r < rows; ++r)
            ASSERT_EQ(dst[static_cast<size_t>(kGuard + t * rows + r)],
                      r == absent ? 0.f : src[static_cast<size_t>(r * len + t)])
                << "t " << t << " row " << r;
      }
    }
  }
}

// quantize_rows_q8 (the A side of the quantised GEMV), both ISAs, on blocks built to hit its
// edges: exact ties of the rounding, all-zero, tiny, huge, NaN and Inf blocks.
struct RoundedRows {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> sum;
};
RoundedRows round_rows(detail::QuantizeRowsFn fn, const std::vector<float>& a, int m, int64_t k) {
  RoundedRows r{std::vector<int8_t>(static_cast<size_t>(m * k)),
                std::vector<float>(static_cast<size_t>(m * k / 32)),
                std::vector<int32_t>(static_cast<size_t>(m * k / 32))};
  fn(a.data(), k, m, k, r.q.data(), r.d.data(), r.sum.data());
  return r;
}

TEST(QuantizeRowsQ8, EdgeBlocksOnBothIsas) {
  constexpr int64_t k = int64_t{32} * 8;
  std::vector<float> a = random_floats(static_cast<size_t>(2 * k), 31, -3.f, 3.f);
  float* blk = a.data();
  // Block 0: halfway cases, x·127/absmax = n + 0.5 exactly (absmax 127): ties to even.
  for (int i = 0; i < 32; ++i) blk[i] = static_cast<float>(i % 2 ? i : -i) + 0.5f;
  blk[31] = 127.f;
  for (int i = 32; i < 64; ++i) blk[i] = 0.f;                   // block 1: zeros
  for (int i = 64; i < 96; ++i) blk[i] = 1e-35f * (i - 80);     // block 2: below kQ8MinAbsMax
  for (int i = 96; i < 128; ++i) blk[i] = 3e38f * (i % 3 - 1);  // block 3: huge
  blk[140] = std::numeric_limits<float>::quiet_NaN();           // block 4: NaN
  blk[170] = -std::numeric_limits<float>::infinity();           // block 5: Inf
  for (detail::QuantizeRowsFn fn :
       {detail::quantize_rows_q8_scalar, detail::quantize_rows_q8_avx2}) {
    if (fn == detail::quantize_rows_q8_avx2 && !cpu_has_avx2()) continue;
    const RoundedRows r = round_rows(fn, a, 2, k);
    SCOPED_TRACE(fn == detail::quantize_rows_q8_scalar ? "scalar" : "avx2");
    EXPECT_EQ(r.d[0], 1.f);
    for (int i = 0; i < 31; ++i) {
      const float want = std::nearbyint(blk[i]);  // the tie goes to the even neighbour
      EXPECT_EQ(r.q[i], static_cast<int8_t>(want)) << "element " << i;
      EXPECT_EQ(static_cast<int>(want) % 2, 0) << "element " << i;
    }
    EXPECT_EQ(r.q[31], 127);
    EXPECT_EQ(r.d[1], 0.f);
    EXPECT_EQ(r.d[2], 0.f);
    EXPECT_EQ(r.sum[1] | r.sum[2], 0);
    for (int i = 32; i < 96; ++i) EXPECT_EQ(r.q[i], 0) << "element " << i;
    EXPECT_FLOAT_EQ(r.d[3], 3e38f / 127.f);
    EXPECT_TRUE(std::isnan(r.d[4]));
    EXPECT_TRUE(std::isnan(r.d[5]));
    for (size_t b = 0; b < r.d.size(); ++b) {
      int32_t s = 0;
      int amax = 0;
      for (int i = 0; i < 32; ++i) {
        // NOLINTNEXTLINE(bugprone-signed-char-misuse): the codes are signed, -127..127
        const int q = r.q[b * 32 + i];
        s += q;
        amax = std::max(amax, std::abs(q));
        // Each element within half a step of its value (finite blocks that are not zeroed).
        if (std::isfinite(r.d[b]) && r.d[b] > 0.f)
          EXPECT_LE(std::fabs(a[b * 32 + i] - r.d[b] * q), 0.5001f * r.d[b])
              << "element " << b * 32 + i;
      }
      EXPECT_EQ(r.sum[b], s) << "block " << b;
      EXPECT_LE(amax, 127);
      if (std::isfinite(r.d[b]) && r.d[b] > 0.f) EXPECT_EQ(amax, 127) << "block " << b;
    }
  }
  if (cpu_has_avx2()) {
    const RoundedRows s = round_rows(detail::quantize_rows_q8_scalar, a, 2, k);
    const RoundedRows v = round_rows(detail::quantize_rows_q8_avx2, a, 2, k);
    EXPECT_EQ(s.q, v.q);
    EXPECT_EQ(s.sum, v.sum);
    EXPECT_EQ(std::memcmp(s.d.data(), v.d.data(), s.d.size() * 4), 0);
  }
}

// The quantised decode kernels (one row of A): the pairs (two panels at once) and the AVX2
// single-stream kernels give the same bits as the general kernel on each panel, on both ISAs,
// for K of one block up to a model's width, with large-magnitude and non-finite activation
// blocks, and nothing written past their 16 outputs.
TEST(GemvQuantDecode, EqualsTheGeneralKernelOnBothIsas) {
  struct Kernels {
    WeightType type;
    detail::GemvQuantFn single;
    detail::GemvQuantPairFn pair;
    detail::GemvQuantRowFn row;  // null on the scalar path, which has none
    detail::QuantizeRowsFn quantize;
    bool avx2;
  };
  const Kernels sets[] = {
      {WeightType::kQ8_0, detail::gemv_q8_0_q8_scalar, detail::gemv_q8_0_q8_1x32_scalar, nullptr,
       detail::quantize_rows_q8_scalar, false},
      {WeightType::kQ4_0, detail::gemv_q4_0_q8_scalar, detail::gemv_q4_0_q8_1x32_scalar, nullptr,
       detail::quantize_rows_q8_scalar, false},
      {WeightType::kQ8_0, detail::gemv_q8_0_q8_avx2, detail::gemv_q8_0_q8_1x32_avx2,
       detail::gemv_q8_0_q8_1x16_avx2, detail::quantize_rows_q8_avx2, true},
      {WeightType::kQ4_0, detail::gemv_q4_0_q8_avx2, detail::gemv_q4_0_q8_1x32_avx2,
       detail::gemv_q4_0_q8_1x16_avx2, detail::quantize_rows_q8_avx2, true},
  };
  for (const Kernels& ks : sets) {
    if (ks.avx2 && !cpu_has_avx2()) continue;
    for (int64_t k : {32, 64, 96, 320, 2048, 5632}) {
      SCOPED_TRACE(::testing::Message()
                   << weight_type_name(ks.type) << (ks.avx2 ? " avx2" : " scalar") << ", K=" << k);
      const TestWeights w = make_weights(ks.type, 48, k, 21);  // 3 panels: pairs (0, 1) and (2, 1)
      const PackedMatrix packed = pack_matrix(w.view());
      const PackedMatrix::Impl& m = packed.impl();
      std::vector<float> a = random_floats(static_cast<size_t>(k), 22);
      a[0] = 3e4f;  // a block led by a large value rounds the others to few levels
      if (k >= 96) a[70] = std::numeric_limits<float>::infinity();  // block 2 becomes NaN
      const RoundedRows r = round_rows(ks.quantize, a, 1, k);
      const detail::QuantizedRows aq{r.q.data(), r.d.data(), r.sum.data(), k};
      constexpr int kP = detail::kPanelRows;
      for (const auto& [p0, p1] : {std::pair<int64_t, int64_t>{0, 1}, {2, 1}}) {
        GuardedBuffer want0(kP), want1(kP), got0(kP), got1(kP);
        ks.single(aq, 1, m.panel(p0), want0.data());
        ks.single(aq, 1, m.panel(p1), want1.data());
        ks.pair(aq, m.panel(p0), m.panel(p1), got0.data(), got1.data());
        EXPECT_EQ(std::memcmp(got0.data(), want0.data(), kP * 4), 0) << "pair, panel " << p0;
        EXPECT_EQ(std::memcmp(got1.data(), want1.data(), kP * 4), 0) << "pair, panel " << p1;
        EXPECT_TRUE(got0.intact() && got1.intact()) << "pair wrote outside its 16 outputs";
        if (k < 96) {
          for (int j = 0; j < kP; ++j) EXPECT_TRUE(std::isfinite(got0.data()[j])) << j;
        }
        if (ks.row == nullptr) continue;
        GuardedBuffer got(kP);
        ks.row(aq, m.panel(p0), got.data());
        EXPECT_EQ(std::memcmp(got.data(), want0.data(), kP * 4), 0) << "1x16, panel " << p0;
        EXPECT_TRUE(got.intact()) << "1x16 wrote outside its 16 outputs";
      }
    }
  }
}

// The single-stream decode kernels against the scalar GEMV (the same weights, fp32 sums in
// another order) at every K of the size list and a model's widths, with large-magnitude and
// non-finite activations, and nothing written past their 16 outputs.
TEST(GemvOneStream, MatchesTheScalarKernelAtEveryK) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  struct Kernels {
    WeightType type;
    detail::GemvRowFn row;
    detail::GemvFn scalar;
  };
  const Kernels sets[] = {
      {WeightType::kF32, detail::gemv_f32_1x16_avx2, detail::gemv_f32_scalar},
      {WeightType::kF16, detail::gemv_f16_1x16_avx2, detail::gemv_f16_scalar},
      {WeightType::kBF16, detail::gemv_bf16_1x16_avx2, detail::gemv_bf16_scalar},
  };
  std::vector<int64_t> ks(std::begin(kSizes), std::end(kSizes));
  ks.insert(ks.end(), {2048, 5632});
  for (const Kernels& kernels : sets) {
    for (int64_t k : ks) {
      SCOPED_TRACE(::testing::Message() << weight_type_name(kernels.type) << ", K=" << k);
      const TestWeights w = make_weights(kernels.type, 32, k, 31);  // 2 panels: one read alone
      const PackedMatrix packed = pack_matrix(w.view());
      const PackedMatrix::Impl& m = packed.impl();
      for (const float scale : {1.f, 1e5f}) {
        std::vector<float> a = random_floats(static_cast<size_t>(k), 32, -scale, scale);
        constexpr int kP = detail::kPanelRows;
        for (int64_t p = 0; p < 2; ++p) {
          GuardedBuffer got(kP);
          std::vector<float> want(kP);
          kernels.row(a.data(), m.panel(p), k, got.data());
          kernels.scalar(a.data(), k, 1, m.panel(p), k, want.data());
          EXPECT_TRUE(got.intact()) << "wrote outside its 16 outputs";
          EXPECT_TRUE(testing::all_finite(got.data(), kP));
          EXPECT_LE(nmse(got.data(), want.data(), kP), 1e-7) << "panel " << p << " scale " << scale;
        }
      }
      std::vector<float> a = random_floats(static_cast<size_t>(k), 33);
      a[static_cast<size_t>(k - 1)] = std::numeric_limits<float>::infinity();  // the tail too
      GuardedBuffer got(detail::kPanelRows);
      kernels.row(a.data(), m.panel(0), k, got.data());
      for (int j = 0; j < detail::kPanelRows; ++j)
        EXPECT_FALSE(std::isfinite(got.data()[j])) << "column " << j;
    }
  }
}

TEST_P(MatmulTest, NonFiniteActivationsGiveNaN) {
  // Like fp32 arithmetic, a NaN or Inf in A makes the affected outputs NaN (for the quantised
  // GEMV too, although integers cannot hold one); the other rows stay finite.
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  const int64_t n = 40, k = 96;
  const TestWeights w = make_weights(type(), n, k, 51);
  const PackedMatrix packed = pack_matrix(w.view());
  for (int64_t m : {1, 3, 9}) {
    std::vector<float> a = random_floats(static_cast<size_t>(m * k), 52);
    a[static_cast<size_t>(k + 40) % a.size()] = std::numeric_limits<float>::quiet_NaN();
    for (bool int8 : {false, true}) {
      std::vector<float> c(static_cast<size_t>(m * n));
      MatmulEpilogue ep;
      ep.int8_activations = int8;
      matmul(a.data(), k, m, packed, c.data(), n, pool, ep);
      const int64_t bad_row = m == 1 ? 0 : 1;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j)
          EXPECT_EQ(std::isnan(c[r * n + j]), r == bad_row)
              << "M=" << m << " int8 " << int8 << " row " << r << " col " << j;
    }
  }
}

TEST(MatmulValidation, RejectsInvalidViews) {
  std::vector<float> f(64 * 64, 1.f);
  std::vector<uint16_t> scales(64 * 2, 0x3c00);
  WeightView v{WeightType::kF32, f.data(), nullptr, 64, 64};
  EXPECT_NO_THROW(pack_matrix(v));
  for (auto [n, k] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 64}, {64, 0}, {-1, 64}, {64, -32}}) {
    WeightView bad = v;
    bad.n = n;
    bad.k = k;
    EXPECT_THROW(pack_matrix(bad), Error) << n << "x" << k;
  }
  WeightView null_data = v;
  null_data.data = nullptr;
  EXPECT_THROW(pack_matrix(null_data), Error);
  for (WeightType t : {WeightType::kQ8_0, WeightType::kQ4_0}) {
    WeightView q{t, f.data(), scales.data(), 4, 48};  // k % 32 != 0
    EXPECT_THROW(pack_matrix(q), Error);
    q.k = 64;
    EXPECT_NO_THROW(pack_matrix(q));
    q.scales = nullptr;
    EXPECT_THROW(pack_matrix(q), Error);
  }
  WeightView bad_type = v;
  bad_type.type = static_cast<WeightType>(42);
  EXPECT_THROW(pack_matrix(bad_type), Error);
  WeightView huge = v;
  huge.n = int64_t{1} << 40;
  EXPECT_THROW(pack_matrix(huge), Error);
}

TEST(MatmulValidation, RejectsBadCalls) {
  ThreadPool pool(1);
  std::vector<float> w(16 * 32, 0.5f), a(4 * 40), c(4 * 20);
  const PackedMatrix packed = pack_matrix({WeightType::kF32, w.data(), nullptr, 16, 32});
  EXPECT_THROW(matmul(a.data(), 31, 2, packed, c.data(), 16, pool), Error);  // lda < K
  EXPECT_THROW(matmul(a.data(), 32, 2, packed, c.data(), 15, pool), Error);  // ldc < N
  EXPECT_THROW(matmul(a.data(), 32, -1, packed, c.data(), 16, pool), Error);
  EXPECT_THROW(matmul(nullptr, 32, 2, packed, c.data(), 16, pool), Error);
  PackedMatrix empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_THROW(matmul(a.data(), 32, 2, empty, c.data(), 16, pool), Error);
  EXPECT_NO_THROW(matmul(a.data(), 32, 0, packed, c.data(), 16, pool));  // nothing to do
  MatmulEpilogue act_acc;  // an activation of C + A·Wᵀ is not what the epilogue computes
  act_acc.accumulate = true;
  act_acc.activation = Activation::kGelu;
  EXPECT_THROW(matmul(a.data(), 32, 2, packed, c.data(), 16, pool, act_acc), Error);
  act_acc.activation = Activation::kIdentity;
  act_acc.activation_scale = 2.f;
  EXPECT_THROW(matmul(a.data(), 32, 2, packed, c.data(), 16, pool, act_acc), Error);
}

TEST(MatmulPacking, SizesAndMoves) {
  for (WeightType t : kAllTypes) {
    const TestWeights w = make_weights(t, 40, 64, 3);
    PackedMatrix p = pack_matrix(w.view());
    EXPECT_GE(p.bytes(), weight_bytes(t, 40, 64));
    PackedMatrix moved = std::move(p);
    EXPECT_EQ(moved.n(), 40);
    EXPECT_EQ(moved.type(), t);
  }
  EXPECT_EQ(weight_bytes(WeightType::kF32, 3, 64), 3u * 64 * 4);
  EXPECT_EQ(weight_bytes(WeightType::kBF16, 3, 64), 3u * 64 * 2);
  EXPECT_EQ(weight_bytes(WeightType::kQ8_0, 3, 64), 3u * 2 * 34);
  EXPECT_EQ(weight_bytes(WeightType::kQ4_0, 3, 64), 3u * 2 * 18);
}

// Packing on a pool (model loading) writes exactly the bytes of the one-thread packing,
// padding rows and alignment tails included: 1000 rows = 63 panels (the last one partial) in
// 8 tasks. So does packing into an arena, whose blocks come one after the other (a second
// matrix is packed first so the block under test does not start a reservation).
TEST(MatmulPacking, PoolAndArenaPackingAreByteIdentical) {
  ThreadPool pool(3, /*min_parallel_ns=*/0);
  HugePageArena arena;
  for (WeightType t : kAllTypes) {
    for (int64_t k : {64, 96}) {
      const TestWeights w = make_weights(t, 1000, k, 11);
      const TestWeights other = make_weights(t, 17, k, 12);
      const PackedMatrix one = pack_matrix(w.view());
      const PackedMatrix many = pack_matrix(w.view(), pool);
      const PackedMatrix before = pack_matrix(other.view(), nullptr, &arena);
      const PackedMatrix in_arena = pack_matrix(w.view(), &pool, &arena);
      const PackedMatrix serial_in_arena = pack_matrix(w.view(), nullptr, &arena);
      for (const PackedMatrix* m : {&many, &in_arena, &serial_in_arena}) {
        ASSERT_EQ(one.bytes(), m->bytes());
        EXPECT_EQ(std::memcmp(one.packed_data(), m->packed_data(), one.bytes()), 0)
            << weight_type_name(t) << " k=" << k;
      }
      EXPECT_EQ(in_arena.packed_data(), before.packed_data() + before.bytes());
    }
  }
}

// An arena whose address space is refused (2^62 bytes a reservation here; strict overcommit
// accounting elsewhere) leaves packing to buffers of their own: the same bytes, no error.
TEST(MatmulPacking, ARefusedArenaFallsBackToOwnBuffers) {
  HugePageArena refused(size_t{1} << 62);
  ASSERT_EQ(refused.allocate(64).data, nullptr);
  const TestWeights w = make_weights(WeightType::kQ4_0, 40, 64, 13);
  const PackedMatrix one = pack_matrix(w.view());
  const PackedMatrix fallback = pack_matrix(w.view(), nullptr, &refused);
  ASSERT_EQ(one.bytes(), fallback.bytes());
  EXPECT_EQ(std::memcmp(one.packed_data(), fallback.packed_data(), one.bytes()), 0);
}

// Every packed byte where matmul_kernels.h says it goes, on each ISA's packing: written from
// the layout's definition, not from the kernels. Full and partial panels, K that is and is
// not a multiple of the kernels' 8- and 16-value tiles, and 1-3, 8, 9 and 17 quantisation
// blocks (the AVX2 packing transposes the scales of 8 blocks at a time, then does the rest
// one by one).
TEST(MatmulPacking, LayoutFollowsTheDefinition) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    if (isa == Isa::kAvx2 && !cpu_has_avx2()) continue;
    IsaScope scope(isa);
    for (WeightType t : kAllTypes) {
      const bool q = quantised(t);
      const std::vector<int64_t> ks = q ? std::vector<int64_t>{32, 64, 96, 256, 288, 544}
                                        : std::vector<int64_t>{1, 7, 8, 9, 16, 17, 33, 64};
      for (int64_t n : {1, 15, 16, 17, 33, 48}) {
        for (int64_t k : ks) {
          SCOPED_TRACE(::testing::Message()
                       << isa_name(isa) << " " << weight_type_name(t) << " n=" << n << " k=" << k);
          const TestWeights w = make_weights(t, n, k, 19 + static_cast<uint64_t>(n * k));
          const PackedMatrix p = pack_matrix(w.view());
          const PackedMatrix::Impl& im = p.impl();
          const size_t raw = detail::panel_bytes(static_cast<detail::PanelType>(t), k);
          const int64_t nb = k / detail::kQBlock;
          std::vector<uint8_t> want(im.bytes, 0);
          for (int64_t row = 0; row < n; ++row) {
            uint8_t* panel = want.data() + static_cast<size_t>(row / 16) * im.panel_stride;
            const int64_t r = row % 16;
            if (!q) {
              const size_t vb = t == WeightType::kF32 ? 4 : 2;
              for (int64_t i = 0; i < k; ++i)
                std::memcpy(panel + (i * 16 + r) * vb, w.data.data() + (row * k + i) * vb, vb);
              continue;
            }
            const size_t code_bytes = t == WeightType::kQ8_0 ? 32 : 16;
            const size_t block_bytes =
                t == WeightType::kQ8_0 ? detail::kQ8BlockBytes : detail::kQ4BlockBytes;
            for (int64_t b = 0; b < nb; ++b) {
              uint8_t* blk = panel + b * block_bytes;
              std::memcpy(blk + 2 * r, &w.scales[row * nb + b], 2);
              const uint8_t* codes = w.data.data() + (row * nb + b) * code_bytes;
              for (size_t g = 0; g < code_bytes / 4; ++g)
                std::memcpy(blk + detail::kQScaleBytes + (g * 16 + r) * 4, codes + 4 * g, 4);
            }
          }
          ASSERT_GE(im.panel_stride, raw);
          for (size_t i = 0; i < im.bytes; ++i)
            ASSERT_EQ(im.data[i], want[i]) << "byte " << i << " (panel " << i / im.panel_stride
                                           << ", offset " << i % im.panel_stride << ")";
        }
      }
    }
  }
}

// The AVX2 packing streams whole lines into 32-byte-aligned panels (the only kind pack_matrix
// makes) and writes with ordinary stores anywhere else: the same bytes either way, full panels
// with and without a K tail.
TEST(MatmulPacking, Avx2PackingIsTheSameAtAnyDestinationAlignment) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  for (WeightType t : kAllTypes) {
    const bool q = quantised(t);
    for (int64_t k : q ? std::vector<int64_t>{32, 288} : std::vector<int64_t>{24, 289}) {
      SCOPED_TRACE(::testing::Message() << weight_type_name(t) << " k=" << k);
      const TestWeights w = make_weights(t, 16, k, 31 + static_cast<uint64_t>(k));
      const size_t row_bytes = w.data.size() / 16;
      const uint8_t* rows[16];
      for (int r = 0; r < 16; ++r) rows[r] = w.data.data() + r * row_bytes;
      IsaScope scope(Isa::kAvx2);
      const detail::PackPanelFn pack = pack_panel_fn(t);
      const size_t bytes = detail::panel_bytes(static_cast<detail::PanelType>(t), k);
      std::vector<uint8_t> a(bytes + 64), b(bytes + 64);
      uint8_t* aligned = a.data() + (64 - reinterpret_cast<uintptr_t>(a.data()) % 64) % 64;
      uint8_t* off = b.data() + (64 - reinterpret_cast<uintptr_t>(b.data()) % 64) % 64 + 16;
      pack(rows, 16, q ? w.scales.data() : nullptr, k, aligned);
      pack(rows, 16, q ? w.scales.data() : nullptr, k, off);
      EXPECT_EQ(std::memcmp(aligned, off, bytes), 0);
    }
  }
}

// Packed bytes kept elsewhere (the pack cache's file) and adopted in place compute exactly
// what the matrix they were packed as does, on both paths; the owner is held until the
// adopted matrix goes.
TEST(MatmulPacking, AdoptedBytesComputeTheSame) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  for (WeightType t : kAllTypes) {
    const TestWeights w = make_weights(t, 45, 96, 21);
    const PackedMatrix packed = pack_matrix(w.view());
    auto kept = std::make_shared<std::vector<uint8_t>>(packed.bytes() + 64);
    uint8_t* at = kept->data() + (64 - reinterpret_cast<uintptr_t>(kept->data()) % 64) % 64;
    std::memcpy(at, packed.packed_data(), packed.bytes());
    std::weak_ptr<std::vector<uint8_t>> watch = kept;
    {
      const PackedMatrix adopted = adopt_packed_matrix(t, 45, 96, at, packed.bytes(), kept);
      kept.reset();
      EXPECT_FALSE(watch.expired());
      EXPECT_EQ(adopted.packed_data(), at);
      for (int64_t m : {1, 20}) {
        const std::vector<float> a = random_floats(static_cast<size_t>(m * 96), 22);
        std::vector<float> c1(static_cast<size_t>(m * 45)), c2(c1.size());
        matmul(a.data(), 96, m, packed, c1.data(), 45, pool);
        matmul(a.data(), 96, m, adopted, c2.data(), 45, pool);
        EXPECT_EQ(std::memcmp(c1.data(), c2.data(), c1.size() * 4), 0) << weight_type_name(t);
      }
    }
    EXPECT_TRUE(watch.expired());
  }
}

TEST(MatmulPacking, AdoptRejectsBytesThatDoNotFit) {
  const TestWeights w = make_weights(WeightType::kQ8_0, 45, 96, 23);
  const PackedMatrix packed = pack_matrix(w.view());
  const uint8_t* p = packed.packed_data();
  const size_t b = packed.bytes();
  EXPECT_NO_THROW(adopt_packed_matrix(WeightType::kQ8_0, 45, 96, p, b, nullptr));
  EXPECT_THROW(adopt_packed_matrix(WeightType::kQ8_0, 45, 96, p, b - 64, nullptr), Error);
  EXPECT_THROW(adopt_packed_matrix(WeightType::kQ8_0, 45, 96, p + 4, b, nullptr), Error);
  EXPECT_THROW(adopt_packed_matrix(WeightType::kQ8_0, 45, 100, p, b, nullptr), Error);  // k % 32
  EXPECT_THROW(adopt_packed_matrix(WeightType::kQ8_0, 0, 96, p, b, nullptr), Error);
  EXPECT_THROW(adopt_packed_matrix(WeightType::kQ8_0, 45, 96, nullptr, b, nullptr), Error);
  EXPECT_THROW(adopt_packed_matrix(WeightType::kF32, 45, 96, p, b, nullptr), Error);  // size
}

// The digest that keys kept packed bytes: the same within a build, and not trivially constant.
TEST(MatmulPacking, LayoutDigestIsStable) {
  EXPECT_EQ(packed_layout_digest(), packed_layout_digest());
  EXPECT_NE(packed_layout_digest(), 0u);
}

// The GEMM's prefetch plan: after sub-panel (p, k0) the first row tiles prefetch the next
// panel's same k block, or after the last panel of [p0, p1) the first one's next k block,
// slices of kc/4 · lines lines that together cover exactly that sub-panel in its storage type;
// none after the last k block. Lines per 4 k is the least of 1, 2, 4 with which the block's
// row tiles cover it. A hint only, but a wrong plan would fetch the wrong lines silently.
TEST(MatmulPacking, NextWeightsCoverTheNextSubPanel) {
  for (WeightType t : kAllTypes) {
    const TestWeights w = make_weights(t, 64, 800, 5);  // 4 panels; k blocks 512 + 288
    const PackedMatrix packed = pack_matrix(w.view());
    const PackedMatrix::Impl& m = packed.impl();
    const auto type = static_cast<detail::PanelType>(t);
    for (int64_t row_tiles : {1, 2, 3, 4, 32}) {
      SCOPED_TRACE(::testing::Message()
                   << weight_type_name(t) << ", " << row_tiles << " row tiles");
      const auto covers = [&](const NextWeights& nw, int64_t panel, int64_t k0, int64_t kc,
                              int64_t next_kc) {
        EXPECT_EQ(nw.at, m.panel(panel) + detail::panel_bytes(type, k0));
        const auto bytes = static_cast<int64_t>(detail::panel_bytes(type, next_kc));
        const int64_t lines = (bytes + 63) / 64, passes = kc / 4;
        ASSERT_TRUE(nw.lines == 1 || nw.lines == 2 || nw.lines == 4) << nw.lines;
        if (nw.lines < 4) EXPECT_GE(nw.lines * passes * row_tiles, lines);
        if (nw.lines > 1) EXPECT_LT(nw.lines / 2 * passes * row_tiles, lines);
        EXPECT_EQ(nw.slice_bytes, passes * 64 * nw.lines);
        EXPECT_GE(nw.tiles * nw.slice_bytes, bytes);
        EXPECT_LT((nw.tiles - 1) * nw.slice_bytes, bytes);
        if (nw.lines < 4) EXPECT_LE(nw.tiles, row_tiles);
        EXPECT_EQ(nw.slice(0), nw.at);
        EXPECT_EQ(nw.slice(nw.tiles), nullptr);
      };
      covers(next_weights(m, 1, 1, 3, 0, 512, 512, row_tiles), 2, 0, 512, 512);  // next panel
      covers(next_weights(m, 2, 1, 3, 0, 512, 512, row_tiles), 1, 512, 512,
             288);  // wraps to the next k block
      covers(next_weights(m, 0, 0, 4, 512, 288, 512, row_tiles), 1, 512, 288, 288);
      // Nothing after the end; kc < 4: no slices.
      EXPECT_EQ(next_weights(m, 3, 0, 4, 512, 288, 512, row_tiles).slice(0), nullptr);
      EXPECT_EQ(next_weights(m, 0, 0, 4, 0, 3, 512, row_tiles).slice(0), nullptr);
    }
  }
}

// The row tiles of a block: six rows each, but no tile of 1 or 2 rows from 4 rows up, and 3
// rows only as the last of 7 (4 + 3); they cover the block in order, and gemm_row_tiles
// counts them.
TEST(MatmulPacking, RowTilesAvoidLatencyBoundShortTiles) {
  for (int64_t rows = 1; rows <= 200; ++rows) {
    std::vector<int> heights;
    for (int64_t left = rows; left > 0; left -= heights.back())
      heights.push_back(detail::gemm_tile_rows(left));
    SCOPED_TRACE(::testing::Message() << rows << " rows");
    int64_t sum = 0;
    for (size_t i = 0; i < heights.size(); ++i) {
      const int h = heights[i];
      sum += h;
      EXPECT_GE(h, 1);
      EXPECT_LE(h, detail::kGemmMr);
      if (rows >= 4 && h < 4) {
        EXPECT_EQ(h, 3);
        EXPECT_EQ(i + 1, heights.size());
        EXPECT_EQ(rows % detail::kGemmMr, 1);
      }
      if (i + 2 < heights.size()) EXPECT_EQ(h, detail::kGemmMr);  // only the last two differ
    }
    EXPECT_EQ(sum, rows);
    EXPECT_EQ(detail::gemm_row_tiles(rows), static_cast<int64_t>(heights.size()));
    if (rows % detail::kGemmMr == 0)
      EXPECT_EQ(heights.size(), static_cast<size_t>(rows / detail::kGemmMr));
  }
}

}  // namespace
}  // namespace flamingo::kernels
