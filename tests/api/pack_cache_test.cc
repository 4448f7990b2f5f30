// ModelOptions::pack_cache_dir: packed weights kept on disk between loads. A load from the
// cache must compute exactly what a load that packs does, and a damaged, stale or unwritable
// cache must never fail a load or change its results.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "flamingo/flamingo.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return testing::test_data_dir() / "parity" / name; }

std::shared_ptr<const Model> load(const fs::path& dir, const fs::path& cache = {}) {
  ModelOptions o;
  o.threads = 2;
  o.pack_cache_dir = cache.string();
  return Model::load(dir.string(), o);
}

// Token ids and the bits of their log-probabilities for a greedy caption of a fixed image:
// every packed matrix of the model (vision convs, resampler, gated blocks, LM) takes part.
std::vector<uint32_t> run(const std::shared_ptr<const Model>& m) {
  std::vector<uint8_t> rgb(size_t{48} * 40 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>((i * 53 + 7) % 251);
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.stop_at_endofchunk = false;
  g.stop_at_eos = false;
  Session s(m);
  const GenerateResult r =
      s.generate(Prompt(m->info().default_prompt, {Image::from_rgb(48, 40, rgb.data())}), g);
  std::vector<uint32_t> out;
  for (const TokenInfo& t : r.tokens) {
    uint32_t bits = 0;
    std::memcpy(&bits, &t.logprob, 4);
    out.push_back(static_cast<uint32_t>(t.id));
    out.push_back(bits);
  }
  return out;
}

fs::path only_file(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  EXPECT_EQ(files.size(), 1u) << dir;
  return files.empty() ? fs::path() : files[0];
}

// A cache file split into its data, its JSON index and the 16-byte tail (length, magic).
struct CacheFile {
  std::string data, index, magic;
  explicit CacheFile(const std::string& bytes) {
    uint64_t n = 0;
    if (bytes.size() >= 16) std::memcpy(&n, bytes.data() + bytes.size() - 16, 8);
    EXPECT_LT(n, bytes.size());
    data = bytes.substr(0, bytes.size() - 16 - n);
    index = bytes.substr(data.size(), n);
    magic = bytes.substr(bytes.size() - 8);
  }
  // The file again, with `idx` as its index.
  std::string with_index(const std::string& idx) const {
    const uint64_t n = idx.size();
    return data + idx + std::string(reinterpret_cast<const char*>(&n), 8) + magic;
  }
  // With field f (0 n, 1 k, 2 offset, 3 bytes) of the first entry's first part replaced.
  std::string with_part_field(int f, const std::function<uint64_t(uint64_t)>& change) const {
    size_t begin = index.find("\"parts\":[[");
    EXPECT_NE(begin, std::string::npos);
    begin += 10;
    for (int i = 0; i < f; ++i) begin = index.find(',', begin) + 1;
    const size_t end = index.find_first_of(",]", begin);
    std::string idx = index;
    idx.replace(begin, end - begin,
                std::to_string(change(std::stoull(index.substr(begin, end - begin)))));
    return with_index(idx);
  }
  std::string with_replaced(const std::string& from, const std::string& to) const {
    std::string idx = index;
    const size_t at = idx.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) idx.replace(at, from.size(), to);
    return with_index(idx);
  }
};

// A fixture model's output loaded without a cache, and a cache directory holding the file its
// first load with the cache wrote.
struct WrittenCache {
  fs::path model;
  std::vector<uint32_t> want;
  testing::TempDir dir;
  fs::path file;
  std::string good;
  explicit WrittenCache(const std::string& name) : model(fixture(name)), want(run(load(model))) {
    load(model, dir.path());
    file = only_file(dir.path());
    good = testing::read_file(file);
  }
};

// Standardised f32 convs (paper, idefics) and folded quantised ones (q4_0), with the
// matrices of every weight type the fixtures hold.
TEST(PackCache, SecondLoadMapsTheFileAndComputesTheSame) {
  for (const char* name : {"paper", "idefics", "quant_q4_0", "quant_q8_0"}) {
    SCOPED_TRACE(name);
    testing::TempDir cache;
    const auto want = run(load(fixture(name)));
    const auto first = load(fixture(name), cache.path());
    EXPECT_EQ(first->info().pack_cache, "written");
    EXPECT_EQ(run(first), want);
    const auto second = load(fixture(name), cache.path());
    EXPECT_EQ(second->info().pack_cache, "hit");
    EXPECT_EQ(run(second), want);
    EXPECT_EQ(load(fixture(name))->info().pack_cache, "off");
  }
}

