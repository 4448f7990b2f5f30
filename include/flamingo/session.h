// Generation and scoring.
//
// A Session holds the per-request state of one conversation with a model: the KV cache, the
// encoded media and their cached cross-attention keys/values, the RNG. A Session is used by
// one thread at a time; create one Session per thread to serve requests concurrently from a
// shared Model. Each generate() or score() call gives bitwise the result a new Session would;
// it only skips work done before:
//   - media encoded by earlier calls are reused when the same Image objects come again (the
//     64 most recently used media items are kept);
//   - the keys and values of the previous call's prompt are kept, and a prompt that starts
//     the same way (same tokens, same Image objects for its <image> markers) runs only from
//     where they differ. A few-shot prompt with fixed examples then costs, after the first
//     call, only its query. At least 8 tokens always run (fewer would be computed another
//     way and change the last bits); prompts shorter than that are never kept.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flamingo/model.h"
#include "flamingo/prompt.h"

namespace flamingo {

struct Timings {
  double image_preprocess_ms = 0;  // decode is the caller's (Image::from_*); resize + normalise
  double vision_ms = 0;            // NFNet encoder
  double resampler_ms = 0;
  double prefill_ms = 0;
  int prefill_tokens = 0;        // prompt tokens run through the model
  int prompt_tokens_reused = 0;  // prompt tokens whose keys/values the previous call left
  double decode_ms = 0;
  int decode_tokens = 0;
  double first_token_ms = 0;   // from the start of the call to the first generated token
  int media_encoded = 0;       // media items run through vision encoder + resampler
  int media_reused = 0;        // media items found in the session's cache
  int visual_kv_computed = 0;  // (media item, gated block) pairs whose K/V were computed
};

struct TokenInfo {
  int32_t id = 0;
  std::string piece;  // the token's text as sentencepiece spells it (▁ for spaces)
  float logprob = 0;  // log-probability under the model's unmodified distribution
};

enum class StopReason {
  kMaxTokens,    // max_new_tokens reached
  kEndOfChunk,   // generated <|endofchunk|>
  kEos,          // generated the EOS token
  kStopString,   // the text ended with one of stop_strings
  kCallback,     // on_token returned false
  kContextFull,  // the model's max_seq_len was reached
};
const char* stop_reason_name(StopReason reason);

struct GenerateOptions {
  int max_new_tokens = 32;
  float temperature = 0.f;     // 0 = greedy
  int top_k = 0;               // 0 = off
  float top_p = 1.f;           // 1 = off
  float min_p = 0.f;           // 0 = off
  float repeat_penalty = 1.f;  // 1 = off (CTRL-style: positive logits ÷, negative ×)
  int repeat_last_n = 64;      // tokens the penalty looks back over (prompt included)
  int num_beams = 1;           // >1: beam search (deterministic; sampling options ignored)
  float length_penalty = 1.f;  // beam score = sum logprob / length^length_penalty
  uint64_t seed = 0;
  bool stop_at_endofchunk = true;
  bool stop_at_eos = true;
  std::vector<std::string> stop_strings;  // stop when the generated text ends with one
  // Called for every generated token with the newly completed UTF-8 text (possibly empty while
  // a multi-byte character is incomplete). Return false to stop. Not called in beam search.
  std::function<bool(const TokenInfo& token, const std::string& text)> on_token;
};

struct GenerateResult {
  std::string text;
  std::vector<TokenInfo> tokens;
  StopReason stop_reason = StopReason::kMaxTokens;
  Timings timings;
};

struct ScoreResult {
  std::string continuation;
  double logprob = 0;  // sum of log-probabilities of the continuation's tokens
  int tokens = 0;
};

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  GenerateResult generate(const Prompt& prompt, const GenerateOptions& options = {});

  // Log-likelihood of each continuation given the prompt, in the order given. The prompt is
  // processed once; its KV cache and visual K/V are shared by all continuations.
  std::vector<ScoreResult> score(const Prompt& prompt,
                                 const std::vector<std::string>& continuations);

  // Timings of the last generate() or score() call.
  const Timings& timings() const;

  // Forgets the media cached by earlier calls and the kept prompt (frees their memory).
  void clear_media_cache();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace flamingo
