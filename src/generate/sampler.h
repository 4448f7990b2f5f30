// Turning logits into the next token: repetition penalty, temperature, top-k, top-p, min-p,
// and a seeded RNG whose sequence is the same on every platform (std distributions are not).
#pragma once

#include <cstdint>
#include <vector>

namespace flamingo::generate {

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits

 private:
  uint64_t s_[4] = {};
};

struct SamplerParams {
  float temperature = 0.f;  // <= 0: greedy
  int top_k = 0;
  float top_p = 1.f;
  float min_p = 0.f;
  float repeat_penalty = 1.f;
};

// CTRL-style penalty on every distinct token of `recent`: positive logits are divided by the
// penalty, negative ones multiplied (llama.cpp and HF do the same).
void apply_repeat_penalty(float* logits, int64_t vocab, const int32_t* recent, int64_t n,
                          float penalty);

// Index of the largest logit (the lowest index among equals).
int32_t argmax(const float* logits, int64_t vocab);

// Draws the next token from (already penalised and masked) logits.
int32_t sample(const float* logits, int64_t vocab, const SamplerParams& p, Rng& rng);

// log softmax of logits into out[vocab] (max-subtracted, double accumulation).
void log_softmax(const float* logits, int64_t vocab, float* out);

}  // namespace flamingo::generate
