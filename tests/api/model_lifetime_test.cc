// Loading and dropping a model many times gives everything back (reliability spec S5): the
// weight files are unmapped, the pool's threads have exited, and resident memory returns to
// where it was after the first round.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "flamingo/flamingo.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path demo_dir() { return testing::test_data_dir() / ".." / ".." / "models" / "demo"; }

// Lines of /proc/self/maps that map a file of `dir`.
int mappings_of(const fs::path& dir) {
  const std::string canonical = fs::canonical(dir).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) n += line.find(canonical) != std::string::npos;
  return n;
}

TEST(ModelLifetime, HundredLoadsGiveBackMappingsThreadsAndMemory) {
  if (!fs::exists(demo_dir() / "config.json")) GTEST_SKIP() << "no models/demo in this checkout";
  const Image img = Image::from_file((demo_dir() / "examples" / "scene1.png").string());
  GenerateOptions g;
  g.max_new_tokens = 4;
  auto round = [&](int i) {
    ModelOptions mo;
    mo.threads = 2;
    const std::shared_ptr<const Model> m = Model::load(demo_dir().string(), mo);
    EXPECT_GT(mappings_of(demo_dir()), 0) << "the weights are expected to be mapped";
    if (i % 10 == 0) Session(m).generate(Prompt(m->info().default_prompt, {img}), g);
  };
  const long threads_before = testing::proc_status("Threads");
  round(0);  // the first round sets up what stays for the process (allocator arenas, ...)
  EXPECT_EQ(mappings_of(demo_dir()), 0);
  const long rss_after_first = testing::proc_status("VmRSS");
  for (int i = 1; i < 100; ++i) round(i);
  EXPECT_EQ(mappings_of(demo_dir()), 0) << "a model's files stay mapped after it was dropped";
  EXPECT_EQ(testing::proc_status("Threads"), threads_before) << "pool threads outlived their model";
  const long growth_kb = testing::proc_status("VmRSS") - rss_after_first;
  std::printf("RSS after the first round %ld kB, after 100 rounds %+ld kB\n", rss_after_first,
              growth_kb);
  // One demo model is 4.5 MB of weights plus as much packed: keeping even a tenth of each
  // round's memory would grow RSS by tens of MB. (ASan keeps freed memory in quarantine, so
  // there LeakSanitizer is the check instead.)
  if (!testing::kUnderAddressSanitizer) EXPECT_LT(growth_kb, 8 * 1024);
}

}  // namespace
}  // namespace flamingo
