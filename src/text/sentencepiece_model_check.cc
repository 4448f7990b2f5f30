#include "text/sentencepiece_model_check.h"

#include <cmath>
#include <cstring>
#include <unordered_set>

#include "text/utf8.h"
#include "util/check.h"

namespace flamingo::text {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// One protobuf message: a byte range of the whole file (offsets are reported file-relative).
class Walker {
 public:
  Walker(std::string_view file, size_t begin, size_t end, std::string_view name)
      : file_(file), pos_(begin), end_(end), name_(name) {}

  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  template <typename... Args>
  [[noreturn]] void corrupt(size_t at, Args&&... what) const {
    fail(ErrorCode::kCorruptFile, name_,
         ": corrupt sentencepiece model: ", std::forward<Args>(what)..., " (at byte ", at, ")");
  }

  uint64_t varint() {
    const size_t start = pos_;
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ >= end_) corrupt(start, "truncated varint");
      const auto b = static_cast<uint8_t>(file_[pos_++]);
      if (i == 9 && b > 1) corrupt(start, "varint longer than 64 bits");
      v |= uint64_t{b & 0x7Fu} << (7 * i);
      if (b < 0x80) return v;
    }
    corrupt(start, "varint longer than 10 bytes");
  }

  // Reads a tag; returns false at the end of the message.
  bool next(uint32_t* field, uint32_t* wire, size_t* at) {
    if (done()) return false;
    *at = pos_;
    const uint64_t tag = varint();
    *field = static_cast<uint32_t>(tag >> 3);
    *wire = static_cast<uint32_t>(tag & 7);
    if (tag >> 3 == 0 || tag >> 3 > (uint64_t{1} << 29) - 1)
      corrupt(*at, "invalid field number ", tag >> 3);
    if (*wire == 3 || *wire == 4) corrupt(*at, "protobuf groups are not used by this format");
    if (*wire != kVarint && *wire != kFixed64 && *wire != kLen && *wire != kFixed32)
      corrupt(*at, "invalid wire type ", *wire);
    return true;
  }

  // Byte range [begin, end) of a length-delimited payload.
  std::pair<size_t, size_t> len() {
    const size_t at = pos_;
    const uint64_t n = varint();
    if (n > end_ - pos_)
      corrupt(at, "length ", n, " runs past the end of its message (", end_ - pos_, " bytes left)");
    const size_t b = pos_;
    pos_ += static_cast<size_t>(n);
    return {b, pos_};
  }

  uint32_t fixed32() {
    if (end_ - pos_ < 4) corrupt(pos_, "truncated 32-bit value");
    uint32_t v;
    std::memcpy(&v, file_.data() + pos_, 4);  // protobuf is little-endian, like x86-64
    pos_ += 4;
    return v;
  }

  void skip(uint32_t wire) {
    switch (wire) {
      case kVarint:
        varint();
        break;
      case kFixed64:
        if (end_ - pos_ < 8) corrupt(pos_, "truncated 64-bit value");
        pos_ += 8;
        break;
      case kLen:
        len();
        break;
      case kFixed32:
        fixed32();
        break;
    }
  }

  std::string_view bytes(std::pair<size_t, size_t> r) const {
    return file_.substr(r.first, r.second - r.first);
  }
  std::string_view name() const { return name_; }
  std::string_view file() const { return file_; }

 private:
  std::string_view file_;
  size_t pos_, end_;
  std::string_view name_;
};

// Tracks which singular fields a message has already seen: a real serializer writes each
// once, and protobuf's merge-on-repeat semantics would let a second copy hide from a check.
class SeenFields {
 public:
  template <typename... What>
  void mark(const Walker& w, uint32_t field, size_t at, const What&... message) {
    if (field < 64) {
      if (bits_ & (uint64_t{1} << field))
        w.corrupt(at, message..., " field ", field, " appears twice");
      bits_ |= uint64_t{1} << field;
    }
  }

 private:
  uint64_t bits_ = 0;
};

