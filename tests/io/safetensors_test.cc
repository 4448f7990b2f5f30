#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "support/error_matchers.h"
#include "support/safetensors_writer.h"
#include "support/test_util.h"

namespace flamingo::io {
namespace {

using flamingo::testing::expect_error;
using flamingo::testing::safetensors_bytes;
using flamingo::testing::safetensors_raw;
using flamingo::testing::TensorSpec;

constexpr const char* kSrc = "model.safetensors";

SafetensorsFile parse(const std::string& bytes) {
  return SafetensorsFile::from_memory(bytes, kSrc);
}

// A header padded to a multiple of 8 so F32 data stays aligned.
std::string padded(std::string header) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

// One F32 [2] tensor "w" with the given entry text; the data section holds `data_bytes` bytes.
std::string one_entry(const std::string& entry, size_t data_bytes = 8) {
  return safetensors_raw(padded("{\"w\":" + entry + "}"), std::string(data_bytes, '\0'));
}

void expect_corrupt(const std::string& bytes, std::initializer_list<std::string> needles,
                    ErrorCode code = ErrorCode::kCorruptFile) {
  std::vector<std::string> all(needles);
  all.push_back(kSrc);
  try {
    parse(bytes);
    ADD_FAILURE() << "parsed without error";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    for (const auto& n : all)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message lacks \"" << n << "\": " << e.what();
  }
}

// ---- Good files -------------------------------------------------------------------------------

std::vector<TensorSpec> every_dtype() {
  using flamingo::testing::filled_tensor;
  return {
      filled_tensor("a.f64", "F64", {2, 3}),   filled_tensor("b.i64", "I64", {3}),
      filled_tensor("c.u64", "U64", {1}),      filled_tensor("d.f32", "F32", {4, 1, 2}),
      filled_tensor("e.i32", "I32", {5}),      filled_tensor("f.u32", "U32", {1}),
      filled_tensor("g.f16", "F16", {3, 3}),   filled_tensor("h.bf16", "BF16", {7}),
      filled_tensor("i.i16", "I16", {2}),      filled_tensor("j.u16", "U16", {1}),
      filled_tensor("k.i8", "I8", {3, 5}),     filled_tensor("l.u8", "U8", {9}),
      filled_tensor("m.bool", "BOOL", {2, 2}),
  };
}

void expect_same_tensors(const SafetensorsFile& f, const std::vector<TensorSpec>& specs) {
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (const auto& s : specs) {
    const TensorView* t = f.find(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    EXPECT_EQ(dtype_name(t->dtype), s.dtype);
    EXPECT_EQ(t->shape, s.shape);
    ASSERT_EQ(t->nbytes, s.bytes.size());
    EXPECT_EQ(std::memcmp(t->data, s.bytes.data(), s.bytes.size()), 0) << s.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % dtype_size(t->dtype), 0u) << s.name;
    EXPECT_EQ(t->file, f.source());
  }
}

TEST(Safetensors, RoundTripsEveryDtypeFromMemory) {
  const auto specs = every_dtype();
  const auto f = parse(safetensors_bytes(specs, {{"format", "pt"}}));
  expect_same_tensors(f, specs);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Safetensors, RoundTripsThroughMmapAndRead) {
  flamingo::testing::TempDir dir;
  const auto specs = every_dtype();
  const auto path = dir.path() / "w.safetensors";
  flamingo::testing::write_safetensors(path, specs);
  for (MapMode mode : {MapMode::kMmap, MapMode::kRead}) {
    const auto f = SafetensorsFile::open(path, mode);
    EXPECT_EQ(f.bytes().is_mmapped(), mode == MapMode::kMmap);
    expect_same_tensors(f, specs);
    // Zero-copy: views point into the file's bytes.
    const TensorView* t = f.find("d.f32");
    EXPECT_EQ(t->data, f.bytes().data() + 8 + f.header_bytes() + t->offset);
  }
}

TEST(Safetensors, AcceptsScalarsEmptyTensorsAndNoTensors) {
  using flamingo::testing::f32_tensor;
  const std::vector<TensorSpec> specs = {f32_tensor("scalar", {}, {3.5f}),
                                         f32_tensor("empty", {0, 4}, {}),
                                         f32_tensor("after", {1}, {1.f})};
  const auto f = parse(safetensors_bytes(specs));
  EXPECT_EQ(f.find("scalar")->numel, 1);
  EXPECT_EQ(f.find("empty")->numel, 0);
  EXPECT_EQ(f.find("empty")->nbytes, 0u);
  EXPECT_EQ(read_f32(*f.find("scalar"))[0], 3.5f);
  EXPECT_TRUE(parse(safetensors_raw("{}      ", "")).tensors().empty());
}

TEST(Safetensors, MovedFileKeepsItsViews) {
  const auto specs = every_dtype();
  auto f = parse(safetensors_bytes(specs));
  SafetensorsFile g = std::move(f);
  expect_same_tensors(g, specs);
}

// ---- Header length ----------------------------------------------------------------------------

TEST(SafetensorsRules, FileShorterThanLengthField) {
  for (size_t n = 0; n < 8; ++n) expect_corrupt(std::string(n, '\0'), {"too short"});
}

TEST(SafetensorsRules, HeaderLengthOverLimit) {
  expect_corrupt(flamingo::testing::le64(100'000'001) + "{}", {"exceeds the limit"});
  expect_corrupt(flamingo::testing::le64(~uint64_t{0}) + "{}", {"exceeds the limit"});
}

TEST(SafetensorsRules, HeaderLengthPastEndOfFile) {
  expect_corrupt(flamingo::testing::le64(100) + "{}      ", {"past the end of the file"});
}

// ---- Header text ------------------------------------------------------------------------------

TEST(SafetensorsRules, HeaderMustStartWithBrace) {
  expect_corrupt(safetensors_raw(" {}     ", ""), {"start with '{'"});
  expect_corrupt(safetensors_raw("[]      ", ""), {"start with '{'"});
  expect_corrupt(safetensors_raw("", ""), {"start with '{'"});
}

TEST(SafetensorsRules, OnlySpacePaddingAfterHeader) {
  expect_corrupt(safetensors_raw("{}\n     ", ""), {"space padding"});
  expect_corrupt(safetensors_raw("{}{}    ", ""), {"invalid JSON"});
  expect_corrupt(safetensors_raw(std::string("{}  \0   ", 8), ""), {"space padding"});
}

TEST(SafetensorsRules, InvalidJson) {
  expect_corrupt(safetensors_raw(padded("{\"w\": {\"dtype\": }"), ""), {"invalid JSON"});
  expect_corrupt(safetensors_raw(padded("{\"w\" 1}"), ""), {"invalid JSON"});
  expect_corrupt(safetensors_raw(padded("{\"w\": NaN}"), ""), {"invalid JSON"});
}

TEST(SafetensorsRules, InvalidUtf8) {
  expect_corrupt(safetensors_raw(padded("{\"\xff\xfe\": 1}"), ""), {"invalid JSON"});
  expect_corrupt(safetensors_raw(padded("{\"\xc0\xaf\": 1}"), ""), {"invalid JSON"});
}

TEST(SafetensorsRules, DuplicateTensorName) {
  // Identical duplicates: a last-wins parser would accept this silently.
  const std::string e = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_corrupt(safetensors_raw(padded("{\"w\":" + e + ",\"w\":" + e + "}"), std::string(8, 0)),
                 {"duplicate key \"w\""});
}

TEST(SafetensorsRules, DuplicateKeyInsideEntry) {
  expect_corrupt(one_entry(R"({"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]})"),
                 {"duplicate key \"dtype\"", "w"});
  expect_corrupt(safetensors_raw(padded(R"({"__metadata__":{"a":"1","a":"2"}})"), ""),
                 {"duplicate key \"a\"", "__metadata__"});
}

