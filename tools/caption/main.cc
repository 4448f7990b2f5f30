// flamingo-caption: caption images, answer few-shot prompts, or score candidate answers with
// a Flamingo model. stdout carries only the generated text (or JSON); logs and timings go to
// stderr. See --help.
#include <flamingo/flamingo.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Exit codes, documented in --help.
constexpr int kExitOk = 0;
constexpr int kExitGeneration = 1;
constexpr int kExitUsage = 2;
constexpr int kExitModel = 3;
constexpr int kExitImage = 4;
constexpr int kExitOutOfMemory = 5;
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct UsageError {
  std::string message;
};

struct Options {
  std::string model_dir;
  std::vector<std::string> images;   // --image and positional, in order
  std::vector<std::string> queries;  // --query: one request each, filling the last marker
  // -p / -f text (template: special strings are tokens) and --literal text, in command-line
  // order; without any template part the model's caption prompt comes first, per image.
  struct PromptPart {
    bool literal = false;
    std::string text;
  };
  std::vector<PromptPart> prompt_parts;
  bool has_template = false;
  std::vector<std::string> scores;
  // The demo model's longest captions (four groups of objects) take 36 tokens.
  int max_tokens = 64;
  int threads = 0;
  float temp = 0.f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.f;
  int beams = 1;
  uint64_t seed = 0;
  bool json = false;
  bool verbose = false;
  std::string pack_cache;
};

const char* kHelp = R"(usage: flamingo-caption [options] [IMAGE ...]

Captions each IMAGE with a Flamingo model, or runs one interleaved prompt (-p) whose <image>
markers are filled by the images in order, or runs it once per --query image (few-shot).

options (defaults in brackets):
  -m, --model DIR         model directory [$FLAMINGO_MODEL, else the bundled demo model]
      --image FILE        an image for the next <image> marker (repeatable)
      --query FILE        run the prompt once for this image, which fills its last <image>
                          marker (the images before fill the others); repeatable, and only
                          the prompt from that marker on runs again for each query
  -p, --prompt TEXT       prompt with <image> markers [the model's caption prompt, per image]
  -f, --prompt-file FILE  read the prompt from FILE
      --literal TEXT      text added to the prompt as it is: special strings such as <image>
                          stay text (for text from users); -p, -f and --literal add to the
                          prompt in the order given (repeatable)
  -n, --max-tokens N      tokens to generate at most [64]
  -t, --threads N         compute threads, 0 = all cores [0]
      --pack-cache DIR    keep the model's packed weights in DIR, so that later loads map
                          them instead of packing again [$FLAMINGO_PACK_CACHE, else none]
      --temp T            sampling temperature, 0 = greedy [0]
      --top-k K           keep the K most likely tokens, 0 = off [40]
      --top-p P           nucleus sampling mass, 1 = off [0.95]
      --min-p P           drop tokens under P x the top probability, 0 = off [0.05]
      --repeat-penalty R  penalise repeated tokens, 1 = off [1]
      --beams N           beam search with N beams, 1 = off [1]
  -s, --seed S            RNG seed; same seed, same text [0]
      --score TEXT        score TEXT as a continuation of the prompt instead of generating
                          (repeatable; prints log-likelihoods, best first)
      --json              print one JSON object per request (text, tokens, timings, seed)
  -v, --verbose           log what is loaded and done to stderr
  -h, --help              this help
      --version           version, git commit, compiler and kernel path

Sampling options apply only when --temp > 0.

exit codes:
  0    success
  1    generation failed
  2    bad usage (unknown flag, missing or malformed value, a prompt that does not fit)
  3    the model could not be loaded
  4    an image could not be read or decoded
  5    out of memory (at any stage)
  130  interrupted (Ctrl+C)
)";

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  // from_chars for floats too (GCC 12's libstdc++ has it): strtof would accept trailing junk.
  const std::from_chars_result r = std::from_chars(text.data(), end, value);
  if (text.empty() || r.ec != std::errc() || r.ptr != end)
    throw UsageError{flag + ": '" + text + "' is not a valid " +
                     (std::is_floating_point_v<T> ? "number" : "integer")};
  return value;
}