// The description is only formatted on failure: this runs for every field of every piece.
template <typename... What>
void expect_wire(const Walker& w, uint32_t wire, uint32_t want, size_t at, const What&... what) {
  if (wire != want) w.corrupt(at, what..., " has wire type ", wire, ", expected ", want);
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F) {
      out += c;
    } else {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 15];
    }
  }
  if (s.size() > 40) out += "...";
  return out;
}

// Wire types of TrainerSpec's fields (from sentencepiece_model.proto, 0.1.97).
int trainer_field_wire(uint32_t field) {
  switch (field) {
    case 1:
    case 2:
    case 5:
    case 7:
    case 30:
    case 31:
    case 36:
    case 44:
    case 45:
    case 46:
    case 47:
    case 48:
      return kLen;  // strings
    case 10:
    case 15:
    case 51:
      return kFixed32;  // floats
    case 3:
    case 4:
    case 6:
    case 11:
    case 12:
    case 13:
    case 14:
    case 16:
    case 17:
    case 18:
    case 19:
    case 20:
    case 21:
    case 22:
    case 23:
    case 24:
    case 25:
    case 26:
    case 32:
    case 33:
    case 34:
    case 35:
    case 40:
    case 41:
    case 42:
    case 43:
    case 49:
    case 50:
    case 52:
      return kVarint;
    default:
      return -1;  // a field of a newer sentencepiece: protobuf keeps it as unknown
  }
}

bool trainer_field_repeated(uint32_t field) {
  return field == 1 || field == 5 || field == 30 || field == 31;
}

void check_trainer_spec(Walker w, SentencepieceModelInfo* info) {
  SeenFields seen;
  uint32_t field, wire;
  size_t at;
  while (w.next(&field, &wire, &at)) {
    const int want = trainer_field_wire(field);
    if (want < 0) {
      w.skip(wire);
      continue;
    }
    expect_wire(w, wire, static_cast<uint32_t>(want), at, "trainer_spec field ", field);
    if (!trainer_field_repeated(field)) seen.mark(w, field, at, "trainer_spec");
    if (field == 3) {
      const uint64_t t = w.varint();
      if (t < 1 || t > 4)
        w.corrupt(at, "unknown trainer_spec.model_type ", t,
                  " (known: 1 unigram, 2 bpe, 3 word, 4 char)");
      info->model_type = static_cast<SentencepieceModelType>(t);
    } else if (field == 35) {
      info->byte_fallback = w.varint() != 0;
    } else if (field == 24) {
      info->treat_whitespace_as_suffix = w.varint() != 0;
    } else if (field == 44) {
      const std::string_view s = w.bytes(w.len());
      if (s.size() > 256 || find_invalid_utf8(s) != std::string_view::npos ||
          s.find('\0') != std::string_view::npos)
        w.corrupt(at, "trainer_spec.unk_surface is not a short valid UTF-8 string");
      info->unk_surface = std::string(s);
    } else {
      w.skip(wire);
    }
  }
}