TEST(SafetensorsRules, NestingTooDeep) {
  expect_corrupt(
      safetensors_raw(padded("{\"w\":" + std::string(100, '[') + std::string(100, ']') + "}"), ""),
      {"nested deeper"});
}

TEST(SafetensorsRules, EntryNotAnObject) {
  expect_corrupt(one_entry("[1,2]"), {"tensor \"w\"", "not an object"});
  expect_corrupt(one_entry("\"F32\""), {"tensor \"w\"", "not an object"});
}

TEST(SafetensorsRules, MetadataMustBeObjectOfStrings) {
  expect_corrupt(safetensors_raw(padded(R"({"__metadata__":["a"]})"), ""),
                 {"__metadata__", "not an object"});
  expect_corrupt(safetensors_raw(padded(R"({"__metadata__":{"n":1}})"), ""),
                 {"__metadata__ value \"n\"", "not a string"});
  expect_corrupt(safetensors_raw(padded(R"({"__metadata__":{"n":{"x":"y"}}})"), ""),
                 {"__metadata__ value \"n\"", "not a string"});
}

// ---- Entries ----------------------------------------------------------------------------------

TEST(SafetensorsRules, EntryMissingField) {
  expect_corrupt(one_entry(R"({"shape":[2],"data_offsets":[0,8]})"),
                 {"\"w\"", "missing field \"dtype\""});
  expect_corrupt(one_entry(R"({"dtype":"F32","data_offsets":[0,8]})"),
                 {"\"w\"", "missing field \"shape\""});
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[2]})"),
                 {"\"w\"", "missing field \"data_offsets\""});
}