// Every way a cache file can be damaged: the load packs again, computes the same, says why,
// and replaces the file with a good one.
TEST(PackCache, DamagedFileIsIgnoredAndRewritten) {
  const WrittenCache w("paper");
  const std::string& good = w.good;
  const CacheFile c(good);
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"truncated to half", good.substr(0, good.size() / 2)},
      {"truncated to 10 bytes", good.substr(0, 10)},
      {"no magic", good.substr(0, good.size() - 1) + "X"},
      {"index length past the start", good.substr(0, good.size() - 16) +
                                          std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) +
                                          c.magic},
      {"index not JSON", c.with_index(std::string(c.index.size(), '{'))},
      {"index truncated", c.with_index(c.index.substr(0, c.index.size() / 2))},
      {"index of another key", c.with_replaced("\"key\":\"", "\"key\":\"0")},
      {"unknown weight type", c.with_replaced("\"type\":\"f32\"", "\"type\":\"f31\"")},
      {"part outside the file", c.with_part_field(2, [](uint64_t) { return uint64_t{1} << 40; })},
      {"part not aligned", c.with_part_field(2, [](uint64_t o) { return o + 64; })},
      {"part past the data", c.with_part_field(3, [&](uint64_t) { return c.data.size(); })},
  };
  for (const auto& [what, bytes] : damaged) {
    SCOPED_TRACE(what);
    testing::write_file(w.file, bytes);
    const auto m = load(w.model, w.dir.path());
    EXPECT_EQ(m->info().pack_cache.rfind("rewritten (", 0), 0u) << m->info().pack_cache;
    EXPECT_EQ(run(m), w.want);
    EXPECT_EQ(testing::read_file(only_file(w.dir.path())), good);
  }
}

// An entry that parses but does not fit the model (here a size one cache line short of its
// shape's packed size) is packed afresh, and the file rewritten.
TEST(PackCache, EntriesThatDoNotFitArePackedAgain) {
  const WrittenCache w("openflamingo");
  testing::write_file(w.file,
                      CacheFile(w.good).with_part_field(3, [](uint64_t b) { return b - 64; }));
  const auto m = load(w.model, w.dir.path());
  EXPECT_EQ(m->info().pack_cache.rfind("rewritten (the file lacked 1 of ", 0), 0u)
      << m->info().pack_cache;
  EXPECT_EQ(run(m), w.want);
  EXPECT_EQ(testing::read_file(w.file), w.good);
  EXPECT_EQ(load(w.model, w.dir.path())->info().pack_cache, "hit");
}

// Another weight file (here: the same bytes with another modification time) is another key:
// its cache is a new file, and the old one is never read for it.
TEST(PackCache, ChangedWeightFilesGetTheirOwnFile) {
  testing::TempDir models, cache;
  const fs::path copy = models.path() / "m";
  fs::create_directory(copy);
  for (const auto& e : fs::directory_iterator(fixture("paper")))
    if (e.is_regular_file()) fs::copy_file(e.path(), copy / e.path().filename());
  EXPECT_EQ(load(copy, cache.path())->info().pack_cache, "written");
  const fs::path weights = copy / "model.safetensors";
  fs::last_write_time(weights, fs::last_write_time(weights) + std::chrono::hours(1));
  const auto m = load(copy, cache.path());
  EXPECT_EQ(m->info().pack_cache, "written");
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(cache.path())) ++files;
  EXPECT_EQ(files, 2u);
  EXPECT_EQ(run(m), run(load(fixture("paper"))));
}

TEST(PackCache, UnwritableDirectoryDoesNotFailTheLoad) {
  testing::TempDir tmp;
  testing::write_file(tmp.path() / "a-file", "x");
  const auto m = load(fixture("paper"), tmp.path() / "a-file" / "cache");
  EXPECT_EQ(m->info().pack_cache.rfind("not written (", 0), 0u) << m->info().pack_cache;
  EXPECT_EQ(run(m), run(load(fixture("paper"))));
}

}  // namespace
}  // namespace flamingo