// The precompiled_charsmap blob: <uint32 trie bytes><darts-clone double array><normalised
// strings, each NUL-terminated>. Mirrors what Darts::DoubleArray::commonPrefixSearch and
// Normalizer::NormalizePrefix (0.1.97) will read, for every possible input.
void check_charsmap(const Walker& w, size_t at, std::string_view blob,
                    const SentencepieceLimits& limits, std::string_view which) {
  auto bad = [&](auto&&... what) { w.corrupt(at, which, ".precompiled_charsmap: ", what...); };
  if (blob.size() > limits.max_charsmap_bytes)
    bad(blob.size(), " bytes, over the limit of ", limits.max_charsmap_bytes);
  if (blob.size() < 8) bad("shorter than a header and one trie unit");
  uint32_t trie_bytes;
  std::memcpy(&trie_bytes, blob.data(), 4);
  if (trie_bytes == 0 || trie_bytes % 4 != 0 || trie_bytes > blob.size() - 4)
    bad("trie size ", trie_bytes, " does not fit the ", blob.size(), "-byte blob");
  const size_t n = trie_bytes / 4;
  std::vector<uint32_t> units(n);
  std::memcpy(units.data(), blob.data() + 4, trie_bytes);
  const std::string_view normalized = blob.substr(4 + size_t{trie_bytes});

  // darts-clone unit layout (darts.h DoubleArrayUnit).
  auto has_leaf = [](uint32_t u) { return ((u >> 8) & 1) == 1; };
  auto value = [](uint32_t u) { return u & 0x7FFFFFFFu; };
  auto label = [](uint32_t u) { return u & (0x80000000u | 0xFFu); };
  auto offset = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };

  // After reaching unit i the search XORs i with its offset and then with any input byte,
  // so the whole 256-unit block around that base must exist.
  auto check_base = [&](size_t i) {
    const size_t base = i ^ offset(units[i]);
    if ((base | 0xFF) >= n)
      bad("trie unit ", i, " points to unit ", base, " outside the ", n, "-unit array");
    return base;
  };
  if (!normalized.empty() && normalized.back() != '\0')
    bad("normalised strings are not NUL-terminated");

  // Iterative DFS over the units reachable from the root. `depth` = the most matches
  // (leaves) on any path starting below a unit; NormalizePrefix keeps only 32 and reads
  // every one, so more would overrun its stack array.
  constexpr int kMaxMatches = 32;
  enum : uint8_t { kNew = 0, kOpen = 1, kDone = 2 };
  std::vector<uint8_t> state(n, kNew), depth(n, 0);
  struct Frame {
    size_t unit, base;
    int next_label;
  };
  std::vector<Frame> stack;
  // Folds a finished child's depth into its parent.
  auto fold = [&](size_t parent, size_t child) {
    const int through = depth[child] + (has_leaf(units[child]) ? 1 : 0);
    if (through > kMaxMatches) bad("more than ", kMaxMatches, " rules match prefixes of one input");
    if (through > depth[parent]) depth[parent] = static_cast<uint8_t>(through);
  };
  stack.push_back({0, check_base(0), 0});
  state[0] = kOpen;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_label == 256) {
      const size_t done = f.unit;
      state[done] = kDone;
      stack.pop_back();
      if (!stack.empty()) fold(stack.back().unit, done);
      continue;
    }
    const int c = f.next_label++;
    const size_t child = f.base ^ static_cast<size_t>(c);
    if (label(units[child]) != static_cast<uint32_t>(c)) continue;
    if (state[child] == kOpen) bad("trie has a cycle through unit ", child);
    if (state[child] == kDone) {  // shared suffix (darts-clone builds from a DAWG)
      fold(f.unit, child);
      continue;
    }
    const size_t base = check_base(child);
    if (has_leaf(units[child]) && value(units[base]) >= normalized.size())
      bad("trie unit ", child, " maps to offset ", value(units[base]),
          " outside the normalised strings (", normalized.size(), " bytes)");
    state[child] = kOpen;
    stack.push_back({child, base, 0});  // invalidates f
  }
}

void check_normalizer_spec(Walker w, const SentencepieceLimits& limits, bool denormalizer,
                           SentencepieceModelInfo* info) {
  const std::string_view which = denormalizer ? "denormalizer_spec" : "normalizer_spec";
  SeenFields seen;
  uint32_t field, wire;
  size_t at;
  while (w.next(&field, &wire, &at)) {
    if (field > 6) {
      w.skip(wire);
      continue;
    }
    seen.mark(w, field, at, which);
    const bool is_bool = field >= 3 && field <= 5;
    expect_wire(w, wire, is_bool ? kVarint : kLen, at, which, " field ", field);
    if (field == 2) {
      const std::string_view blob = w.bytes(w.len());
      if (!blob.empty()) {
        check_charsmap(w, at, blob, limits, which);
        (denormalizer ? info->has_denormalizer : info->has_charsmap) = true;
      }
    } else if (is_bool) {
      const bool v = w.varint() != 0;
      if (!denormalizer) {
        if (field == 3) info->add_dummy_prefix = v;
        if (field == 4) info->remove_extra_whitespaces = v;
        if (field == 5) info->escape_whitespaces = v;
      }
    } else {
      w.skip(wire);
    }
  }
}

