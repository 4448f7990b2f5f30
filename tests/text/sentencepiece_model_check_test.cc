#include "text/sentencepiece_model_check.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sentencepiece_processor.h>
#include <sys/wait.h>

#include <cstring>
#include <random>

#include "flamingo/error.h"
#include "support/test_util.h"
#include "text/spm_bytes.h"

namespace flamingo::text {
namespace {

namespace spm = flamingo::testing::spm;
using flamingo::testing::read_file;
using flamingo::testing::test_data_dir;

std::string tiny_model() { return read_file(test_data_dir() / "tokenizer" / "tiny.model"); }
std::string tiny_bpe_model() { return read_file(test_data_dir() / "tokenizer" / "tiny_bpe.model"); }

// Runs the checker and returns the error it raised (or fails the test if none).
Error rejection(std::string_view bytes, const SentencepieceLimits& limits = {}) {
  try {
    check_sentencepiece_model(bytes, "crafted.model", limits);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "model was accepted";
  return Error(ErrorCode::kInternal, "accepted");
}

void expect_corrupt(std::string_view bytes, std::string_view message_part) {
  const Error e = rejection(bytes);
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
  EXPECT_NE(std::string(e.what()).find("crafted.model"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
}

// Whatever the checker accepts must be safe for sentencepiece: load it and encode text that
// exercises the normaliser, the byte fallback and user symbols. A validator gap crashes here.
void expect_safe_in_sentencepiece(const std::string& bytes) {
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(bytes).ok()) return;  // a clean refusal is fine too
  std::vector<int> ids;
  for (const char* text : {"a large red circle", "ＦＵＬＬ ｆｉ…", "東京 😀 \xC3\xA9", "", " ",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b"}) {
    (void)sp.Encode(text, &ids);
    std::string out;
    (void)sp.Decode(ids, &out);
  }
}

TEST(SentencepieceModelCheck, AcceptsTheFixtures) {
  const SentencepieceModelInfo a = check_sentencepiece_model(tiny_model(), "tiny.model");
  EXPECT_EQ(a.piece_count, 400);
  EXPECT_EQ(a.model_type, SentencepieceModelType::kUnigram);
  EXPECT_EQ(a.unk_id, 0);
  EXPECT_TRUE(a.byte_fallback);
  EXPECT_TRUE(a.add_dummy_prefix);
  EXPECT_FALSE(a.remove_extra_whitespaces);
  EXPECT_FALSE(a.has_charsmap);
  EXPECT_EQ(a.types[1], PieceType::kControl);
  EXPECT_EQ(a.types[3], PieceType::kByte);

  const SentencepieceModelInfo b = check_sentencepiece_model(tiny_bpe_model(), "tiny_bpe.model");
  EXPECT_EQ(b.model_type, SentencepieceModelType::kBpe);
  EXPECT_TRUE(b.has_charsmap);  // a real darts-clone trie passes the trie walk
  EXPECT_TRUE(b.remove_extra_whitespaces);
}

TEST(SentencepieceModelCheck, MinimalHandWrittenModelIsValidForBoth) {
  const std::string m = spm::minimal_model();
  EXPECT_EQ(check_sentencepiece_model(m, "m").piece_count, 6);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(m).ok());
  EXPECT_EQ(sp.EncodeAsIds("ab ba").size(), 6u);
}

// The reliability spec's 120-byte model: loads in sentencepiece, then crashes in Encode.
TEST(SentencepieceModelCheck, RejectsCharsmapThatCrashesEncode) {
  const std::string m = spm::pieces_six() + spm::trainer_spec() +
                        spm::normalizer_spec(spm::charsmap_root_out_of_bounds());
  EXPECT_LE(m.size(), 130u);
  expect_corrupt(m, "outside the 1-unit array");
}

TEST(SentencepieceModelCheckDeathTest, RawSentencepieceReallyCrashesOnThatModel) {
  // Documents why the checker exists: the same bytes kill the process inside sentencepiece.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string m = spm::pieces_six() + spm::trainer_spec() +
                        spm::normalizer_spec(spm::charsmap_root_out_of_bounds());
  EXPECT_EXIT(
      {
        sentencepiece::SentencePieceProcessor sp;
        if (!sp.LoadFromSerializedProto(m).ok()) std::exit(0);  // refused: no hazard
        std::vector<int> ids;
        (void)sp.Encode("ab", &ids);
        std::exit(0);
      },
      [](int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }, "");
}

std::string model_with_huge_piece() {
  return spm::pieces_six() + spm::piece(std::string(300000, 'b'), spm::kNormal, -5.f) +
         spm::trainer_spec() + spm::normalizer_spec();
}

TEST(SentencepieceModelCheck, RejectsHugePiece) {
  expect_corrupt(model_with_huge_piece(), "piece 6 is 300000 bytes long (limit 256)");
  // The limit is exactly inclusive.
  const std::string at_limit = spm::pieces_six() + spm::piece(std::string(256, 'c')) +
                               spm::trainer_spec() + spm::normalizer_spec();
  EXPECT_EQ(check_sentencepiece_model(at_limit, "m").piece_count, 7);
  expect_safe_in_sentencepiece(at_limit);
  expect_corrupt(spm::pieces_six() + spm::piece(std::string(257, 'c')), "257 bytes long");
}

TEST(SentencepieceModelCheckDeathTest, RawSentencepieceOverflowsAStackOnTheHugePiece) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string m = model_with_huge_piece();
  // Load on a 1 MiB stack, like a worker thread, so the outcome does not depend on ulimit -s.
  EXPECT_EXIT(
      {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, size_t{1} << 20);
        pthread_t t;
        auto body = [](void* arg) -> void* {
          sentencepiece::SentencePieceProcessor sp;
          (void)sp.LoadFromSerializedProto(*static_cast<const std::string*>(arg));
          return nullptr;
        };
        pthread_create(&t, &attr, body, const_cast<std::string*>(&m));
        pthread_join(t, nullptr);
        std::exit(0);
      },
      [](int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }, "");
}

TEST(SentencepieceModelCheck, RejectsWireFormatErrors) {
  const std::string good = spm::minimal_model();
  expect_corrupt(std::string(good) + "\x0a", "truncated varint");
  expect_corrupt(
      std::string(good) + std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11),
      "varint longer");
  expect_corrupt(std::string(good) + "\x0a\x10" + "abc", "runs past the end");
  expect_corrupt(std::string(good) + spm::tag(7, 3), "groups");
  expect_corrupt(std::string(good) + spm::tag(7, 7), "invalid wire type 7");
  expect_corrupt(std::string(good) + spm::tag(0, 0) + spm::varint(1), "invalid field number 0");
  expect_corrupt(spm::varint_field(1, 5) + good, "model field 1 has wire type 0");
  expect_corrupt(good + spm::trainer_spec(), "model field 2 appears twice");
  expect_corrupt(spm::len_field(1, spm::varint_field(1, 3)) + good, "piece 0 text has wire type");
  expect_corrupt(spm::len_field(1, spm::len_field(1, "x") + spm::len_field(1, "y")) + good,
                 "piece 0 field 1 appears twice");
  // A 64-bit field runs off the end of its piece.
  expect_corrupt(spm::len_field(1, spm::len_field(1, "x") + spm::tag(9, 1) + "abc") + good,
                 "truncated 64-bit value");
}

TEST(SentencepieceModelCheck, RejectsBadPieces) {
  const std::string tail = spm::trainer_spec() + spm::normalizer_spec();
  expect_corrupt(spm::piece("<unk>", spm::kUnknown) + tail, "only 1 pieces");
  expect_corrupt(spm::trainer_spec() + spm::normalizer_spec(), "only 0 pieces");
  expect_corrupt(spm::piece("a") + spm::piece("b") + tail, "no UNKNOWN piece");
  expect_corrupt(spm::pieces_six() + spm::piece("<unk2>", spm::kUnknown) + tail,
                 "second UNKNOWN piece");
  expect_corrupt(spm::pieces_six() + spm::piece("a", spm::kUserDefined) + tail,
                 "piece 6 ('a') is defined twice");
  expect_corrupt(spm::pieces_six() + spm::piece("") + tail, "piece 6 is empty");
  expect_corrupt(spm::pieces_six() + spm::len_field(1, spm::float_field(2, 0.f)) + tail,
                 "piece 6 is empty");
  expect_corrupt(spm::pieces_six() + spm::piece(std::string("x\0y", 3)) + tail, "NUL byte");
  expect_corrupt(spm::pieces_six() + spm::piece("x\xC0\xAF") + tail, "not valid UTF-8 at byte 1");
  expect_corrupt(spm::pieces_six() + spm::piece("\xED\xA0\x80") + tail, "not valid UTF-8");
  expect_corrupt(spm::pieces_six() + spm::piece("c", 7) + tail, "unknown type 7");
  expect_corrupt(spm::pieces_six() + spm::piece("c", 0) + tail, "unknown type 0");
  expect_corrupt(spm::pieces_six() + spm::piece("c", spm::kNormal, NAN) + tail, "non-finite");
  expect_corrupt(spm::pieces_six() + spm::piece("c", spm::kNormal, INFINITY) + tail, "non-finite");
  expect_corrupt(spm::piece("<unk>", spm::kUnknown) + spm::piece("<s>", spm::kControl) + tail,
                 "no piece that text can be encoded to");
}

std::string byte_pieces(int count, bool lower_case_at_0x0a = false) {
  std::string out;
  for (int b = 0; b < count; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, (lower_case_at_0x0a && b == 10) ? "<0x%02x>" : "<0x%02X>", b);
    out += spm::piece(name, spm::kByte, 0.f);
  }
  return out;
}

