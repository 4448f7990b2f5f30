// RoPE on every ISA path: against a double-precision rotation by the fp32 angles HF uses
// (NMSE ≤ 1e-13), and against outputs PyTorch produced (tests/data/kernels/rope_torch.json,
// made by gen_rope.py next to it): max abs error ≤ 2e-6 for inputs in [−2, 2].
#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "support/isa_scope.h"
#include "support/test_util.h"
#include "util/check.h"

namespace flamingo {
namespace {

using kernels::Isa;
using kernels::RopeStyle;

std::vector<float> rope_ref(const std::vector<float>& x, int64_t n_tokens, int64_t stride,
                            int n_heads, int head_dim, const std::vector<int64_t>& pos, float theta,
                            RopeStyle style) {
  std::vector<float> y = x;
  const int half = head_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < n_heads; ++h)
      for (int i = 0; i < half; ++i) {
        const float inv =
            1.f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
        const double angle = static_cast<float>(pos[t]) * inv;
        const int64_t base = t * stride + int64_t{h} * head_dim;
        const int64_t ia = style == RopeStyle::kInterleaved ? base + 2 * i : base + i;
        const int64_t ib = style == RopeStyle::kInterleaved ? base + 2 * i + 1 : base + half + i;
        const double a = x[ia], b = x[ib];
        y[ia] = static_cast<float>(a * std::cos(angle) - b * std::sin(angle));
        y[ib] = static_cast<float>(b * std::cos(angle) + a * std::sin(angle));
      }
  return y;
}

TEST(Rope, MatchesReferenceOnEdgeAndModelShapes) {
  struct Shape {
    int n_heads, head_dim;
  };
  std::vector<Shape> shapes;
  for (int64_t d : testing::edge_sizes())
    if (d % 2 == 0) shapes.push_back({3, static_cast<int>(d)});
  shapes.push_back({32, 64});   // TinyLlama-style heads
  shapes.push_back({32, 128});  // LLaMA-7B
  shapes.push_back({2, 256});
  testing::for_each_isa([&](Isa) {
    for (const auto& s : shapes)
      for (RopeStyle style : {RopeStyle::kRotateHalf, RopeStyle::kInterleaved}) {
        const int64_t n_tokens = 5, stride = int64_t{s.n_heads} * s.head_dim + 3;
        const std::vector<int64_t> pos{0, 1, 17, 2047, 65535};
        const auto x =
            testing::random_floats(static_cast<size_t>(n_tokens * stride), s.head_dim, -30.f, 30.f);
        testing::GuardedBuffer y(x.size());
        std::copy(x.begin(), x.end(), y.data());
        kernels::rope(y.data(), n_tokens, stride, s.n_heads, s.head_dim, pos.data(), 10000.f,
                      style);
        ASSERT_TRUE(y.intact());
        const auto ref = rope_ref(x, n_tokens, stride, s.n_heads, s.head_dim, pos, 10000.f, style);
        EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), 1e-13)
            << "heads=" << s.n_heads << " dim=" << s.head_dim;
        // The padding after the heads is untouched.
        for (int64_t t = 0; t < n_tokens; ++t)
          for (int64_t c = int64_t{s.n_heads} * s.head_dim; c < stride; ++c)
            ASSERT_EQ(y.data()[t * stride + c], x[t * stride + c]);
      }
  });
}

TEST(Rope, MatchesPyTorch) {
  const auto j = nlohmann::json::parse(
      testing::read_file(testing::test_data_dir() / "kernels" / "rope_torch.json"));
  const int head_dim = j["head_dim"], n_heads = j["n_heads"];
  const auto pos = j["positions"].get<std::vector<int64_t>>();
  testing::for_each_isa([&](Isa) {
    for (const auto& c : j["cases"])
      for (RopeStyle style : {RopeStyle::kRotateHalf, RopeStyle::kInterleaved}) {
        auto x = c["x"].get<std::vector<float>>();
        const auto expect = c[style == RopeStyle::kRotateHalf ? "rotate_half" : "interleaved"]
                                .get<std::vector<float>>();
        kernels::rope(x.data(), static_cast<int64_t>(pos.size()), int64_t{n_heads} * head_dim,
                      n_heads, head_dim, pos.data(), c["theta"].get<float>(), style);
        for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], expect[i], 2e-6) << "element " << i;
      }
  });
}

TEST(Rope, RejectsBadArguments) {
  std::vector<float> x(64);
  const int64_t pos = 0, neg = -1;
  EXPECT_THROW(kernels::rope(x.data(), 1, 64, 1, 7, &pos, 10000.f, RopeStyle::kRotateHalf), Error);
  EXPECT_THROW(kernels::rope(x.data(), 1, 32, 1, 64, &pos, 10000.f, RopeStyle::kRotateHalf), Error);
  EXPECT_THROW(kernels::rope(x.data(), 1, 64, 1, 64, &neg, 10000.f, RopeStyle::kRotateHalf), Error);
  EXPECT_THROW(kernels::rope(x.data(), 1, 64, 1, 64, &pos, 0.f, RopeStyle::kRotateHalf), Error);
}

}  // namespace
}  // namespace flamingo
