// Attention on every ISA path against a naive double-precision softmax attention that
// materialises the full score matrix. Threshold NMSE ≤ 1e-11 (fp32 rounding of dot products
// and exponentials; the brief allows 1e-7); 1e-9 when scores reach ±300, where the rounding of
// a score itself moves its exponential by ~1e-5 relative.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "support/isa_scope.h"
#include "support/test_util.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace flamingo {
namespace {

using kernels::AttentionArgs;
using kernels::Isa;

struct Problem {
  int64_t n_q = 1, n_kv = 1;
  int n_heads = 1, n_kv_heads = 1, head_dim = 8;
  bool causal = false;
  int64_t q_pos0 = 0;
  float magnitude = 1.f;
  int64_t pad = 0;  // extra floats at the end of every row
};

struct Data {
  std::vector<float> q, k, v;
  AttentionArgs args;
};

Data make(const Problem& p, uint64_t seed) {
  Data d;
  auto& a = d.args;
  a.n_q = p.n_q;
  a.n_kv = p.n_kv;
  a.n_heads = p.n_heads;
  a.n_kv_heads = p.n_kv_heads;
  a.head_dim = p.head_dim;
  a.q_stride = int64_t{p.n_heads} * p.head_dim + p.pad;
  a.kv_stride = int64_t{p.n_kv_heads} * p.head_dim + p.pad;
  a.out_stride = a.q_stride + 5;
  a.scale = 1.f / std::sqrt(static_cast<float>(p.head_dim));
  a.causal = p.causal;
  a.q_pos0 = p.q_pos0;
  d.q = testing::random_floats(static_cast<size_t>(p.n_q * a.q_stride), seed, -p.magnitude,
                               p.magnitude);
  d.k = testing::random_floats(static_cast<size_t>(p.n_kv * a.kv_stride), seed + 1, -p.magnitude,
                               p.magnitude);
  d.v = testing::random_floats(static_cast<size_t>(p.n_kv * a.kv_stride), seed + 2, -1.f, 1.f);
  a.q = d.q.data();
  a.k = d.k.data();
  a.v = d.v.data();
  return d;
}

std::vector<float> reference(const AttentionArgs& a) {
  std::vector<float> out(static_cast<size_t>(a.n_q * a.out_stride), 0.f);
  const int group = a.n_heads / a.n_kv_heads;
  std::vector<double> s(static_cast<size_t>(a.n_kv));
  for (int64_t i = 0; i < a.n_q; ++i)
    for (int h = 0; h < a.n_heads; ++h) {
      const float* q = a.q + i * a.q_stride + int64_t{h} * a.head_dim;
      const int64_t kvh = h / group;
      const int64_t visible = a.causal ? a.q_pos0 + i + 1 : a.n_kv;
      double mx = -INFINITY;
      for (int64_t j = 0; j < visible; ++j) {
        const float* k = a.k + j * a.kv_stride + kvh * a.head_dim;
        double dot = 0;
        for (int d = 0; d < a.head_dim; ++d) dot += double{q[d]} * k[d];
        s[j] = dot * a.scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < visible; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int d = 0; d < a.head_dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < visible; ++j)
          acc += s[j] * a.v[j * a.kv_stride + kvh * a.head_dim + d];
        out[i * a.out_stride + int64_t{h} * a.head_dim + d] = static_cast<float>(acc / sum);
      }
    }
  return out;
}

// Runs the kernel into a guarded buffer and compares the head columns with the reference.
std::vector<float> run_and_check(Data& d, ThreadPool& pool, double limit, const std::string& what) {
  auto& a = d.args;
  testing::GuardedBuffer out(static_cast<size_t>(a.n_q * a.out_stride), 0.f);
  a.out = out.data();
  kernels::attention(a, pool);
  EXPECT_TRUE(out.intact()) << what;
  const auto ref = reference(a);
  std::vector<float> got(out.data(), out.data() + out.size());
  EXPECT_LE(testing::nmse(got.data(), ref.data(), ref.size()), limit) << what;
  // Columns past the heads (row padding) are never written.
  const int64_t width = int64_t{a.n_heads} * a.head_dim;
  for (int64_t i = 0; i < a.n_q; ++i)
    for (int64_t c = width; c < a.out_stride; ++c)
      EXPECT_EQ(got[i * a.out_stride + c], 0.f) << what;
  a.out = nullptr;
  return got;
}

std::string describe(const Problem& p) {
  return str_cat("n_q=", p.n_q, " n_kv=", p.n_kv, " heads=", p.n_heads, "/", p.n_kv_heads,
                 " dh=", p.head_dim, p.causal ? " causal q_pos0=" : " full",
                 p.causal ? std::to_string(p.q_pos0) : "", " mag=", p.magnitude);
}