TEST(SentencepieceModelCheck, ChecksBytePiecesAgainstByteFallback) {
  const std::string byte_fallback = spm::varint_field(35, 1);
  const std::string norm = spm::normalizer_spec();
  const std::string ok =
      spm::pieces_six() + byte_pieces(256) + spm::trainer_spec(byte_fallback) + norm;
  EXPECT_TRUE(check_sentencepiece_model(ok, "m").byte_fallback);
  expect_safe_in_sentencepiece(ok);
  expect_corrupt(spm::pieces_six() + byte_pieces(256) + spm::trainer_spec() + norm,
                 "byte piece 6 but trainer_spec.byte_fallback is off");
  expect_corrupt(spm::pieces_six() + byte_pieces(255) + spm::trainer_spec(byte_fallback) + norm,
                 "only 255 of the 256 byte pieces");
  expect_corrupt(
      spm::pieces_six() + byte_pieces(256, true) + spm::trainer_spec(byte_fallback) + norm,
      "is not <0xHH>");
}

TEST(SentencepieceModelCheck, ChecksTrainerAndNormalizerSpecs) {
  const std::string p = spm::pieces_six();
  expect_corrupt(p + spm::len_field(2, spm::varint_field(3, 99)),
                 "unknown trainer_spec.model_type 99");
  expect_corrupt(p + spm::len_field(2, spm::varint_field(3, 0)), "model_type 0");
  expect_corrupt(p + spm::len_field(2, spm::varint_field(35, 1) + spm::varint_field(35, 0)),
                 "trainer_spec field 35 appears twice");
  expect_corrupt(p + spm::len_field(2, spm::len_field(4, "8000")),
                 "trainer_spec field 4 has wire type 2");
  expect_corrupt(p + spm::len_field(2, spm::len_field(44, "\xff")), "unk_surface");
  expect_corrupt(p + spm::len_field(3, spm::len_field(3, "x")),
                 "normalizer_spec field 3 has wire type 2");
  // Repeated string fields and fields of newer sentencepiece versions are fine.
  const std::string newer =
      p +
      spm::len_field(2, spm::varint_field(3, 2) + spm::len_field(1, "a.txt") +
                            spm::len_field(1, "b.txt") + spm::varint_field(60, 7)) +
      spm::normalizer_spec() + spm::len_field(300, "extension");
  EXPECT_EQ(check_sentencepiece_model(newer, "m").model_type, SentencepieceModelType::kBpe);
  expect_safe_in_sentencepiece(newer);
  // word and char models.
  for (int t : {3, 4}) {
    const std::string m = p + spm::len_field(2, spm::varint_field(3, t)) + spm::normalizer_spec();
    EXPECT_EQ(static_cast<int>(check_sentencepiece_model(m, "m").model_type), t);
    expect_safe_in_sentencepiece(m);
  }
}