TEST(SafetensorsRules, EntryUnknownField) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1})"),
                 {"\"w\"", "unexpected field \"extra\""});
}

TEST(SafetensorsRules, TensorNameEmptyOrTooLong) {
  const std::string e = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_corrupt(safetensors_raw(padded("{\"\":" + e + "}"), std::string(8, 0)), {"empty name"});
  expect_corrupt(
      safetensors_raw(padded("{\"" + std::string(1025, 'x') + "\":" + e + "}"), std::string(8, 0)),
      {"longer than the limit"});
}

TEST(SafetensorsRules, DtypeMustBeAKnownString) {
  expect_corrupt(one_entry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"),
                 {"\"w\"", "dtype is an integer"});
  expect_corrupt(one_entry(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})"),
                 {"\"w\"", "unknown dtype \"F33\""});
  expect_corrupt(one_entry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"),
                 {"\"w\"", "unknown dtype"});
}

TEST(SafetensorsRules, UnsupportedDtype) {
  expect_corrupt(one_entry(R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"),
                 {"\"w\"", "F8_E4M3 is not supported"}, ErrorCode::kUnsupported);
  expect_corrupt(one_entry(R"({"dtype":"F4","shape":[16],"data_offsets":[0,8]})"),
                 {"\"w\"", "F4 is not supported"}, ErrorCode::kUnsupported);
}

TEST(SafetensorsRules, ShapeMustBeArrayOfNonNegativeIntegers) {
  const auto entry = [](const std::string& shape) {
    return one_entry(R"({"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,8]})");
  };
  expect_corrupt(entry("2"), {"\"w\"", "shape is an integer, not an array"});
  expect_corrupt(entry("[-2]"), {"\"w\"", "shape[0] is -2"});
  expect_corrupt(entry("[2.0]"), {"\"w\"", "shape[0]", "not a non-negative integer"});
  expect_corrupt(entry("[1, 2.5]"), {"\"w\"", "shape[1]"});
  expect_corrupt(entry("[true]"), {"\"w\"", "shape[0]"});
  expect_corrupt(entry("[null]"), {"\"w\"", "shape[0]"});
  expect_corrupt(entry("[\"2\"]"), {"\"w\"", "shape[0]"});
  // Beyond 2^64: nlohmann reads it as a float, which must not pass as an integer.
  expect_corrupt(entry("[18446744073709551616]"), {"\"w\"", "shape[0]"});
  expect_corrupt(entry("[9223372036854775808]"), {"\"w\"", "too large"});
}

