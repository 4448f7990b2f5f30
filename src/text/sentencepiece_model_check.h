// Validation of a sentencepiece .model file before sentencepiece parses it.
//
// Debian's libsentencepiece 0.1.97 is not safe on untrusted model files (reliability spec
// §3): a 120-byte model whose precompiled_charsmap trie points outside itself loads "OK" and
// then segfaults in Encode (CVE-2026-1260 class: the normaliser trusts the darts-clone
// double-array offsets, the value offsets into the normalised strings and the number of
// prefix matches, which it stores in a 32-entry stack array); a piece of ~100 KB overflows
// the 8 MiB stack at load (the trie builder recurses once per byte, ~75 bytes of stack per
// byte measured here, so a 256 KiB worker stack already dies at ~3.5 KB); and its internal
// CHECKs exit() the process. So we walk the protobuf wire format ourselves, with no protobuf
// library, and only hand sentencepiece bytes that passed.
//
// The walker accepts exactly what a real serializer writes for sentencepiece_model.proto
// (proto2, field numbers read from the descriptor Debian's python3-sentencepiece ships):
//   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
//                   4 self_test_data  5 denormalizer_spec; unknown fields are skipped.
//   SentencePiece   1 piece (string)  2 score (float)  3 type (enum, default NORMAL)
//   TrainerSpec     every known field must have its declared wire type; 3 model_type must be
//                   UNIGRAM/BPE/WORD/CHAR (0.1.97 silently maps unknown values to UNIGRAM).
//   NormalizerSpec  1 name  2 precompiled_charsmap  3 add_dummy_prefix  4 remove_extra_ws
//                   5 escape_whitespaces  6 normalization_rule_tsv
//   SelfTestData    1 samples {1 input, 2 expected}
// Rules (each has a test in tests/text/sentencepiece_model_check_test.cc):
//   * size within [kMinFileBytes, limits.max_file_bytes];
//   * every varint ≤ 10 bytes, every length inside its enclosing message, no group or
//     reserved wire types, nesting only through the known message fields (depth ≤ 3), a
//     singular field at most once, known fields with their declared wire type;
//   * 2 ≤ pieces ≤ limits.max_pieces; each piece 1..limits.max_piece_bytes bytes, valid
//     UTF-8, no NUL (sentencepiece builds its tries from C strings), no duplicates, a known
//     type, a finite score; exactly one UNKNOWN piece; BYTE pieces spelled <0xHH>, present
//     only with byte_fallback and then all 256 of them; at least one piece text can map to;
//   * each precompiled_charsmap is empty or a well-formed double-array trie: every unit
//     reachable from the root has all 256 children inside the array, the trie is acyclic, at
//     most 32 matches lie on any path, and every value indexes a NUL-terminated string;
//   * self-test data (run through Encode at load) of at most limits.max_self_test_bytes.
// Violations throw Error(kCorruptFile) with the file name, what was wrong and the byte offset.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace flamingo::text {

struct SentencepieceLimits {
  static constexpr size_t kMinFileBytes = 16;
  size_t max_file_bytes = size_t{64} << 20;
  // Same bound as config.json's vocabulary (docs/model-format.md).
  int32_t max_pieces = int32_t{1} << 22;
  // LLaMA's pieces are at most 16 characters (≤ 64 bytes); user-defined symbols of other
  // models stay far below this. 256 bytes need ~20 KiB of stack in the trie builder.
  int32_t max_piece_bytes = 256;
  // nmt_nfkc, sentencepiece's largest built-in rule set, is ~240 KB.
  size_t max_charsmap_bytes = size_t{2} << 20;
  size_t max_self_test_bytes = size_t{1} << 20;
};

enum class SentencepieceModelType : int { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

// sentencepiece_model.proto's SentencePiece.Type values.
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// What the checker learned about a model that passed; the tokenizer needs these to mirror
// sentencepiece's decoding without asking it about ids it has not range-checked.
struct SentencepieceModelInfo {
  int32_t piece_count = 0;
  SentencepieceModelType model_type = SentencepieceModelType::kUnigram;
  int32_t unk_id = -1;
  std::vector<PieceType> types;  // by id
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  bool add_dummy_prefix = true;  // normalizer_spec defaults
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool has_charsmap = false;                   // normalizer_spec.precompiled_charsmap non-empty
  bool has_denormalizer = false;               // denormalizer_spec.precompiled_charsmap non-empty
  std::string unk_surface = " \xE2\x81\x87 ";  // trainer_spec.unk_surface, default " ⁇ "
};

// Validates `bytes` as a sentencepiece ModelProto. `name` (usually the file path) starts
// every error message. Throws Error(kCorruptFile) or, for a size over the limit,
// Error(kResourceLimit).
SentencepieceModelInfo check_sentencepiece_model(std::string_view bytes, std::string_view name,
                                                 const SentencepieceLimits& limits = {});

// Checks the vocabulary against config.json: the sentencepiece pieces take ids
// [0, piece_count); the special (added) tokens with ids ≥ piece_count must fill
// [piece_count, vocab_size) exactly, one id each; special ids below piece_count name
// existing pieces; no two special strings share an id; strings are non-empty valid UTF-8.
// Throws Error(kModelMismatch) when the counts disagree, Error(kInvalidConfig) for a bad map.
void check_vocabulary(const SentencepieceModelInfo& info,
                      const std::map<std::string, int32_t>& special, int64_t vocab_size,
                      std::string_view name);

}  // namespace flamingo::text
