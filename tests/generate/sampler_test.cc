#include "generate/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <vector>

namespace flamingo::generate {
namespace {

TEST(Sampler, GreedyPicksTheLowestIndexAmongEqualMaxima) {
  const std::vector<float> l = {0.f, 3.f, 1.f, 3.f};
  SamplerParams p;
  Rng rng(1);
  EXPECT_EQ(sample(l.data(), 4, p, rng), 1);
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> l = {1.f, 1.2f, 0.9f, 1.1f, 0.5f};
  SamplerParams p;
  p.temperature = 1.f;
  Rng a(42), b(42), c(43);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 50; ++i) {
    sa.push_back(sample(l.data(), 5, p, a));
    sb.push_back(sample(l.data(), 5, p, b));
    sc.push_back(sample(l.data(), 5, p, c));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  const std::vector<float> l = {0.f, std::log(3.f)};  // p = 0.25, 0.75
  SamplerParams p;
  p.temperature = 1.f;
  Rng rng(7);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += sample(l.data(), 2, p, rng);
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.015);
}

TEST(Sampler, TopKTopPAndMinPRestrictTheCandidates) {
  const std::vector<float> l = {5.f, 4.f, 3.f, 0.f, -1.f};
  Rng rng(3);
  SamplerParams k;
  k.temperature = 5.f;
  k.top_k = 2;
  SamplerParams pp;
  pp.temperature = 1.f;
  pp.top_p = 0.5f;  // the top token alone holds > 0.5 of the mass
  SamplerParams mp;
  mp.temperature = 1.f;
  mp.min_p = 0.3f;  // keeps tokens with p ≥ 0.3·p_max: ids 0 and 1 (e^-1 ≈ 0.37)
  std::map<int32_t, int> seen_k, seen_p, seen_m;
  for (int i = 0; i < 2000; ++i) {
    seen_k[sample(l.data(), 5, k, rng)]++;
    seen_p[sample(l.data(), 5, pp, rng)]++;
    seen_m[sample(l.data(), 5, mp, rng)]++;
  }
  EXPECT_EQ(seen_k.size(), 2u);
  EXPECT_TRUE(seen_k.count(0) && seen_k.count(1));
  EXPECT_EQ(seen_p.size(), 1u);
  EXPECT_EQ(seen_m.size(), 2u);
  EXPECT_FALSE(seen_m.count(2));
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegative) {
  std::vector<float> l = {2.f, -2.f, 1.f};
  const std::vector<int32_t> recent = {0, 1, 0, 77};  // 77 is out of range and ignored
  apply_repeat_penalty(l.data(), 3, recent.data(), 4, 2.f);
  EXPECT_FLOAT_EQ(l[0], 1.f);
  EXPECT_FLOAT_EQ(l[1], -4.f);
  EXPECT_FLOAT_EQ(l[2], 1.f);
}

TEST(Sampler, LogSoftmaxNormalises) {
  const std::vector<float> l = {1000.f, 1001.f, -5.f};
  std::vector<float> out(3);
  log_softmax(l.data(), 3, out.data());
  double sum = 0;
  for (float x : out) sum += std::exp(static_cast<double>(x));
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(out[1] - out[0], 1.0, 1e-5);
}

TEST(Sampler, LogSoftmaxOfAllMaskedLogitsIsAllMaskedNotNan) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> l = {-inf, -inf};
  std::vector<float> out(2, 0.f);
  log_softmax(l.data(), 2, out.data());
  EXPECT_EQ(out[0], -inf);
  EXPECT_EQ(out[1], -inf);
}

}  // namespace
}  // namespace flamingo::generate