TEST(SentencepieceModelCheck, BoundsSelfTestData) {
  auto sample = [](std::string in, std::string out) {
    return spm::len_field(1, spm::len_field(1, in) + spm::len_field(2, out));
  };
  const std::string ok = spm::minimal_model() + spm::len_field(4, sample("ab",
                                                                         "\xE2\x96\x81"
                                                                         "ab"));
  EXPECT_NO_THROW(check_sentencepiece_model(ok, "m"));
  SentencepieceLimits small;
  small.max_self_test_bytes = 100;
  const std::string big =
      spm::minimal_model() + spm::len_field(4, sample(std::string(200, 'a'), ""));
  EXPECT_EQ(rejection(big, small).code(), ErrorCode::kCorruptFile);
}

TEST(SentencepieceModelCheck, RejectsBadSizesAndForeignFiles) {
  expect_corrupt("", "only 0 bytes");
  expect_corrupt(std::string(15, '\x0a'), "only 15 bytes");
  // The first bytes of a PNG file, then some IHDR-like bytes.
  static const char kPng[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0";
  const std::string png(kPng, sizeof kPng - 1);
  EXPECT_EQ(rejection(png).code(), ErrorCode::kCorruptFile);
  EXPECT_EQ(rejection(std::string(1000, '\0')).code(), ErrorCode::kCorruptFile);
  SentencepieceLimits tiny;
  tiny.max_file_bytes = 1000;
  EXPECT_EQ(rejection(tiny_model(), tiny).code(), ErrorCode::kResourceLimit);
  SentencepieceLimits few;
  few.max_pieces = 100;
  EXPECT_NE(std::string(rejection(tiny_model(), few).what()).find("more than 100 pieces"),
            std::string::npos);
}

// --- precompiled_charsmap ------------------------------------------------------------------

// Payload range of the first length-delimited `field` in bytes [begin, end) (test inputs
// are well-formed, so no bounds checks beyond the loop).
std::pair<size_t, size_t> find_len_field(const std::string& m, size_t begin, size_t end,
                                         uint32_t field) {
  auto varint = [&](size_t* p) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<unsigned char>(m[(*p)++]);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (b < 0x80) return v;
    }
  };
  size_t p = begin;
  while (p < end) {
    const uint64_t tag = varint(&p);
    switch (tag & 7) {
      case 0:
        varint(&p);
        break;
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2: {
        const size_t n = varint(&p);
        if ((tag >> 3) == field) return {p, p + n};
        p += n;
        break;
      }
    }
  }
  return {0, 0};
}