TEST(SafetensorsRules, ShapeRankBounded) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]})"),
                 {"\"w\"", "9 dimensions"});
  // Rank 8 is fine.
  EXPECT_NO_THROW(
      parse(one_entry(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,2],"data_offsets":[0,8]})")));
}

TEST(SafetensorsRules, ShapeProductOverflow) {
  // 2^62 · 4 wraps to 0 in 64 bits: a loader that multiplies blindly sees a 0-byte tensor.
  expect_corrupt(
      one_entry(R"({"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]})", 0),
      {"\"w\"", "element count that overflows"});
  // A later 0 must not hide the overflow.
  expect_corrupt(
      one_entry(R"({"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]})", 0),
      {"\"w\"", "overflows"});
  // [2^32, 2^32] (stable-diffusion.cpp#1876).
  expect_corrupt(
      one_entry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0),
      {"\"w\"", "overflows"});
}

TEST(SafetensorsRules, ByteSizeOverflow) {
  // 2^61 elements fit, 2^61 · 8 bytes do not.
  expect_corrupt(
      one_entry(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]})", 0),
      {"\"w\"", "byte size that overflows"});
}

TEST(SafetensorsRules, DataOffsetsMustBeTwoNonNegativeIntegers) {
  const auto entry = [](const std::string& off) {
    return one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":)" + off + "}");
  };
  expect_corrupt(entry("8"), {"\"w\"", "not an array of two integers"});
  expect_corrupt(entry("[0]"), {"\"w\"", "not an array of two integers"});
  expect_corrupt(entry("[0,4,8]"), {"\"w\"", "not an array of two integers"});
  expect_corrupt(entry("[-8,0]"), {"\"w\"", "not non-negative integers"});
  expect_corrupt(entry("[0,8.0]"), {"\"w\"", "not non-negative integers"});
  expect_corrupt(entry("[0,\"8\"]"), {"\"w\"", "not non-negative integers"});
  expect_corrupt(entry("[0,18446744073709551616]"), {"\"w\"", "not non-negative integers"});
}

TEST(SafetensorsRules, DataOffsetsBeginAfterEnd) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"),
                 {"\"w\"", "end before they begin"});
}

TEST(SafetensorsRules, DataOffsetsPastEndOfData) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4),
                 {"\"w\"", "past the end of the data section"});
  expect_corrupt(
      one_entry(
          R"({"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,18446744073709551615]})"),
      {"\"w\""});
}

TEST(SafetensorsRules, ByteLengthMustMatchShape) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
                 {"\"w\"", "needs 12"});
  expect_corrupt(one_entry(R"({"dtype":"F16","shape":[2],"data_offsets":[0,8]})"),
                 {"\"w\"", "needs 4"});
}

TEST(SafetensorsRules, DataMustStartAtZero) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                 {"\"w\"", "4 unused bytes"});
}

TEST(SafetensorsRules, NoHoleBetweenTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_corrupt(safetensors_raw(padded(h), std::string(12, 0)), {"\"b\"", "4 unused bytes"});
}

TEST(SafetensorsRules, NoOverlappingTensors) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_corrupt(safetensors_raw(padded(h), std::string(12, 0)), {"\"b\"", "overlaps", "\"a\""});
  // Two tensors over the same bytes (a file that expands when copied).
  const std::string same = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_corrupt(safetensors_raw(padded(same), std::string(8, 0)), {"overlaps"});
}

TEST(SafetensorsRules, NoTrailingBytes) {
  expect_corrupt(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 9),
                 {"1 trailing bytes"});
  expect_corrupt(safetensors_raw("{}      ", "x"), {"1 trailing bytes"});
}

