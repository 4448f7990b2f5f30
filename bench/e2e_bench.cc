// One end-to-end run of a model directory through the public API, as a user runs it: load,
// a few-shot request (prompt file with <image> markers, images decoded from files, greedy
// decoding of a fixed number of tokens), the next query of a few-shot loop (the same session
// and prompt, another last image) and a caption request (one image, a fixed number of tokens).
// Prints one JSON object with every stage's time, the visual K/V counter, the weight files'
// page-cache read time, the memory figures and the read bandwidth right after the few-shot
// decode (the yardstick of the same seconds for it). bench/run_e2e.sh runs it per configuration,
// weight type and thread count, several times, beside the PyTorch reference.
//
// Not a Google Benchmark: a run is one process (load time and peak RSS are per process).
//
//   e2e_bench --model DIR --threads N --prompt-file F --image A --image B --image C
//             [--decode-tokens 32] [--caption-tokens 20] [--caption-image A]
#include <flamingo/flamingo.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dram_working_set.h"
#include "huge_array.h"
#include "read_sweep.h"
#include "util/thread_pool.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// User + system CPU time of the process so far: with wall time it shows how much of its
// threads' time the run actually got on a shared machine.
double cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// kB fields of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile).
long status_kb(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  return -1;
}

nlohmann::json memory() {
  return {{"rss_kb", status_kb("VmRSS")},
          {"hwm_kb", status_kb("VmHWM")},
          {"anon_kb", status_kb("RssAnon")},
          {"file_kb", status_kb("RssFile")}};
}

// Time to read every weight file once with read(2) (the files are expected in the page cache:
// run_e2e.sh reads them once before), the floor a loader that touches every byte cannot beat.
double read_files_ms(const fs::path& dir, double* bytes) {
  std::vector<char> buf(size_t{64} << 20);
  *bytes = 0;
  const auto t0 = Clock::now();
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    std::FILE* f = std::fopen(e.path().c_str(), "rb");
    if (f == nullptr) continue;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) *bytes += static_cast<double>(n);
    std::fclose(f);
  }
  return ms_since(t0);
}