// The byte range of a model's normalizer_spec.precompiled_charsmap.
std::pair<size_t, size_t> charsmap_range(const std::string& model) {
  const auto [nb, ne] = find_len_field(model, 0, model.size(), 3);
  return find_len_field(model, nb, ne, 2);
}

std::string charsmap_of(const std::string& model) {
  const auto [b, e] = charsmap_range(model);
  return model.substr(b, e - b);
}

std::string with_charsmap(std::string_view blob) {
  return spm::pieces_six() + spm::trainer_spec() + spm::normalizer_spec(std::string(blob));
}

TEST(SentencepieceModelCheck, RealCharsmapIsFoundAndAccepted) {
  const std::string blob = charsmap_of(tiny_bpe_model());
  ASSERT_GT(blob.size(), 1000u);
  EXPECT_TRUE(check_sentencepiece_model(with_charsmap(blob), "m").has_charsmap);
  expect_safe_in_sentencepiece(with_charsmap(blob));
}

TEST(SentencepieceModelCheck, RejectsMalformedCharsmaps) {
  const std::string blob = charsmap_of(tiny_bpe_model());
  uint32_t trie;
  std::memcpy(&trie, blob.data(), 4);
  auto with_trie_size = [&](uint32_t t) {
    std::string b = blob;
    std::memcpy(b.data(), &t, 4);
    return b;
  };
  expect_corrupt(with_charsmap(std::string("\x04\0\0\0", 4)), "shorter than a header");
  expect_corrupt(with_charsmap(with_trie_size(trie + 2)), "does not fit");
  expect_corrupt(with_charsmap(with_trie_size(blob.size() - 3)), "does not fit");
  expect_corrupt(with_charsmap(with_trie_size(0)), "does not fit");
  // Cutting the array short leaves units pointing past its end.
  expect_corrupt(with_charsmap(with_trie_size(256)), "outside the 64-unit array");
  std::string no_nul = blob;
  no_nul.back() = 'x';
  expect_corrupt(with_charsmap(no_nul), "not NUL-terminated");
  // Normalised strings cut short: the values point past them.
  std::string short_strings = blob.substr(0, 4 + trie + 1);
  short_strings.back() = '\0';
  expect_corrupt(with_charsmap(short_strings), "outside the normalised strings");
}