TEST(SafetensorsRules, DataAlignedForDtype) {
  // Header of 2 bytes: the data section starts at file offset 10, which suits F16 but not F32.
  const std::string h = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string unpadded = h;
  unpadded.append((8 - unpadded.size() % 8) % 8 + 2, ' ');  // ≡ 2 (mod 8)
  expect_corrupt(safetensors_raw(unpadded, std::string(4, 0)), {"\"w\"", "not aligned"});
  // 1-byte dtypes never need alignment.
  const std::string i8 = R"({"w":{"dtype":"I8","shape":[3],"data_offsets":[0,3]}})";
  EXPECT_NO_THROW(parse(safetensors_raw(i8 + " ", std::string(3, 0))));
}

TEST(SafetensorsRules, TruncatedAtEveryByte) {
  const std::string good = safetensors_bytes(every_dtype());
  EXPECT_NO_THROW(parse(good));
  for (size_t n = 0; n < good.size(); ++n) {
    try {
      parse(good.substr(0, n));
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(ErrorCode::kCorruptFile))
          << n << ": " << e.what();
    }
  }
}

TEST(SafetensorsRules, RandomByteCorruptionNeverCrashes) {
  // Mutated good files must either parse or throw flamingo::Error, never anything else. The
  // libFuzzer target does this at scale; this keeps a cheap version in every test run.
  const std::string good = safetensors_bytes(every_dtype(), {{"k", "v"}});
  std::mt19937_64 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % b.size();
      switch (rng() % 3) {
        case 0:
          b[pos] = static_cast<char>(rng());
          break;
        case 1:
          b.erase(pos, 1);
          break;
        default:
          b.insert(pos, 1, "0123456789[]{},\"-e. "[rng() % 20]);
          break;
      }
    }
    try {
      const auto f = parse(b);
      for (const auto& t : f.tensors())
        ASSERT_LE(t.data + t.nbytes, f.bytes().data() + f.bytes().size());
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

// ---- fp32 helpers -----------------------------------------------------------------------------

TEST(SafetensorsRead, ConvertsHalfBfloatAndDouble) {
  using namespace flamingo::testing;
  const std::vector<float> v = {
      0.f, -1.5f, 3.25f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f};
  TensorSpec f64{"d", "F64", {6}, {}};
  for (float x : v) {
    double d = x;
    f64.bytes.append(reinterpret_cast<const char*>(&d), 8);
  }
  const auto f = parse(safetensors_bytes({f64, f32_tensor("s", {6}, v), f16_tensor("h", {6}, v),
                                          bf16_tensor("b", {2}, {1.5f, -2.f})}));
  EXPECT_EQ(read_f32(*f.find("d")), v);
  EXPECT_EQ(read_f32(*f.find("s")), v);
  EXPECT_EQ(read_f32(*f.find("h")), v);  // all exactly representable in fp16
  EXPECT_EQ(read_f32(*f.find("b")), (std::vector<float>{1.5f, -2.f}));
}

TEST(SafetensorsRead, HalfConversionMatchesEveryBitPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7c00u, 0x7c00u);
      continue;
    }
    EXPECT_EQ(flamingo::testing::float_to_half(f), h) << h;
  }
}

TEST(SafetensorsRead, NonFiniteValueNamesTensorAndElement) {
  using namespace flamingo::testing;
  const auto f = parse(safetensors_bytes({f32_tensor("lm.norm.weight", {3}, {1.f, NAN, 2.f}),
                                          f16_tensor("g", {2}, {1.f, INFINITY}),
                                          bf16_tensor("b", {2}, {-INFINITY, 0.f})}));
  expect_error([&] { read_f32(*f.find("lm.norm.weight")); }, ErrorCode::kCorruptFile,
               {kSrc, "lm.norm.weight", "element 1"});
  EXPECT_NO_THROW(read_f32(*f.find("lm.norm.weight"), /*check_finite=*/false));
  EXPECT_EQ(find_non_finite(*f.find("lm.norm.weight")), 1);
  EXPECT_EQ(find_non_finite(*f.find("g")), 1);
  EXPECT_EQ(find_non_finite(*f.find("b")), 0);
}