template <typename T>
T parse_in_range(const std::string& flag, const std::string& text, T lo, T hi) {
  const T v = parse_number<T>(flag, text);
  if (!(v >= lo && v <= hi)) {
    std::ostringstream os;
    os << flag << ": " << text << " is out of range [" << lo << ", " << hi << "]";
    throw UsageError{os.str()};
  }
  return v;
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw UsageError{"--prompt-file: " + path + " is a directory"};
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UsageError{"--prompt-file: cannot read " + path};
  std::ostringstream os;
  os << f.rdbuf();
  std::string s = os.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Returns nullopt when the program should exit 0 right away (--help, --version).
std::optional<Options> parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{a + " needs a value"};
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      return std::nullopt;
    } else if (a == "--version") {
      const flamingo::BuildInfo b = flamingo::build_info();
      std::printf("flamingo-caption %s (commit %s, %s, kernels %s)\n", b.version.c_str(),
                  b.git_commit.c_str(), b.compiler.c_str(), b.kernel_path.c_str());
      return std::nullopt;
    } else if (a == "-m" || a == "--model") {
      o.model_dir = value();
    } else if (a == "--image") {
      o.images.push_back(value());
    } else if (a == "--query") {
      o.queries.push_back(value());
    } else if (a == "-p" || a == "--prompt") {
      o.prompt_parts.push_back({false, value()});
      o.has_template = true;
    } else if (a == "-f" || a == "--prompt-file") {
      o.prompt_parts.push_back({false, read_text_file(value())});
      o.has_template = true;
    } else if (a == "--literal") {
      o.prompt_parts.push_back({true, value()});
    } else if (a == "-n" || a == "--max-tokens") {
      o.max_tokens = parse_in_range<int>(a, value(), 0, 1 << 20);
    } else if (a == "--pack-cache") {
      o.pack_cache = value();
    } else if (a == "-t" || a == "--threads") {
      o.threads = parse_in_range<int>(a, value(), 0, 1024);
    } else if (a == "--temp") {
      o.temp = parse_in_range<float>(a, value(), 0.f, 100.f);
    } else if (a == "--top-k") {
      o.top_k = parse_in_range<int>(a, value(), 0, 1 << 22);
    } else if (a == "--top-p") {
      o.top_p = parse_in_range<float>(a, value(), 1e-6f, 1.f);
    } else if (a == "--min-p") {
      o.min_p = parse_in_range<float>(a, value(), 0.f, 1.f);
    } else if (a == "--repeat-penalty") {
      o.repeat_penalty = parse_in_range<float>(a, value(), 1e-3f, 100.f);
    } else if (a == "--beams") {
      o.beams = parse_in_range<int>(a, value(), 1, 64);
    } else if (a == "-s" || a == "--seed") {
      o.seed = parse_number<uint64_t>(a, value());
    } else if (a == "--score") {
      o.scores.push_back(value());
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "-v" || a == "--verbose") {
      o.verbose = true;
    } else if (a.size() > 1 && a[0] == '-') {
      throw UsageError{"unknown option " + a + " (see --help)"};
    } else {
      o.images.push_back(a);
    }
  }
  if (!o.has_template && !o.queries.empty())
    throw UsageError{"--query needs a prompt whose last <image> marker it fills (-p or -f)"};
  if (!o.has_template && o.images.empty()) throw UsageError{"no image given (see --help)"};
  return o;
}

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// -m, then $FLAMINGO_MODEL, then the demo model next to the binary, in the build's source
// tree, and in the installed data directory.
std::string find_model_dir(const Options& o) {
  if (!o.model_dir.empty()) return o.model_dir;
  if (const char* env = std::getenv("FLAMINGO_MODEL"); env != nullptr && *env != '\0') return env;
  const fs::path exe = executable_dir();
  const std::vector<fs::path> candidates = {
      exe / "models/demo", exe / "../share/flamingo/models/demo",
      fs::path(FLAMINGO_SOURCE_MODEL_DIR), fs::path(FLAMINGO_INSTALLED_MODEL_DIR)};
  std::error_code ec;
  for (const fs::path& c : candidates)
    if (fs::is_regular_file(c / "config.json", ec)) return c.lexically_normal().string();
  throw flamingo::Error(
      flamingo::ErrorCode::kIo,
      "no model found: pass -m DIR or set FLAMINGO_MODEL (looked next to the binary, in " +
          std::string(FLAMINGO_SOURCE_MODEL_DIR) + " and " + FLAMINGO_INSTALLED_MODEL_DIR + ")");
}