void check_self_test(Walker w, const SentencepieceLimits& limits, size_t* total) {
  uint32_t field, wire;
  size_t at;
  while (w.next(&field, &wire, &at)) {
    if (field != 1) {
      w.skip(wire);
      continue;
    }
    expect_wire(w, wire, kLen, at, "self_test_data.samples");
    const auto r = w.len();
    *total += r.second - r.first;
    if (*total > limits.max_self_test_bytes)
      w.corrupt(at, "self_test_data is larger than ", limits.max_self_test_bytes,
                " bytes (sentencepiece encodes all of it at load)");
    Walker sample(w.file(), r.first, r.second, w.name());
    SeenFields seen;
    uint32_t f2, w2;
    size_t at2;
    while (sample.next(&f2, &w2, &at2)) {
      if (f2 == 1 || f2 == 2) {
        seen.mark(sample, f2, at2, "self_test_data sample");
        expect_wire(sample, w2, kLen, at2, "self_test_data sample field");
      }
      sample.skip(w2);
    }
  }
}

int byte_piece_value(std::string_view p) {
  // sentencepiece's PieceToByte only knows the spelling ByteToPiece makes: "<0x%02X>".
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

SentencepieceModelInfo check_sentencepiece_model(std::string_view bytes, std::string_view name,
                                                 const SentencepieceLimits& limits) {
  if (bytes.size() > limits.max_file_bytes)
    fail(ErrorCode::kResourceLimit, name, ": sentencepiece model is ", bytes.size(),
         " bytes, over the limit of ", limits.max_file_bytes);
  if (bytes.size() < SentencepieceLimits::kMinFileBytes)
    fail(ErrorCode::kCorruptFile, name, ": corrupt sentencepiece model: only ", bytes.size(),
         " bytes");

  SentencepieceModelInfo info;
  Walker top(bytes, 0, bytes.size(), name);
  SeenFields seen;
  std::unordered_set<std::string_view> pieces;
  int byte_pieces = 0;
  bool bytes_seen[256] = {};
  bool any_text_piece = false;
  size_t self_test_total = 0;
  struct BytePiece {
    size_t at;
    int32_t id;
  };
  std::vector<BytePiece> byte_piece_positions;
  uint32_t field, wire;
  size_t at;
  // The trainer spec may follow the pieces, so checks that need byte_fallback run after.
  while (top.next(&field, &wire, &at)) {
    if (field > 5) {
      top.skip(wire);
      continue;
    }
    expect_wire(top, wire, kLen, at, "model field ", field);
    const auto r = top.len();
    Walker sub(bytes, r.first, r.second, name);
    if (field != 1) seen.mark(top, field, at, "model");
    if (field == 2) check_trainer_spec(sub, &info);
    if (field == 3) check_normalizer_spec(sub, limits, false, &info);
    if (field == 5) check_normalizer_spec(sub, limits, true, &info);
    if (field == 4) check_self_test(sub, limits, &self_test_total);
    if (field != 1) continue;

    const int32_t id = info.piece_count;
    if (id >= limits.max_pieces) top.corrupt(at, "more than ", limits.max_pieces, " pieces");
    SeenFields piece_seen;
    std::string_view piece;
    bool has_piece = false;
    auto type = PieceType::kNormal;
    uint32_t f2, w2;
    size_t at2;
    while (sub.next(&f2, &w2, &at2)) {
      if (f2 > 3) {
        sub.skip(w2);
        continue;
      }
      piece_seen.mark(sub, f2, at2, "piece ", id);
      if (f2 == 1) {
        expect_wire(sub, w2, kLen, at2, "piece ", id, " text");
        const auto pr = sub.len();
        if (pr.second - pr.first > static_cast<size_t>(limits.max_piece_bytes))
          sub.corrupt(at2, "piece ", id, " is ", pr.second - pr.first, " bytes long (limit ",
                      limits.max_piece_bytes, ")");
        piece = sub.bytes(pr);
        has_piece = true;
      } else if (f2 == 2) {
        expect_wire(sub, w2, kFixed32, at2, "piece ", id, " score");
        const uint32_t u = sub.fixed32();
        float score;
        std::memcpy(&score, &u, 4);
        if (!std::isfinite(score)) sub.corrupt(at2, "piece ", id, " has a non-finite score");
      } else {
        expect_wire(sub, w2, kVarint, at2, "piece ", id, " type");
        const uint64_t t = sub.varint();
        if (t < 1 || t > 6) sub.corrupt(at2, "piece ", id, " has unknown type ", t);
        type = static_cast<PieceType>(t);
      }
    }
    if (!has_piece || piece.empty()) top.corrupt(at, "piece ", id, " is empty");
    if (piece.find('\0') != std::string_view::npos)
      top.corrupt(at, "piece ", id, " contains a NUL byte");
    if (const size_t bad = find_invalid_utf8(piece); bad != std::string_view::npos)
      top.corrupt(at, "piece ", id, " ('", printable(piece), "') is not valid UTF-8 at byte ", bad);
    if (!pieces.insert(piece).second)
      top.corrupt(at, "piece ", id, " ('", printable(piece), "') is defined twice");
    if (type == PieceType::kUnknown) {
      if (info.unk_id >= 0)
        top.corrupt(at, "piece ", id, " is a second UNKNOWN piece (first: ", info.unk_id, ")");
      info.unk_id = id;
    }
    if (type == PieceType::kByte) {
      const int b = byte_piece_value(piece);
      if (b < 0) top.corrupt(at, "byte piece ", id, " ('", printable(piece), "') is not <0xHH>");
      bytes_seen[b] = true;
      ++byte_pieces;
      byte_piece_positions.push_back({at, id});
    }
    if (type == PieceType::kNormal || type == PieceType::kUserDefined || type == PieceType::kByte)
      any_text_piece = true;
    info.types.push_back(type);
    ++info.piece_count;
  }

  auto whole = [&](auto&&... what) {
    fail(ErrorCode::kCorruptFile, name, ": corrupt sentencepiece model: ", what...);
  };
  if (info.piece_count < 2) whole("only ", info.piece_count, " pieces");
  if (info.unk_id < 0) whole("no UNKNOWN piece");
  if (!any_text_piece) whole("no piece that text can be encoded to");
  if (byte_pieces > 0 && !info.byte_fallback)
    top.corrupt(byte_piece_positions.front().at, "byte piece ", byte_piece_positions.front().id,
                " but trainer_spec.byte_fallback is off");
  if (info.byte_fallback && byte_pieces != 256)
    whole("byte_fallback is on but only ", byte_pieces, " of the 256 byte pieces exist");
  (void)bytes_seen;
  return info;
}

void check_vocabulary(const SentencepieceModelInfo& info,
                      const std::map<std::string, int32_t>& special, int64_t vocab_size,
                      std::string_view name) {
  const int64_t pieces = info.piece_count;
  if (vocab_size < pieces)
    fail(ErrorCode::kModelMismatch, name, ": the tokenizer has ", pieces,
         " pieces but config lm.vocab_size is only ", vocab_size);
  std::map<int32_t, std::string_view> by_id;
  int64_t added = 0;
  for (const auto& [text, id] : special) {
    if (text.empty()) fail(ErrorCode::kInvalidConfig, "config tokens.special: empty string");
    if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
      fail(ErrorCode::kInvalidConfig, "config tokens.special: '", printable(text),
           "' is not valid UTF-8 at byte ", bad);
    if (id < 0 || id >= vocab_size)
      fail(ErrorCode::kInvalidConfig, "config tokens.special: id ", id, " of '", text,
           "' is outside the vocabulary [0, ", vocab_size, ")");
    if (auto [it, fresh] = by_id.emplace(id, text); !fresh)
      fail(ErrorCode::kInvalidConfig, "config tokens.special: '", it->second, "' and '", text,
           "' share id ", id);
    if (id >= pieces) ++added;
  }
  if (pieces + added != vocab_size)
    fail(ErrorCode::kModelMismatch, name, ": vocabulary mismatch: ", pieces,
         " sentencepiece pieces + ", added, " added special tokens = ", pieces + added,
         ", but config lm.vocab_size is ", vocab_size);
  // `added` distinct ids in [pieces, vocab_size) with pieces + added == vocab_size fill the
  // range exactly, so every id of the LM has a string.
}

}  // namespace flamingo::text