TEST(Attention, HeadDims) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  testing::for_each_isa([&](Isa) {
    for (int64_t dh : testing::edge_sizes())
      for (bool causal : {false, true}) {
        Problem p{.n_q = 5,
                  .n_kv = 70,
                  .n_heads = 4,
                  .n_kv_heads = 2,
                  .head_dim = static_cast<int>(dh),
                  .causal = causal,
                  .q_pos0 = causal ? 65 : 0,
                  .pad = 3};
        Data d = make(p, 10 + dh);
        run_and_check(d, pool, 1e-11, describe(p));
      }
    Problem big{.n_q = 3, .n_kv = 129, .n_heads = 2, .n_kv_heads = 1, .head_dim = 256};
    Data d = make(big, 5);
    run_and_check(d, pool, 1e-11, describe(big));
  });
}

TEST(Attention, ModelShapes) {
  ThreadPool pool(2, /*min_parallel_ns=*/0);
  std::vector<Problem> problems = {
      // LLaMA-style decode over a KV cache: GQA 32/4, dh 64, long enough to stream many blocks.
      {.n_q = 1,
       .n_kv = 1,
       .n_heads = 32,
       .n_kv_heads = 4,
       .head_dim = 64,
       .causal = true,
       .q_pos0 = 0},
      {.n_q = 1,
       .n_kv = 513,
       .n_heads = 32,
       .n_kv_heads = 4,
       .head_dim = 64,
       .causal = true,
       .q_pos0 = 512},
      {.n_q = 1,
       .n_kv = 2000,
       .n_heads = 32,
       .n_kv_heads = 4,
       .head_dim = 64,
       .causal = true,
       .q_pos0 = 1999},
      // Prefill from scratch and continuing after cached tokens (offset positions).
      {.n_q = 67,
       .n_kv = 67,
       .n_heads = 8,
       .n_kv_heads = 2,
       .head_dim = 64,
       .causal = true,
       .q_pos0 = 0},
      {.n_q = 33,
       .n_kv = 190,
       .n_heads = 8,
       .n_kv_heads = 8,
       .head_dim = 128,
       .causal = true,
       .q_pos0 = 157},
      // Causal with spare cache entries past the last query: they must be ignored.
      {.n_q = 9,
       .n_kv = 300,
       .n_heads = 4,
       .n_kv_heads = 1,
       .head_dim = 64,
       .causal = true,
       .q_pos0 = 100},
      // Gated cross-attention: text queries to one image's 64 visual tokens.
      {.n_q = 17, .n_kv = 64, .n_heads = 8, .n_kv_heads = 8, .head_dim = 64},
      // Resampler: 64 latents to (v + 64) keys.
      {.n_q = 64, .n_kv = 128, .n_heads = 8, .n_kv_heads = 8, .head_dim = 64},
      // Long non-causal and sharp softmax.
      {.n_q = 2, .n_kv = 1999, .n_heads = 2, .n_kv_heads = 2, .head_dim = 32},
  };
  testing::for_each_isa([&](Isa) {
    for (const auto& p : problems) {
      Data d = make(p, static_cast<uint64_t>(p.n_kv * 31 + p.n_q));
      run_and_check(d, pool, 1e-11, describe(p));
    }
    for (float mag : {4.f, 12.f}) {  // scores up to ~±300 with dh 64
      Problem p{.n_q = 20,
                .n_kv = 300,
                .n_heads = 4,
                .n_kv_heads = 2,
                .head_dim = 64,
                .causal = true,
                .q_pos0 = 280,
                .magnitude = mag};
      Data d = make(p, 99);
      run_and_check(d, pool, 1e-9, describe(p));
    }
  });
}

TEST(Attention, BitwiseIdenticalForAnyThreadCount) {
  testing::for_each_isa([](Isa) {
    Problem p{.n_q = 150,
              .n_kv = 450,
              .n_heads = 8,
              .n_kv_heads = 2,
              .head_dim = 64,
              .causal = true,
              .q_pos0 = 300};
    Data d = make(p, 3);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> out(static_cast<size_t>(p.n_q * d.args.out_stride));
      d.args.out = out.data();
      kernels::attention(d.args, pool);
      if (first.empty())
        first = out;
      else
        EXPECT_EQ(0, std::memcmp(first.data(), out.data(), sizeof(float) * out.size()))
            << threads << " threads";
    }
  });
}