nlohmann::json timings_json(const flamingo::Timings& t, double load_ms) {
  return {{"load_ms", load_ms},
          {"image_preprocess_ms", t.image_preprocess_ms},
          {"vision_ms", t.vision_ms},
          {"resampler_ms", t.resampler_ms},
          {"prefill_ms", t.prefill_ms},
          {"prefill_tokens", t.prefill_tokens},
          {"prompt_tokens_reused", t.prompt_tokens_reused},
          {"decode_ms", t.decode_ms},
          {"decode_tokens", t.decode_tokens},
          {"first_token_ms", t.first_token_ms},
          {"media_encoded", t.media_encoded},
          {"media_reused", t.media_reused},
          {"visual_kv_computed", t.visual_kv_computed}};
}

void print_timings(const flamingo::Timings& t, double load_ms) {
  auto rate = [](int n, double ms) { return ms > 0 ? 1000.0 * n / ms : 0.0; };
  const std::string kept =
      t.prompt_tokens_reused > 0 ? " (+" + std::to_string(t.prompt_tokens_reused) + " kept)" : "";
  std::fprintf(stderr,
               "timings: load %.1f ms | preprocess %.1f ms | vision %.1f ms | resampler %.1f ms | "
               "prefill %d tok%s %.1f ms (%.1f tok/s) | decode %d tok %.1f ms (%.1f tok/s)\n",
               load_ms, t.image_preprocess_ms, t.vision_ms, t.resampler_ms, t.prefill_tokens,
               kept.c_str(), t.prefill_ms, rate(t.prefill_tokens, t.prefill_ms), t.decode_tokens,
               t.decode_ms, rate(t.decode_tokens, t.decode_ms));
}

