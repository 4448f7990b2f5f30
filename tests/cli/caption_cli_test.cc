// flamingo-caption on bad input, run as a separate process: unknown flags, missing values,
// non-numeric and negative numbers, missing or corrupt model directories, missing or corrupt
// images, markers that do not match the images, invalid UTF-8, memory running out (under
// address-space limits). Each must end with exactly one "error: ..." line on stderr naming the
// problem, nothing on stdout, the exit code --help documents, and no crash (a signal or a
// sanitizer report fails the test). Also: Ctrl+C during generation and during the model load
// exits 130, the same request in two processes, with 1 and with 2 threads, prints bitwise
// the same tokens and log-probabilities, and --query answers what each image gives alone. The
// model is the openflamingo parity fixture.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/config.h"
#include "support/model_fixture.h"
#include "support/test_util.h"

extern char** environ;

#ifndef FLAMINGO_CAPTION_BIN
#define FLAMINGO_CAPTION_BIN ""  // configured with FLAMINGO_BUILD_TOOLS=OFF
#endif

namespace flamingo {
namespace {

namespace fs = std::filesystem;

// Exit codes from flamingo-caption --help.
constexpr int kGeneration = 1, kUsage = 2, kModel = 3, kImage = 4, kOutOfMemory = 5,
              kInterrupted = 130;

struct CliRun {
  int exit_code = -1;
  int signal = 0;
  std::string out, err;
};

// Runs argv_storage (the program first) to completion. With `interrupt_when` non-empty, sends
// SIGINT as soon as stderr contains it (e.g. the first caption's timings line: the handler is
// installed and generation is under way).
CliRun spawn(std::vector<std::string> argv_storage, const std::string& interrupt_when) {
  testing::TempDir tmp;
  const fs::path out = tmp.path() / "stdout", err = tmp.path() / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  argv.reserve(argv_storage.size() + 1);
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  CliRun r;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    r.err = "posix_spawn failed";
    return r;
  }
  int status = 0;
  if (!interrupt_when.empty()) {
    // Poll rather than sleep a fixed time: a sanitizer build loads many times slower.
    for (;;) {
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      if (testing::read_file(err).find(interrupt_when) != std::string::npos) {
        kill(pid, SIGINT);
        waitpid(pid, &status, 0);
        break;
      }
      usleep(500);
    }
  } else {
    waitpid(pid, &status, 0);
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = testing::read_file(out);
  r.err = testing::read_file(err);
  return r;
}

CliRun run_cli(const std::vector<std::string>& args, const std::string& interrupt_when = "") {
  std::vector<std::string> argv = {FLAMINGO_CAPTION_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(std::move(argv), interrupt_when);
}

// flamingo-caption with its address space limited to `kib` KiB (the shell's ulimit -v, so the
// limit applies from the first instruction of the CLI, not of this test).
CliRun run_cli_with_address_space(int64_t kib, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/sh", "-c",
                                   "ulimit -v " + std::to_string(kib) + " && exec \"$0\" \"$@\"",
                                   FLAMINGO_CAPTION_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(std::move(argv), "");
}

fs::path fixture() { return testing::test_data_dir() / "parity" / "openflamingo"; }
std::string image() { return (fixture() / "images" / "0.png").string(); }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < s.size()) {
    size_t end = s.find('\n', begin);
    if (end == std::string::npos) end = s.size();
    lines.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

// Exactly one line on stderr, "error: " + a message containing `needle`; the given exit code.
void expect_error(const std::vector<std::string>& args, int code, const std::string& needle) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  std::string cmd;
  for (const auto& a : args) cmd += " '" + a + "'";
  SCOPED_TRACE("flamingo-caption" + cmd);
  const CliRun r = run_cli(args);
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; stderr:\n" << r.err;
  EXPECT_EQ(r.exit_code, code) << "stderr:\n" << r.err;
  const std::vector<std::string> lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
  EXPECT_EQ(lines[0].rfind("error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(needle), std::string::npos) << lines[0];
  EXPECT_EQ(r.out, "") << "nothing may be printed on stdout after an error";
}

TEST(CaptionCli, UnknownFlags) {
  expect_error({"--frobnicate", image()}, kUsage, "unknown option --frobnicate");
  expect_error({"-x", image()}, kUsage, "unknown option -x");
  expect_error({"---", image()}, kUsage, "unknown option");
}

TEST(CaptionCli, MissingValues) {
  for (const char* flag :
       {"-m", "--image", "-p", "-f", "-n", "-t", "--temp", "--top-k", "--top-p", "--min-p",
        "--repeat-penalty", "--beams", "-s", "--score", "--literal", "--pack-cache"})
    expect_error({image(), flag}, kUsage, std::string(flag) + " needs a value");
}

TEST(CaptionCli, NonNumericNumbers) {
  expect_error({"-n", "abc", image()}, kUsage, "-n: 'abc' is not a valid integer");
  expect_error({"-n", "12abc", image()}, kUsage, "is not a valid integer");
  expect_error({"-n", "", image()}, kUsage, "is not a valid integer");
  expect_error({"-t", "1.5", image()}, kUsage, "is not a valid integer");
  expect_error({"--temp", "warm", image()}, kUsage, "is not a valid number");
  expect_error({"--temp", "nan", image()}, kUsage, "--temp");
  expect_error({"--top-p", "0x", image()}, kUsage, "is not a valid number");
  expect_error({"-s", "seed", image()}, kUsage, "is not a valid integer");
  expect_error({"-n", "99999999999999999999", image()}, kUsage, "is not a valid integer");
}

TEST(CaptionCli, NegativeAndOutOfRangeCounts) {
  expect_error({"-n", "-1", image()}, kUsage, "out of range");
  expect_error({"-t", "-1", image()}, kUsage, "out of range");
  expect_error({"-t", "100000", image()}, kUsage, "out of range");
  expect_error({"--beams", "-2", image()}, kUsage, "out of range");
  expect_error({"--beams", "0", image()}, kUsage, "out of range");
  expect_error({"--top-k", "-5", image()}, kUsage, "out of range");
  expect_error({"--temp", "-1", image()}, kUsage, "out of range");
  expect_error({"--top-p", "1.5", image()}, kUsage, "out of range");
  expect_error({"-s", "-3", image()}, kUsage, "is not a valid integer");
}

TEST(CaptionCli, NoImageAndBadPromptFiles) {
  expect_error({}, kUsage, "no image given");
  expect_error({"-f", "/nonexistent/prompt.txt", image()}, kUsage,
               "cannot read /nonexistent/prompt.txt");
  expect_error({"-f", fixture().string(), image()}, kUsage, "is a directory");
}

TEST(CaptionCli, MissingOrCorruptModelDirectory) {
  expect_error({"-m", "/nonexistent/model", image()}, kModel, "/nonexistent/model");
  expect_error({"-m", image(), image()}, kModel, "not a directory");

  testing::TempDir empty;
  expect_error({"-m", empty.path().string(), image()}, kModel, "config.json");

  auto copy_fixture = [](const fs::path& to) {
    for (const auto& e : fs::directory_iterator(fixture()))
      if (e.is_regular_file()) fs::copy_file(e.path(), to / e.path().filename());
  };
  {
    testing::TempDir dir;
    copy_fixture(dir.path());
    fs::resize_file(dir.path() / "model.safetensors", 5000);
    expect_error({"-m", dir.path().string(), image()}, kModel, "model.safetensors");
  }
  {
    testing::TempDir dir;
    copy_fixture(dir.path());
    testing::write_file(dir.path() / "config.json", "{\"format_version\": 1, \"vision\": ");
    expect_error({"-m", dir.path().string(), image()}, kModel, "config.json");
  }
  {
    testing::TempDir dir;
    copy_fixture(dir.path());
    testing::write_file(dir.path() / "tokenizer.model", std::string(200, '\x0a'));
    expect_error({"-m", dir.path().string(), image()}, kModel, "tokenizer.model");
  }
  {
    testing::TempDir dir;
    copy_fixture(dir.path());
    fs::remove(dir.path() / "tokenizer.model");
    expect_error({"-m", dir.path().string(), image()}, kModel, "tokenizer.model");
  }
}

TEST(CaptionCli, MissingOrCorruptImages) {
  const std::string model = fixture().string();
  expect_error({"-m", model, "/nonexistent/cat.png"}, kImage, "/nonexistent/cat.png");
  expect_error({"-m", model, fixture().string()}, kImage, fixture().string());
  testing::TempDir tmp;
  const fs::path junk = tmp.path() / "junk.png";
  testing::write_file(junk, "this is not an image at all, just text pretending to be one");
  expect_error({"-m", model, junk.string()}, kImage, "junk.png");
  const fs::path empty = tmp.path() / "empty.jpg";
  testing::write_file(empty, "");
  expect_error({"-m", model, empty.string()}, kImage, "empty.jpg");
  const fs::path truncated = tmp.path() / "truncated.png";
  testing::write_file(truncated, testing::read_file(image()).substr(0, 60));
  expect_error({"-m", model, truncated.string()}, kImage, "truncated.png");
}

TEST(CaptionCli, PromptsThatDoNotFit) {
  const std::string model = fixture().string();
  expect_error({"-m", model, "-p", "<image><image>Output:", "--image", image()}, kUsage,
               "2 <image> markers but 1 image");
  expect_error({"-m", model, "-p", "<image>Output:", "--image", image(), "--image", image()},
               kUsage, "1 <image> markers but 2 images");
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "<image>";
  expect_error({"-m", model, "-p", many, "--image", image()}, kUsage, "10000 <image> markers");
  expect_error({"-m", model, "-p", "<image>caf\xC3 bad \xFF", "--image", image()}, kUsage,
               "not valid UTF-8");
  std::string long_prompt = "<image>";
  for (int i = 0; i < 3000; ++i) long_prompt += " word";
  expect_error({"-m", model, "-p", long_prompt, "--image", image()}, kUsage, "exceeds the context");
}

// --literal text is tokenised as text: a typed <image> asks for no image and a typed
// <|endofchunk|> is spelled in pieces, not the chunk token; -p and --literal keep their order.
TEST(CaptionCli, LiteralTextStaysText) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  auto prefill_tokens = [&](const std::vector<std::string>& prompt) {
    std::vector<std::string> args = {"-m",    fixture().string(), "--image", image(), "-n", "1",
                                     "--json"};
    args.insert(args.end(), prompt.begin(), prompt.end());
    const CliRun r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return -1;
    return nlohmann::json::parse(r.out)["timings"]["prefill_tokens"].get<int>();
  };
  // As template text the typed marker would need a second image (exit 2, tested above).
  EXPECT_GT(prefill_tokens({"-p", "<image>Output:", "--literal", "<image>"}),
            prefill_tokens({"-p", "<image>Output:"}));
  const int special = prefill_tokens({"-p", "<image>x<|endofchunk|>"});
  EXPECT_EQ(prefill_tokens({"-p", "<image>", "--literal", "x", "-p", "<|endofchunk|>"}), special);
  EXPECT_GT(prefill_tokens({"-p", "<image>", "--literal", "x<|endofchunk|>"}), special + 1);
}

// --query runs a few-shot prompt once per image, each filling its last marker: every answer
// is what the prompt with that image gives on its own, and the queries after the first run
// only from their marker on (the session keeps the examples' keys and values).
TEST(CaptionCli, QueriesRunTheFewShotPromptOncePerImage) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  const std::string model = fixture().string();
  const std::string shots =
      "<image>An apple.<|endofchunk|><image>A dog.<|endofchunk|><image>This photo shows, in a "
      "few words:";
  const std::string img0 = image(), img1 = (fixture() / "images" / "1.png").string(),
                    img2 = (fixture() / "images" / "2.png").string();
  const CliRun r = run_cli({"-m", model, "--json", "-n", "6", "-p", shots, "--image", img0,
                            "--image", img1, "--query", img2, "--query", img0});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  const std::string queries[] = {img2, img0};
  for (size_t q = 0; q < 2; ++q) {
    nlohmann::json got = nlohmann::json::parse(lines[q]);
    EXPECT_EQ(got["image"], queries[q]);
    const int kept = got["timings"]["prompt_tokens_reused"].get<int>();
    if (q == 0)
      EXPECT_EQ(kept, 0);
    else
      EXPECT_GT(kept, 0) << "the second query reruns the examples";
    const CliRun alone = run_cli({"-m", model, "--json", "-n", "6", "-p", shots, "--image", img0,
                                  "--image", img1, "--image", queries[q]});
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    nlohmann::json want = nlohmann::json::parse(alone.out);
    EXPECT_EQ(got["timings"]["prefill_tokens"].get<int>() + kept,
              want["timings"]["prefill_tokens"].get<int>());
    for (nlohmann::json* j : {&got, &want}) {
      j->erase("timings");
      j->erase("image");
    }
    EXPECT_FALSE(got["tokens"].empty());
    EXPECT_EQ(got, want) << "query " << q << ": tokens and log-probabilities bitwise";
  }
  // Scoring: one JSON object per query, each with the scores of the prompt run alone.
  const CliRun sc =
      run_cli({"-m", model, "--json", "-p", shots, "--image", img0, "--image", img1, "--query",
               img2, "--query", img0, "--score", " a cat", "--score", " two red apples"});
  ASSERT_EQ(sc.exit_code, 0) << sc.err;
  const std::vector<std::string> scored = lines_of(sc.out);
  ASSERT_EQ(scored.size(), 2u) << sc.out;
  for (size_t q = 0; q < 2; ++q) {
    const nlohmann::json got = nlohmann::json::parse(scored[q]);
    EXPECT_EQ(got["image"], queries[q]);
    const CliRun alone =
        run_cli({"-m", model, "--json", "-p", shots, "--image", img0, "--image", img1, "--image",
                 queries[q], "--score", " a cat", "--score", " two red apples"});
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    EXPECT_EQ(got["scores"], nlohmann::json::parse(alone.out)["scores"]) << "query " << q;
  }
  expect_error({"-m", model, "--query", img0}, kUsage, "--query needs a prompt");
  expect_error({"-m", model, "-p", shots, "--image", img0, "--query", img1}, kUsage,
               "3 <image> markers but 2 images");
  expect_error(
      {"-m", model, "-p", shots, "--image", img0, "--image", img1, "--query", "/nonexistent/q.png"},
      kImage, "/nonexistent/q.png");
}

// The same sampled request in separate processes with 1 and 2 threads: the same tokens and
// bitwise the same log-probabilities (nlohmann prints floats round-trip exactly).
TEST(CaptionCli, SameSeedSameOutputAcrossProcessesAndThreadCounts) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  const std::string model = fixture().string();
  auto result = [&](const char* threads) {
    const CliRun r = run_cli(
        {"-m", model, "--json", "-n", "8", "--temp", "1.3", "-s", "1234", "-t", threads, image()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    j.erase("timings");
    return j;
  };
  const nlohmann::json a = result("1"), b = result("2"), c = result("1");
  EXPECT_FALSE(a["tokens"].empty());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

// Ctrl+C while captioning a long list of images: the caption under way stops at its next token,
// the CLI prints what it has, exits 130 and does not go on to the remaining images.
TEST(CaptionCli, InterruptStopsCleanlyWithExitCode130) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  constexpr int kImages = 2000;  // ~1 s of work: the interrupt lands long before the end
  std::vector<std::string> args = {"-m", fixture().string(), "-n", "64", "-t", "1"};
  for (int i = 0; i < kImages; ++i) args.push_back(image());
  const CliRun r = run_cli(args, /*interrupt_when=*/"\n");
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; stderr:\n" << r.err;
  ASSERT_EQ(r.exit_code, kInterrupted) << "stderr:\n" << r.err;
  EXPECT_EQ(r.err.find("error:"), std::string::npos) << r.err;
  const size_t captions = lines_of(r.out).size();
  EXPECT_GE(captions, 1u);
  EXPECT_LT(captions, static_cast<size_t>(kImages)) << "the interrupt did not stop the run";
}

// Ctrl+C while a model loads: the load stops at its next weight tensor and the CLI exits 130 at
// once, with no error line and no caption. The model is the parity fixture's vision side and
// tokenizer under a language model of 48 layers of width 256 (~190 MB of f32), so that its
// load, some hundred milliseconds, is long enough to interrupt; "loading model" (with -v) is
// printed just before it starts.
TEST(CaptionCli, InterruptDuringTheModelLoadExits130) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  io::ModelConfig c = io::load_config(fixture() / "config.json");
  c.lm.layers = 48;
  c.lm.dim = 256;
  c.lm.heads = 4;
  c.lm.kv_heads = 4;
  c.lm.head_dim = 64;
  c.lm.ffn_dim = 1024;
  testing::TempDir dir;
  testing::write_model_dir(dir.path(), c, 7);
  fs::copy_file(fixture() / "tokenizer.model", dir.path() / "tokenizer.model");
  const std::vector<std::string> args = {"-m", dir.path().string(), "-v", "-t", "1", image()};
  {
    SCOPED_TRACE("the same model, not interrupted");
    const CliRun r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("\nmodel: "), std::string::npos) << r.err;
  }
  // The load takes ~80 ms in Release: a test process descheduled that long misses it (the
  // signal then stops generation instead), so a miss is retried; every try must stop cleanly.
  bool stopped_in_load = false;
  for (int attempt = 0; attempt < 5 && !stopped_in_load; ++attempt) {
    const CliRun r = run_cli(args, /*interrupt_when=*/"loading model");
    EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; stderr:\n" << r.err;
    ASSERT_EQ(r.exit_code, kInterrupted) << "stderr:\n" << r.err;
    EXPECT_EQ(r.err.find("error:"), std::string::npos) << r.err;
    stopped_in_load = r.err.find("\nmodel: ") == std::string::npos;
    if (stopped_in_load) EXPECT_EQ(r.out, "");
  }
  EXPECT_TRUE(stopped_in_load) << "in 5 tries, the load always ran to its end";
}

// Memory running out at every stage: the same 3-thread caption under address-space limits from
// 4 to 96 MiB in 512 KiB steps. Where the process can start at all (`--version` runs under the
// limit: below that the dynamic loader or a library's static initialiser fails, before our
// code), the run either captions or prints one "error:" line and exits 5. The sweep must see
// both, and the failure to start the third thread after the second started (which used to end
// in std::terminate).
TEST(CaptionCli, OutOfMemoryAtAnyStageExitsFiveWithOneErrorLine) {
  if (std::string(FLAMINGO_CAPTION_BIN).empty())
    GTEST_SKIP() << "flamingo-caption not built (FLAMINGO_BUILD_TOOLS=OFF)";
  if (testing::kUnderSanitizer) GTEST_SKIP() << "address-space limits do not work under sanitizers";
  const std::vector<std::string> args = {"-m", fixture().string(), "-n", "3", "-t", "3", image()};
  int captions = 0, out_of_memory = 0, partial_pool = 0;
  for (int64_t kib = 4096; kib <= int64_t{96} * 1024; kib += 512) {
    if (run_cli_with_address_space(kib, {"--version"}).exit_code != 0) continue;
    SCOPED_TRACE("ulimit -v " + std::to_string(kib));
    const CliRun r = run_cli_with_address_space(kib, args);
    ASSERT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; stderr:\n" << r.err;
    if (r.exit_code == 0) {
      ++captions;
      EXPECT_EQ(lines_of(r.out).size(), 1u) << r.out;
      continue;
    }
    ASSERT_EQ(r.exit_code, kOutOfMemory) << "stderr:\n" << r.err;
    const std::vector<std::string> lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
    EXPECT_EQ(lines[0].rfind("error: ", 0), 0u) << lines[0];
    EXPECT_EQ(r.out, "");
    ++out_of_memory;
    if (lines[0].find("cannot start compute thread 3 of 3") != std::string::npos) ++partial_pool;
  }
  EXPECT_GT(captions, 0) << "no limit up to 96 MiB was enough to caption";
  EXPECT_GT(out_of_memory, 0);
  EXPECT_GT(partial_pool, 0) << "no limit stopped the pool after its first worker";
}

}  // namespace
}  // namespace flamingo
