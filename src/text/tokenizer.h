// The tokenizer: a validated sentencepiece model plus the special (added) tokens of
// config.json, with the tokenisation contract the Python converter/training side follows.
//
// Encoding contract (docs/tokenizer.md has examples):
//  1. The text must be valid UTF-8 (sentencepiece's strict rules, src/text/utf8.h); otherwise
//     Error(kInvalidArgument) naming the byte offset. NUL bytes are ordinary characters.
//  2. With parse_special (the default), the text is split on the special strings
//     (config tokens.special: "<image>", "<|endofchunk|>", "<PAD>", ...) scanning left to
//     right and taking at each position the longest special string that starts there
//     (leftmost-longest; HF's "added tokens" split). Each match becomes its id. Nothing is
//     stripped around a match (HF ≥ 4.34 behaviour for added tokens; older transformers
//     stripped spaces around special tokens added as plain strings).
//     Without parse_special the whole text is one segment: "<image>" typed by a user is
//     then ordinary text, which is what untrusted input needs.
//  3. Each text segment between special tokens is encoded by sentencepiece on its own, so
//     each gets the model's normaliser treatment independently (HF slow LlamaTokenizer with
//     legacy=True): with add_dummy_prefix (LLaMA) "<image>Output:" encodes as
//     [<image>, "▁Output", ":"], i.e. a "▁" is prefixed to the segment after the marker too;
//     with remove_extra_whitespaces (not LLaMA) leading/trailing spaces of every segment go.
//     A segment that normalises to nothing contributes no ids.
//  4. With add_bos the BOS id comes first, before everything, even for an empty text.
// Every returned id lies in [0, vocab_size).
//
// Decoding mirrors SentencePieceProcessor::Decode (0.1.97) on the sentencepiece ids —
// control pieces are invisible, UNKNOWN gives trainer_spec.unk_surface, "▁" becomes a space,
// a run of byte pieces is decoded as UTF-8 with each undecodable byte giving U+FFFD, and the
// leading "▁" of the first visible piece is dropped only at the very start of the output —
// with special ids producing their strings (or nothing, with skip_special). Ids are checked
// against [0, vocab_size) before sentencepiece sees them: it aborts the process on bad ids.
//
// A Tokenizer is immutable after construction; concurrent use from many threads is safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/sentencepiece_model_check.h"

namespace flamingo::text {

// The tokens section of config.json plus the LM's vocabulary size.
struct TokenizerConfig {
  int64_t vocab_size = 0;                  // lm.vocab_size: rows of the embedding table
  std::map<std::string, int32_t> special;  // tokens.special
  int32_t bos = -1;                        // -1: the model has none
  int32_t eos = -1;
  int32_t image = -1;    // tokens.image: must be one of the special ids
  bool add_bos = false;  // tokens.add_bos: default for EncodeOptions
};

struct EncodeOptions {
  bool add_bos = false;
  bool parse_special = true;
};

struct DecodeOptions {
  bool skip_special = false;  // special ids produce no text instead of their strings
};

// A special-token match or a run of plain text inside a larger string.
struct TextSpan {
  size_t begin = 0, end = 0;  // byte range in the text
  int32_t special_id = -1;    // -1 for plain text
};

class Tokenizer {
 public:
  // Reads, validates and loads `path`. Error(kIo) if it is missing, not a regular file or
  // unreadable; Error(kResourceLimit) when over limits.max_file_bytes (checked before
  // reading); otherwise as from_bytes.
  static Tokenizer from_file(const std::filesystem::path& path, const TokenizerConfig& config,
                             const SentencepieceLimits& limits = {});
  // Validates (check_sentencepiece_model, check_vocabulary, config ids in range), then loads.
  // `name` labels error messages. Models with a denormaliser are Error(kUnsupported).
  static Tokenizer from_bytes(std::string bytes, std::string_view name,
                              const TokenizerConfig& config,
                              const SentencepieceLimits& limits = {});

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const;
  // encode() with the config's add_bos and special parsing on.
  std::vector<int32_t> encode(std::string_view text) const;

  // Step 2 alone: the leftmost-longest split of `text` on the special strings, in order,
  // covering the text exactly. Empty text gives no spans. Does not check UTF-8.
  std::vector<TextSpan> split_special(std::string_view text) const;
  // Step 3 alone: sentencepiece ids of one plain segment, appended to `out`. `offset` is the
  // segment's position in the caller's text, for the invalid-UTF-8 error message.
  void encode_plain(std::string_view segment, size_t offset, std::vector<int32_t>* out) const;

  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  // The piece string of a sentencepiece id or the string of a special id.
  // Error(kInvalidArgument) outside [0, vocab_size).
  std::string_view piece(int32_t id) const;
  bool is_special(int32_t id) const;
  // Id of a special string, or -1.
  int32_t special_id(std::string_view text) const;

  int64_t vocab_size() const { return config_.vocab_size; }
  int32_t piece_count() const { return info_.piece_count; }
  int32_t bos() const { return config_.bos; }
  int32_t eos() const { return config_.eos; }
  int32_t image() const { return config_.image; }
  bool add_bos() const { return config_.add_bos; }
  const TokenizerConfig& config() const { return config_; }
  const SentencepieceModelInfo& model_info() const { return info_; }

  // Throws Error(kInvalidArgument) unless 0 ≤ id < vocab_size.
  void check_id(int64_t id) const;

 private:
  struct Impl;
  Tokenizer(std::unique_ptr<Impl> impl, TokenizerConfig config, SentencepieceModelInfo info);

  friend class StreamDecoder;
  std::unique_ptr<Impl> impl_;
  TokenizerConfig config_;
  SentencepieceModelInfo info_;
};

// Incremental detokeniser for generation: feed ids one at a time and get back only text that
// is final — complete UTF-8 characters. Byte-fallback pieces (<0xE2><0x82><0xAC> = "€") are
// held back until their character is complete; bytes that cannot form a character come out
// as U+FFFD once that is certain (at the latest when a non-byte piece arrives or at flush()).
// The concatenation of all push() results and flush() equals Tokenizer::decode of the ids.
// Holds a reference to the tokenizer, which must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options = {});

  // Error(kInvalidArgument) for an id outside [0, vocab_size); the state is then unchanged.
  std::string push(int32_t id);
  std::string flush();
  // Forget everything: the next piece is at the start of the output again.
  void reset();
  // Bytes held back waiting for the rest of a character.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  void drain(bool run_ended, std::string* out);
  void emit(std::string_view s, std::string* out);

  const Tokenizer* tok_;
  DecodeOptions options_;
  std::string pending_;   // current run of byte-piece bytes not yet emitted
  bool at_start_ = true;  // sentencepiece's is_bos_ws
  bool bos_ws_seen_ = false;
  bool emitted_ = false;  // any text produced so far
};

}  // namespace flamingo::text
