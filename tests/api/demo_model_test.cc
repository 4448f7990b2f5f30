// The shipped demo model (models/demo) through the public API against the PyTorch model's
// greedy outputs on the same prompts (tests/data/demo/goldens.tsv, written by
// tools/demo/make_goldens.py): captions of the example images and 2-shot count, colour and
// shape answers. The engine must produce the same token ids, not just similar text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "flamingo/flamingo.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path demo_dir() { return testing::test_data_dir() / ".." / ".." / "models" / "demo"; }

struct Golden {
  std::string prompt;
  std::vector<std::string> images;
  std::vector<int32_t> ids;
  std::string text;
  int line = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

std::vector<Golden> load_goldens() {
  std::ifstream in(testing::test_data_dir() / "demo" / "goldens.tsv");
  std::vector<Golden> out;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) continue;
    auto cols = split(line, '\t');
    if (cols.size() < 4)
      ADD_FAILURE() << "goldens.tsv line " << n << ": " << cols.size() << " columns";
    if (cols.size() < 4) continue;
    Golden g{cols[0], split(cols[1], ','), {}, cols[3], n};
    for (const auto& id : split(cols[2], ' '))
      if (!id.empty()) g.ids.push_back(std::stoi(id));
    out.push_back(std::move(g));
  }
  return out;
}

TEST(DemoModel, GreedyOutputsEqualPyTorch) {
  if (!fs::exists(demo_dir() / "config.json")) GTEST_SKIP() << "no models/demo in this checkout";
  const auto goldens = load_goldens();
  ASSERT_GE(goldens.size(), 10u);
  ModelOptions mo;
  mo.threads = 2;
  auto model = Model::load(demo_dir().string(), mo);
  Session session(model);
  GenerateOptions opt;
  opt.max_new_tokens = 64;
  for (const Golden& g : goldens) {
    std::vector<Media> media;
    for (const auto& name : g.images)
      media.push_back(Image::from_file((demo_dir() / "examples" / name).string()));
    GenerateResult r = session.generate(Prompt(g.prompt, media), opt);
    std::vector<int32_t> ids;
    for (const auto& t : r.tokens) ids.push_back(t.id);
    // The engine reports the stop token it generated; the goldens end before it.
    if (r.stop_reason == StopReason::kEndOfChunk || r.stop_reason == StopReason::kEos) {
      ASSERT_FALSE(ids.empty()) << "line " << g.line;
      ids.pop_back();
    }
    EXPECT_EQ(ids, g.ids) << "goldens.tsv line " << g.line << ": " << g.prompt << " on "
                          << g.images.front() << "...\n  engine:  " << r.text
                          << "\n  PyTorch: " << g.text;
  }
}

}  // namespace
}  // namespace flamingo