nlohmann::json timings(const flamingo::Timings& t) {
  return {{"image_preprocess_ms", t.image_preprocess_ms},
          {"vision_ms", t.vision_ms},
          {"resampler_ms", t.resampler_ms},
          {"prefill_ms", t.prefill_ms},
          {"prefill_tokens", t.prefill_tokens},
          {"prompt_tokens_reused", t.prompt_tokens_reused},
          {"decode_ms", t.decode_ms},
          {"decode_tokens", t.decode_tokens},
          {"first_token_ms", t.first_token_ms},
          {"media_encoded", t.media_encoded},
          {"visual_kv_computed", t.visual_kv_computed}};
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream os;
  os << f.rdbuf();
  std::string s = os.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The read bandwidth the host gives at this moment on `threads` threads: the median of three
// read sweeps of a DRAM-sized array (bench/read_sweep.h), in bytes/s; -1 if it could not run.
// Measured right after a decode, so that the decode is divided by the bandwidth of the same
// seconds: the two-thread bandwidth of the Zen 4 VM moves between about 33 and 60 GB/s from one
// minute to the next, and limits measured at the start and end of a run missed it both ways.
// In a child process, so that its array does not count in this process's peak RSS.
double sweep_bytes_per_s(int threads) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    return -1;
  }
  if (pid == 0) {
    close(fd[0]);
    double rate = -1;
    try {
      constexpr int64_t kChunks = 256;
      const int64_t n =
          flamingo::bench::sweep_doubles(flamingo::bench::dram_working_set_bytes(), kChunks);
      const flamingo::bench::HugeArray x(static_cast<size_t>(n), 1.0);
      flamingo::ThreadPool pool(threads);
      std::vector<double> partial, rates;
      for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        flamingo::bench::read_sweep(x.data(), n, kChunks, pool, partial);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        rates.push_back(8.0 * static_cast<double>(n) / s);
      }
      std::sort(rates.begin(), rates.end());
      rate = rates[1];
    } catch (...) {
    }
    const ssize_t ignored = write(fd[1], &rate, sizeof rate);
    (void)ignored;
    _exit(0);
  }
  close(fd[1]);
  double rate = -1;
  if (read(fd[0], &rate, sizeof rate) != static_cast<ssize_t>(sizeof rate)) rate = -1;
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, prompt_file, caption_image, pack_cache;
  std::vector<std::string> images;
  int threads = 1, decode_tokens = 32, caption_tokens = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      model_dir = value();
    else if (a == "--threads")
      threads = std::atoi(value().c_str());
    else if (a == "--prompt-file")
      prompt_file = value();
    else if (a == "--image")
      images.push_back(value());
    else if (a == "--caption-image")
      caption_image = value();
    else if (a == "--decode-tokens")
      decode_tokens = std::atoi(value().c_str());
    else if (a == "--caption-tokens")
      caption_tokens = std::atoi(value().c_str());
    else if (a == "--pack-cache")
      pack_cache = value();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (model_dir.empty() || prompt_file.empty() || images.empty()) {
    std::fprintf(
        stderr,
        "usage: e2e_bench --model DIR --threads N --prompt-file F --image A [--image B ...]\n"
        "       [--caption-image C] [--decode-tokens N] [--caption-tokens N] [--pack-cache DIR]\n");
    return 2;
  }
  if (caption_image.empty()) caption_image = images[0];
  try {
    nlohmann::json out;
    out["loadavg"] = loadavg();
    double file_bytes = 0;
    out["page_cache_read_ms"] = read_files_ms(model_dir, &file_bytes);
    out["weight_file_bytes"] = file_bytes;
    out["memory_before_load"] = memory();

    flamingo::ModelOptions mo;
    mo.threads = threads;
    mo.pack_cache_dir = pack_cache;
    const auto tl = Clock::now();
    const std::shared_ptr<const flamingo::Model> model = flamingo::Model::load(model_dir, mo);
    out["load_wall_ms"] = ms_since(tl);
    out["load_ms"] = model->load_ms();
    out["memory_after_load"] = memory();
    const flamingo::ModelInfo& info = model->info();
    out["model"] = {{"dtype", info.weight_dtype},        {"parameters", info.parameters},
                    {"weight_bytes", info.weight_bytes}, {"lm_layers", info.lm_layers},
                    {"gated_blocks", info.gated_blocks}, {"image_size", info.image_size},
                    {"vision_grid", info.vision_grid}};
    out["threads"] = threads;
    out["pack_cache"] = info.pack_cache;

    // Few-shot request: images decoded from their files (the user's decode cost).
    const auto td = Clock::now();
    std::vector<flamingo::Media> media;
    for (const std::string& p : images) media.emplace_back(flamingo::Image::from_file(p));
    out["image_decode_ms"] = ms_since(td);
    const std::string text = read_text(prompt_file);
    flamingo::GenerateOptions g;
    g.max_new_tokens = decode_tokens;
    g.stop_at_endofchunk = false;  // random weights: always decode the full count
    g.stop_at_eos = false;
    {
      flamingo::Session session(model);
      const auto t0 = Clock::now();
      const double c0 = cpu_ms();
      double c_first = -1, w_first = -1;  // CPU and wall time when the first token is out
      g.on_token = [&](const flamingo::TokenInfo&, const std::string&) {
        if (c_first < 0) c_first = cpu_ms() - c0, w_first = ms_since(t0);
        return true;
      };
      const flamingo::GenerateResult r = session.generate(flamingo::Prompt(text, media), g);
      g.on_token = nullptr;
      out["fewshot_wall_ms"] = ms_since(t0);
      out["fewshot_cpu_ms"] = cpu_ms() - c0;
      out["first_token_cpu_ms"] = c_first;
      out["first_token_wall_ms"] = w_first;
      out["fewshot"] = timings(r.timings);
      out["fewshot_generated"] = r.tokens.size();
      out["sweep_after_decode_bytes_per_s"] = sweep_bytes_per_s(threads);
      // The next query of a few-shot loop: the same examples, another last image, the same
      // session, which keeps the prompt's keys and values up to that image.
      std::vector<flamingo::Media> next = media;
      next.back() = flamingo::Media(flamingo::Image::from_file(caption_image));
      const auto t1 = Clock::now();
      const flamingo::GenerateResult r2 = session.generate(flamingo::Prompt(text, next), g);
      out["fewshot_next_wall_ms"] = ms_since(t1);
      out["fewshot_next"] = timings(r2.timings);
    }
    // Caption: one image, decoded as part of the request, fixed token count.
    g.max_new_tokens = caption_tokens;
    {
      flamingo::Session session(model);
      const auto t0 = Clock::now();
      flamingo::Image img = flamingo::Image::from_file(caption_image);
      const flamingo::GenerateResult r =
          session.generate(flamingo::Prompt(info.default_prompt, {flamingo::Media(img)}), g);
      out["caption_wall_ms"] = ms_since(t0);
      out["caption"] = timings(r.timings);
    }
    out["memory_end"] = memory();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    out["peak_rss_kb"] = ru.ru_maxrss;
    std::puts(out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "e2e_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