std::string json_dump(const nlohmann::json& j) {
  // Model output may contain bytes that are not UTF-8 only in pathological cases (the
  // detokeniser emits U+FFFD); replace rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A stage's exit code, unless the stage ran out of memory, which has one code wherever it
// happens: the input may be fine, the machine short of memory.
int exit_code(const flamingo::Error& e, int stage_code) {
  return e.code() == flamingo::ErrorCode::kOutOfMemory ? kExitOutOfMemory : stage_code;
}

int run(const Options& o) {
  flamingo::ModelOptions mo;
  mo.threads = o.threads;
  mo.pack_cache_dir = o.pack_cache;
  mo.on_progress = [](float) { return !g_interrupted.load(); };  // Ctrl+C stops a long load
  if (const char* env = std::getenv("FLAMINGO_PACK_CACHE"); mo.pack_cache_dir.empty() && env)
    mo.pack_cache_dir = env;
  std::shared_ptr<const flamingo::Model> model;
  std::string dir;
  try {
    dir = find_model_dir(o);
    if (o.verbose) std::fprintf(stderr, "loading model %s\n", dir.c_str());
    model = flamingo::Model::load(dir, mo);
  } catch (const flamingo::Error& e) {
    if (e.code() == flamingo::ErrorCode::kCancelled && g_interrupted.load())
      return kExitInterrupted;  // as during generation: not an error
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code(e, kExitModel);
  }
  if (o.verbose) {
    const flamingo::ModelInfo& i = model->info();
    std::fprintf(stderr,
                 "model: %s, %lld parameters (%s), image %d px, %d visual tokens, LM %d layers x "
                 "%d, %d gated blocks, kernels %s, pack cache: %s\n",
                 i.directory.c_str(), static_cast<long long>(i.parameters), i.weight_dtype.c_str(),
                 i.image_size, i.visual_tokens, i.lm_layers, i.lm_dim, i.gated_blocks,
                 flamingo::build_info().kernel_path.c_str(), i.pack_cache.c_str());
  }

  std::vector<flamingo::Image> images, queries;
  try {
    for (const std::string& path : o.images) images.push_back(flamingo::Image::from_file(path));
    for (const std::string& path : o.queries) queries.push_back(flamingo::Image::from_file(path));
  } catch (const flamingo::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code(e, kExitImage);
  }

  // One request per image with the default prompt, one per query image, or one request for an
  // explicit prompt. The queries share one session, which runs each only from where it parts
  // from the one before: its image's marker.
  auto make_prompt = [&](std::vector<flamingo::Media> media) {
    flamingo::Prompt p(o.has_template ? std::string() : model->info().default_prompt,
                       std::move(media));
    for (const Options::PromptPart& part : o.prompt_parts) {
      if (part.literal)
        p.add_literal_text(part.text);
      else
        p.add_text(part.text);
    }
    return p;
  };
  std::vector<flamingo::Prompt> requests;
  std::vector<std::string> request_image;  // the image a request is about, for --json
  if (!queries.empty()) {
    for (size_t q = 0; q < queries.size(); ++q) {
      std::vector<flamingo::Media> media(images.begin(), images.end());
      media.emplace_back(queries[q]);
      requests.push_back(make_prompt(std::move(media)));
      request_image.push_back(o.queries[q]);
    }
  } else if (o.has_template) {
    requests.push_back(make_prompt(std::vector<flamingo::Media>(images.begin(), images.end())));
  } else {
    request_image = o.images;
    for (const flamingo::Image& img : images)
      requests.push_back(make_prompt(std::vector<flamingo::Media>{img}));
  }

  flamingo::GenerateOptions g;
  g.max_new_tokens = o.max_tokens;
  g.temperature = o.temp;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.min_p = o.min_p;
  g.repeat_penalty = o.repeat_penalty;
  g.num_beams = o.beams;
  g.seed = o.seed;
  g.on_token = [](const flamingo::TokenInfo&, const std::string&) { return !g_interrupted.load(); };

  flamingo::Session session(model);
  for (size_t r = 0; r < requests.size(); ++r) {
    try {
      if (!o.scores.empty()) {
        std::vector<flamingo::ScoreResult> s = session.score(requests[r], o.scores);
        std::stable_sort(s.begin(), s.end(),
                         [](const auto& a, const auto& b) { return a.logprob > b.logprob; });
        if (o.json) {
          nlohmann::json j = {{"scores", nlohmann::json::array()},
                              {"timings", timings_json(session.timings(), model->load_ms())}};
          if (r < request_image.size()) j["image"] = request_image[r];
          for (const auto& x : s)
            j["scores"].push_back(
                {{"text", x.continuation}, {"logprob", x.logprob}, {"tokens", x.tokens}});
          std::puts(json_dump(j).c_str());
        } else {
          for (const auto& x : s) std::printf("%.4f\t%s\n", x.logprob, x.continuation.c_str());
        }
        print_timings(session.timings(), model->load_ms());
        continue;
      }
      const flamingo::GenerateResult res = session.generate(requests[r], g);
      if (o.json) {
        nlohmann::json j = {{"text", res.text},
                            {"tokens", nlohmann::json::array()},
                            {"stop_reason", flamingo::stop_reason_name(res.stop_reason)},
                            {"seed", o.seed},
                            {"timings", timings_json(res.timings, model->load_ms())}};
        if (r < request_image.size()) j["image"] = request_image[r];
        for (const auto& t : res.tokens)
          j["tokens"].push_back({{"id", t.id}, {"piece", t.piece}, {"logprob", t.logprob}});
        std::puts(json_dump(j).c_str());
      } else {
        std::puts(res.text.c_str());
      }
      std::fflush(stdout);
      print_timings(res.timings, model->load_ms());
      if (g_interrupted.load()) return kExitInterrupted;
    } catch (const flamingo::Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      // The prompt is the user's input: malformed (kInvalidArgument) or over a budget such as
      // the context (kResourceLimit), it is bad usage, not a failed generation.
      const bool usage = e.code() == flamingo::ErrorCode::kInvalidArgument ||
                         e.code() == flamingo::ErrorCode::kResourceLimit;
      return exit_code(e, usage ? kExitUsage : kExitGeneration);
    }
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_sigint);
  try {
    const std::optional<Options> o = parse_args(argc, argv);
    if (!o) return kExitOk;
    return run(*o);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.message.c_str());
    return kExitUsage;
  } catch (const flamingo::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code(e, kExitGeneration);
  } catch (const std::bad_alloc&) {  // the CLI's own allocations
    std::fprintf(stderr, "error: out of memory\n");
    return kExitOutOfMemory;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitGeneration;
  }
}
