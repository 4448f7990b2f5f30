// libFuzzer target: an untrusted model directory — config.json and model.safetensors — through
// parse_config, the safetensors parser, the weights-vs-config manifest check and the model
// constructor (which reads, converts, folds and packs every tensor).
//
// Input layout (fuzz/corpus/model_fuzzer has examples):
//   <config.json bytes> SEP <safetensors part> [SEP <patch bytes>]      SEP = "\n@@@\n"
// The safetensors part is either a whole file (it does not start with '{': the 8-byte length
// prefix is fuzzed too) or just the JSON header, for which the harness writes the prefix, pads
// the header to 8 bytes as writers do and appends a data section as long as the header's largest
// data_offsets end (capped), filled with bytes that are finite in every float dtype. The patch,
// if given, is written into the data section at the offset its first 4 bytes name, so NaNs, Infs
// and odd integer bytes reach the value checks without the fuzzer having to spell out hundreds
// of KB of weights. Any exception other than flamingo::Error, and any kInternal error, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flamingo/error.h"
#include "io/config.h"
#include "io/model_layout.h"
#include "io/model_manifest.h"
#include "io/safetensors.h"
#include "model/flamingo_model.h"
#include "model/safetensors_weight_source.h"

namespace {

constexpr std::string_view kSep = "\n@@@\n";
constexpr uint64_t kMaxData = uint64_t{8} << 20;  // keeps one execution in milliseconds

// The largest data_offsets end in a header, or nullopt when it is not a JSON object. Harness
// code: it only sizes the data section; the engine's own parser decides what is valid.
std::optional<uint64_t> data_end(std::string_view header) {
  const nlohmann::json j = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  uint64_t end = 0;
  for (const auto& [name, entry] : j.items()) {
    if (!entry.is_object()) continue;
    const auto it = entry.find("data_offsets");
    if (it == entry.end() || !it->is_array() || it->size() != 2) continue;
    if ((*it)[1].is_number_unsigned()) end = std::max(end, (*it)[1].get<uint64_t>());
  }
  return end;
}

std::string build_file(std::string_view part, std::string_view patch) {
  if (part.empty() || part.front() != '{') return std::string(part);
  const std::optional<uint64_t> end = data_end(part);
  std::string header(part);
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  const uint64_t n = header.size();
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i)
    file[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  file += header;
  // 0x3C in every byte: F32 0.0115, F16 1.06, BF16 0.0115, I8 60, U8 60.
  const size_t data_size = static_cast<size_t>(std::min(end.value_or(0), kMaxData));
  const size_t data_begin = file.size();
  file.append(data_size, '\x3c');
  if (patch.size() > 4 && data_size > 0) {
    uint32_t at = 0;
    std::memcpy(&at, patch.data(), 4);
    patch.remove_prefix(4);
    const size_t pos = at % data_size;
    const size_t len = std::min(patch.size(), data_size - pos);
    std::memcpy(file.data() + data_begin + pos, patch.data(), len);
  }
  return file;
}

// FLAMINGO_FUZZ_VERBOSE=1 prints why an input was refused (to see how far a seed gets).
void check(const flamingo::Error& e) {
  static const bool verbose = std::getenv("FLAMINGO_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
  if (e.code() == flamingo::ErrorCode::kInternal) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t sep1 = input.find(kSep);
  const std::string_view config_text = input.substr(0, sep1);
  std::string_view weights_part, patch;
  if (sep1 != std::string_view::npos) {
    weights_part = input.substr(sep1 + kSep.size());
    const size_t sep2 = weights_part.find(kSep);
    if (sep2 != std::string_view::npos) {
      patch = weights_part.substr(sep2 + kSep.size());
      weights_part = weights_part.substr(0, sep2);
    }
  }

  std::optional<flamingo::io::ModelConfig> config;
  try {
    config = flamingo::io::parse_config(config_text, "fuzz/config.json");
    // What the parser accepted must survive a round trip through the writer.
    if (flamingo::io::parse_config(flamingo::io::config_to_json(*config)) != *config) std::abort();
  } catch (const flamingo::Error& e) {
    check(e);
  }
  if (sep1 == std::string_view::npos) return 0;

  try {
    std::vector<flamingo::io::SafetensorsFile> files;
    files.push_back(flamingo::io::SafetensorsFile::from_memory(build_file(weights_part, patch),
                                                               "fuzz/model.safetensors"));
    for (const auto& t : files.front().tensors()) {
      if (t.numel <= 4096) (void)flamingo::io::find_non_finite(t);
    }
    const auto weights = flamingo::io::ModelWeights::from_files(std::move(files));
    if (!config) return 0;
    flamingo::io::check_weights(*config, weights);
    flamingo::model::SafetensorsWeightSource source(weights);
    const flamingo::model::FlamingoModel model(*config, source);
    if (model.num_blocks() != flamingo::io::num_xattn_blocks(config->xattn, config->lm.layers))
      std::abort();
    if (std::getenv("FLAMINGO_FUZZ_VERBOSE") != nullptr) std::fprintf(stderr, "model built\n");
  } catch (const flamingo::Error& e) {
    check(e);
  }
  return 0;
}
