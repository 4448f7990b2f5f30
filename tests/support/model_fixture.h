// A complete, valid model directory (config.json + weights) for any config, with small random
// weights: for tests that need a loadable model but not a trained one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/config.h"
#include "support/safetensors_writer.h"

namespace flamingo::testing {

// Every tensor io::expected_tensors(c) lists, in its first accepted shape, as `dtype` (F32, F16
// or BF16), values uniform in [-0.1, 0.1) (norm weights and gains too: tests that need
// meaningful values set them). Sorted so the file stays aligned.
std::vector<TensorSpec> random_weights(const io::ModelConfig& c, uint64_t seed,
                                       const std::string& dtype = "F32");

// Writes config.json and model.safetensors into dir (created if needed).
void write_model_dir(const std::filesystem::path& dir, const io::ModelConfig& c, uint64_t seed,
                     const std::string& dtype = "F32");

// tests/data/config/tiny.json.
io::ModelConfig tiny_config();

}  // namespace flamingo::testing