TEST(SafetensorsRead, RejectsIntegerDtypesAndWrongLength) {
  using namespace flamingo::testing;
  const auto f =
      parse(safetensors_bytes({f32_tensor("x", {2}, {1.f, 2.f}), filled_tensor("q", "I8", {4})}));
  expect_error([&] { read_f32(*f.find("q")); }, ErrorCode::kModelMismatch, {"\"q\"", "I8"});
  float out[3];
  expect_error([&] { read_f32_into(*f.find("x"), out, 3); }, ErrorCode::kInvalidArgument,
               {"\"x\"", "2 elements"});
  EXPECT_EQ(find_non_finite(*f.find("q")), std::nullopt);
}

// ---- ModelWeights -----------------------------------------------------------------------------

TEST(ModelWeights, MergesEveryShardOfADirectory) {
  using namespace flamingo::testing;
  TempDir dir;
  write_safetensors(dir.path() / "model-00001.safetensors", {f32_tensor("a", {1}, {1.f})});
  write_safetensors(dir.path() / "model-00002.safetensors",
                    {f32_tensor("b", {2}, {2.f, 3.f}), f32_tensor("c", {}, {4.f})});
  write_file(dir.path() / "config.json", "{}");
  write_file(dir.path() / "notes.safetensors.txt", "not weights");
  for (MapMode mode : {MapMode::kMmap, MapMode::kRead}) {
    const auto w = ModelWeights::open_directory(dir.path(), mode);
    EXPECT_EQ(w.size(), 3u);
    EXPECT_EQ(w.files().size(), 2u);
    EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(read_f32(w.get("b")), (std::vector<float>{2.f, 3.f}));
    EXPECT_NE(w.get("a").file.find("model-00001.safetensors"), std::string::npos);
    w.release(w.get("b"));
    EXPECT_EQ(read_f32(w.get("b")), (std::vector<float>{2.f, 3.f}));  // paged back in
    expect_error([&] { w.get("zz"); }, ErrorCode::kModelMismatch,
                 {dir.path().string(), "\"zz\" is missing"});
  }
}

TEST(ModelWeights, DuplicateTensorAcrossFiles) {
  using namespace flamingo::testing;
  TempDir dir;
  write_safetensors(dir.path() / "a.safetensors", {f32_tensor("x", {1}, {1.f})});
  write_safetensors(dir.path() / "b.safetensors", {f32_tensor("x", {1}, {1.f})});
  expect_error([&] { ModelWeights::open_directory(dir.path()); }, ErrorCode::kCorruptFile,
               {"\"x\"", "a.safetensors", "b.safetensors"});
}

TEST(ModelWeights, DirectoryProblems) {
  using namespace flamingo::testing;
  TempDir dir;
  expect_error([&] { ModelWeights::open_directory(dir.path()); }, ErrorCode::kIo,
               {"no *.safetensors"});
  expect_error([&] { ModelWeights::open_directory(dir.path() / "missing"); }, ErrorCode::kIo,
               {"missing", "no such directory"});
  write_file(dir.path() / "f", "x");
  expect_error([&] { ModelWeights::open_directory(dir.path() / "f"); }, ErrorCode::kIo,
               {"not a directory"});
  // A corrupt shard is reported with its own name.
  write_file(dir.path() / "bad.safetensors", "1234");
  expect_error([&] { ModelWeights::open_directory(dir.path()); }, ErrorCode::kCorruptFile,
               {"bad.safetensors", "too short"});
}

}  // namespace
}  // namespace flamingo::io