// Units hand-built in darts-clone's layout: a 512-unit array whose root sits in block 0 and
// whose children live in block 1.
struct TrieBuilder {
  // Unused units get bit 31 set, so that their label matches no input byte.
  static constexpr uint32_t kUnused = 0x80000000u;
  std::vector<uint32_t> units = std::vector<uint32_t>(512, kUnused);
  std::string normalized = std::string("x\0", 2);
  static uint32_t with_offset(uint32_t unit, uint32_t offset) { return unit | (offset << 10); }
  // Makes unit `at` (reached by `label`) have its children block at `base`.
  void node(size_t at, uint8_t label, size_t base, bool leaf) {
    units[at] = with_offset(label | (leaf ? 1u << 8 : 0u), static_cast<uint32_t>(at ^ base));
  }
  std::string blob() const {
    std::string out(4, '\0');
    const uint32_t n = static_cast<uint32_t>(units.size() * 4);
    std::memcpy(out.data(), &n, 4);
    out.append(reinterpret_cast<const char*>(units.data()), n);
    return out + normalized;
  }
};

TEST(SentencepieceModelCheck, RejectsCyclicTrie) {
  TrieBuilder t;
  t.units[0] = TrieBuilder::with_offset(0, 256);  // root's children at 256 ^ c
  t.node(256 ^ 'a', 'a', 256, false);             // "a" → children at 256 again: a cycle
  expect_corrupt(with_charsmap(t.blob()), "cycle");
}

TEST(SentencepieceModelCheck, RejectsMoreThan32MatchesOnAPath) {
  // A chain of leaves "a", "aa", "aaa", ...: each unit's children block alternates between
  // two blocks, values in block 0 (the root's block is fine: labels there never match).
  for (int chain : {32, 33}) {
    TrieBuilder t;
    t.units.assign(256 * (chain + 2), TrieBuilder::kUnused);
    t.units[0] = TrieBuilder::with_offset(0, 256);
    for (int d = 0; d < chain; ++d) {
      const size_t here = (256 * (d + 1)) ^ 'a';
      const size_t next = 256 * (d + 2);
      t.node(here, 'a', next, true);
      t.units[next] = 0x80000000u | 0;  // value unit: offset 0 into the strings
    }
    const std::string m = with_charsmap(t.blob());
    if (chain == 32) {
      EXPECT_NO_THROW(check_sentencepiece_model(m, "m"));
      expect_safe_in_sentencepiece(m);
    } else {
      expect_corrupt(m, "more than 32 rules");
    }
  }
}

