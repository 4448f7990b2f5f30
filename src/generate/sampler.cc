#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace flamingo::generate {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

void apply_repeat_penalty(float* logits, int64_t vocab, const int32_t* recent, int64_t n,
                          float penalty) {
  if (penalty == 1.f || n <= 0) return;
  std::unordered_set<int32_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = recent[i];
    if (id < 0 || id >= vocab || !seen.insert(id).second) continue;
    float& l = logits[id];
    l = l > 0 ? l / penalty : l * penalty;
  }
}

int32_t argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t sample(const float* logits, int64_t vocab, const SamplerParams& p, Rng& rng) {
  if (p.temperature <= 0.f) return argmax(logits, vocab);
  // Candidates sorted by logit (ties by id, so the order is deterministic).
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  size_t n = idx.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    std::partial_sort(idx.begin(), idx.begin() + p.top_k, idx.end(), by_logit);
    n = static_cast<size_t>(p.top_k);
  } else {
    std::sort(idx.begin(), idx.end(), by_logit);
  }
  // Softmax at the temperature over the survivors of top-k.
  const double max_l = logits[idx[0]];
  std::vector<double> prob(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const float l = logits[idx[i]];
    prob[i] = std::isfinite(l) ? std::exp((l - max_l) / p.temperature) : 0.0;
    sum += prob[i];
  }
  for (double& q : prob) q /= sum;
  // min-p: drop tokens below min_p × the top probability.
  if (p.min_p > 0.f) {
    const double floor_p = p.min_p * prob[0];
    size_t keep = 1;
    while (keep < n && prob[keep] >= floor_p) ++keep;
    n = keep;
  }
  // top-p: the smallest prefix whose mass reaches top_p.
  if (p.top_p < 1.f) {
    double cum = 0;
    size_t keep = 0;
    while (keep < n) {
      cum += prob[keep++];
      if (cum >= p.top_p) break;
    }
    n = std::max<size_t>(keep, 1);
  }
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += prob[i];
  double r = rng.uniform() * mass;
  for (size_t i = 0; i < n; ++i) {
    r -= prob[i];
    if (r < 0) return idx[i];
  }
  return idx[n - 1];
}

void log_softmax(const float* logits, int64_t vocab, float* out) {
  float max_l = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) max_l = std::max(max_l, logits[i]);
  // Every logit -inf (all masked) has no distribution: leave them all -inf rather than NaN.
  if (!(max_l > -std::numeric_limits<float>::infinity())) {
    for (int64_t i = 0; i < vocab; ++i) out[i] = -std::numeric_limits<float>::infinity();
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_l);
  const double lse = max_l + std::log(sum);
  for (int64_t i = 0; i < vocab; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

}  // namespace flamingo::generate