// A causal query's output depends on its own row and the keys before it, not on which other
// queries share the call: the queries of a prefill run in pieces (a session that keeps a
// prompt's keys and values runs only the new part) get the bits of one whole call. Also for
// the one-query call of decode, and for the non-causal calls of cross-attention.
TEST(Attention, AQueryGetsTheSameBitsInAnyBatch) {
  testing::for_each_isa([](Isa) {
    ThreadPool pool(2, /*min_parallel_ns=*/0);
    for (const bool causal : {true, false}) {
      const Problem p{.n_q = 150,
                      .n_kv = causal ? 170 : 64,
                      .n_heads = 8,
                      .n_kv_heads = causal ? 2 : 8,
                      .head_dim = 64,
                      .causal = causal,
                      .q_pos0 = causal ? 20 : 0};
      Data d = make(p, 11);
      std::vector<float> whole(static_cast<size_t>(p.n_q * d.args.out_stride));
      d.args.out = whole.data();
      kernels::attention(d.args, pool);
      struct Slice {
        int64_t q0, n;
      };
      for (const Slice sl :
           {Slice{0, 1}, Slice{0, 8}, Slice{7, 57}, Slice{64, 86}, Slice{149, 1}, Slice{1, 149}}) {
        AttentionArgs a = d.args;
        a.q = d.q.data() + sl.q0 * a.q_stride;
        a.n_q = sl.n;
        if (causal) {
          a.q_pos0 = p.q_pos0 + sl.q0;
          a.n_kv = a.q_pos0 + sl.n;  // only the keys written so far, as in a KV cache
        }
        std::vector<float> part(static_cast<size_t>(sl.n * a.out_stride));
        a.out = part.data();
        kernels::attention(a, pool);
        EXPECT_EQ(0, std::memcmp(part.data(), whole.data() + sl.q0 * a.out_stride,
                                 sizeof(float) * part.size()))
            << (causal ? "causal" : "full") << " queries [" << sl.q0 << ", " << sl.q0 + sl.n << ")";
      }
    }
  });
}

TEST(Attention, ScalarAndAvx2Agree) {
  if (!kernels::cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  ThreadPool pool(1);
  Problem p{.n_q = 12,
            .n_kv = 200,
            .n_heads = 8,
            .n_kv_heads = 4,
            .head_dim = 64,
            .causal = true,
            .q_pos0 = 188};
  Data d = make(p, 8);
  std::vector<float> a(static_cast<size_t>(p.n_q * d.args.out_stride)), b(a.size());
  d.args.out = a.data();
  {
    testing::ScopedIsa s(Isa::kScalar);
    kernels::attention(d.args, pool);
  }
  d.args.out = b.data();
  {
    testing::ScopedIsa s(Isa::kAvx2);
    kernels::attention(d.args, pool);
  }
  EXPECT_LE(testing::nmse(b.data(), a.data(), a.size()), 1e-12);
}

TEST(Attention, RejectsBadArguments) {
  ThreadPool pool(1);
  Problem p{.n_q = 4,
            .n_kv = 10,
            .n_heads = 4,
            .n_kv_heads = 2,
            .head_dim = 16,
            .causal = true,
            .q_pos0 = 6};
  Data d = make(p, 1);
  std::vector<float> out(static_cast<size_t>(p.n_q * d.args.out_stride));
  d.args.out = out.data();
  EXPECT_NO_THROW(kernels::attention(d.args, pool));
  auto expect_bad = [&](auto mutate) {
    AttentionArgs a = d.args;
    mutate(a);
    EXPECT_THROW(kernels::attention(a, pool), Error);
  };
  expect_bad([](AttentionArgs& a) { a.q_pos0 = 7; });  // needs 11 keys
  expect_bad([](AttentionArgs& a) { a.q_pos0 = -1; });
  expect_bad([](AttentionArgs& a) { a.n_kv_heads = 3; });  // 4 % 3 != 0
  expect_bad([](AttentionArgs& a) { a.n_kv_heads = 0; });
  expect_bad([](AttentionArgs& a) { a.head_dim = 0; });
  expect_bad([](AttentionArgs& a) { a.q_stride = 63; });
  expect_bad([](AttentionArgs& a) { a.kv_stride = 31; });
  expect_bad([](AttentionArgs& a) { a.out_stride = 10; });
  expect_bad([](AttentionArgs& a) { a.n_kv = 0; });
  expect_bad([](AttentionArgs& a) { a.k = nullptr; });
  expect_bad([](AttentionArgs& a) { a.scale = NAN; });
  expect_bad([&](AttentionArgs& a) { a.out = d.k.data(); });  // output over the keys
}

}  // namespace
}  // namespace flamingo