// --- whole-file mutations ------------------------------------------------------------------

TEST(SentencepieceModelCheck, EveryTruncationIsRejectedOrSafe) {
  const std::string full = tiny_model();
  int accepted = 0;
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string cut = full.substr(0, n);
    try {
      check_sentencepiece_model(cut, "cut.model");
      ++accepted;  // cut at a field boundary: still a complete, valid message
      expect_safe_in_sentencepiece(cut);
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kCorruptFile) << n << ": " << e.what();
    }
  }
  // Only cuts after the trainer spec (pieces + byte_fallback complete) can be valid.
  EXPECT_LE(accepted, 2);
}

void mutate_and_check(const std::string& base, size_t begin, size_t end, int rounds,
                      uint32_t seed) {
  std::mt19937 rng(seed);
  int accepted = 0;
  for (int r = 0; r < rounds; ++r) {
    std::string m = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = begin + rng() % (end - begin);
      if (rng() % 2)
        m[at] = static_cast<char>(rng());
      else
        m[at] ^= static_cast<char>(1u << (rng() % 8));
    }
    try {
      check_sentencepiece_model(m, "mutant.model");
      ++accepted;
      expect_safe_in_sentencepiece(m);
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    }
  }
  ::testing::Test::RecordProperty("accepted", accepted);
}

TEST(SentencepieceModelCheck, RandomMutationsAreRejectedOrSafe) {
  const std::string m = tiny_model();
  mutate_and_check(m, 0, m.size(), 1500, 1);
}

TEST(SentencepieceModelCheck, CharsmapMutationsAreRejectedOrSafe) {
  const std::string m = tiny_bpe_model();
  const auto [b, e] = charsmap_range(m);
  ASSERT_LT(b, e);
  mutate_and_check(m, b, e, 1500, 2);
}

// --- vocabulary against config -------------------------------------------------------------

TEST(SentencepieceModelCheck, VocabularyMatchesConfig) {
  const SentencepieceModelInfo info = check_sentencepiece_model(tiny_model(), "tiny.model");
  const std::map<std::string, int32_t> special = {
      {"<|endofchunk|>", 400}, {"<image>", 401}, {"<PAD>", 402}};
  EXPECT_NO_THROW(check_vocabulary(info, special, 403, "tiny.model"));
  // A special string may name an existing piece.
  auto with_eos = special;
  with_eos["</s>"] = 2;
  EXPECT_NO_THROW(check_vocabulary(info, with_eos, 403, "tiny.model"));

  auto code = [&](const std::map<std::string, int32_t>& s, int64_t vocab) {
    try {
      check_vocabulary(info, s, vocab, "tiny.model");
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code(special, 402), ErrorCode::kInvalidConfig);  // id 402 outside
  EXPECT_EQ(code(special, 404), ErrorCode::kModelMismatch);  // one row without a token
  EXPECT_EQ(code(special, 50), ErrorCode::kModelMismatch);   // 50 vs 400 pieces
  EXPECT_EQ(code({{"<image>", 400}, {"<PAD>", 402}}, 403), ErrorCode::kModelMismatch);  // a gap
  EXPECT_EQ(code({{"<image>", 400}, {"<img>", 400}}, 401), ErrorCode::kInvalidConfig);
  EXPECT_EQ(code({{"", 400}}, 401), ErrorCode::kInvalidConfig);
  EXPECT_EQ(code({{"\xff", 400}}, 401), ErrorCode::kInvalidConfig);
  EXPECT_EQ(code({{"<x>", -1}}, 400), ErrorCode::kInvalidConfig);
  try {
    check_vocabulary(info, special, 404, "tiny.model");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "tiny.model: vocabulary mismatch: 400 sentencepiece pieces + 3 added special "
                 "tokens = 403, but config lm.vocab_size is 404");
  }
}

}  // namespace
}  // namespace flamingo::text
