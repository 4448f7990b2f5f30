// Hand-encoding of sentencepiece ModelProto bytes for the tokenizer tests: crafted models
// need exact control over the wire format, which no protobuf library would write for us.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace flamingo::testing::spm {

inline std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}

inline std::string tag(uint32_t field, uint32_t wire) {
  return varint(uint64_t{field} << 3 | wire);
}

inline std::string len_field(uint32_t field, std::string_view payload) {
  return tag(field, 2) + varint(payload.size()) + std::string(payload);
}

inline std::string varint_field(uint32_t field, uint64_t v) { return tag(field, 0) + varint(v); }

inline std::string fixed32_field(uint32_t field, uint32_t v) {
  std::string out = tag(field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  return out + std::string(b, 4);
}

inline std::string float_field(uint32_t field, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return fixed32_field(field, u);
}

enum Type { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// One ModelProto.pieces entry.
inline std::string piece(std::string_view text, int type = kNormal, float score = -1.f) {
  return len_field(1, len_field(1, text) + float_field(2, score) + varint_field(3, type));
}

// ModelProto with six pieces (<unk>, <s>, </s>, ▁, a, b), a unigram trainer spec and an
// identity normaliser: the smallest realistic model, which sentencepiece loads and encodes.
inline std::string pieces_six() {
  return piece("<unk>", kUnknown, 0.f) + piece("<s>", kControl, 0.f) +
         piece("</s>", kControl, 0.f) + piece("\xE2\x96\x81", kNormal, -1.f) +
         piece("a", kNormal, -2.f) + piece("b", kNormal, -3.f);
}
inline std::string trainer_spec(std::string extra = {}) {
  return len_field(2, varint_field(3, 1) + extra);
}
inline std::string normalizer_spec(std::string charsmap = {}) {
  std::string body = len_field(1, "identity");
  if (!charsmap.empty()) body += len_field(2, charsmap);
  body += varint_field(3, 1) + varint_field(4, 0);
  return len_field(3, body);
}
inline std::string minimal_model() { return pieces_six() + trainer_spec() + normalizer_spec(); }

// A precompiled_charsmap with one trie unit: the root, whose offset sends the very first
// lookup ~4 GB past the array. sentencepiece 0.1.97 accepts it at load and segfaults in
// Encode (the CVE-2026-1260 class).
inline std::string charsmap_root_out_of_bounds() {
  const uint32_t trie_bytes = 4;
  const uint32_t root = 0xFFFFFC00u | (1u << 9);  // offset (2^22 - 1) << 8 units
  std::string blob(8, '\0');
  std::memcpy(blob.data(), &trie_bytes, 4);
  std::memcpy(blob.data() + 4, &root, 4);
  return blob + std::string(1, '\0');
}

// A well-formed charsmap whose trie matches nothing: the root (unit 0) has its children
// block at 256..511, and all those units carry bit 31, which no input byte's label matches.
inline std::string charsmap_matching_nothing() {
  std::string blob(4 + 512 * 4, '\0');
  const uint32_t trie_bytes = 512 * 4, root = 256u << 10, unused = 0x80000000u;
  std::memcpy(blob.data(), &trie_bytes, 4);
  std::memcpy(blob.data() + 4, &root, 4);
  for (int i = 1; i < 512; ++i) std::memcpy(blob.data() + 4 + 4 * i, &unused, 4);
  return blob;
}

}  // namespace flamingo::testing::spm
