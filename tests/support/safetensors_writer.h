// Builds safetensors files in tests: well-formed ones (header padded with spaces to a multiple
// of 8, as the reference writer does) and raw ones from a hand-written header, for the
// corrupt-file tests and fuzz seeds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace flamingo::testing {

struct TensorSpec {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "F16", "I8", ...
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian element data
};

TensorSpec f32_tensor(const std::string& name, std::vector<int64_t> shape,
                      const std::vector<float>& values);
TensorSpec f16_tensor(const std::string& name, std::vector<int64_t> shape,
                      const std::vector<float>& values);
TensorSpec bf16_tensor(const std::string& name, std::vector<int64_t> shape,
                       const std::vector<float>& values);
// A tensor of `dtype` whose bytes are a deterministic pattern of the right length.
TensorSpec filled_tensor(const std::string& name, const std::string& dtype,
                         std::vector<int64_t> shape, float value = 0.5f);

uint16_t float_to_half(float f);      // round to nearest even
uint16_t float_to_bfloat16(float f);  // round to nearest even

// Tensors are concatenated in the given order with no padding, so callers order them to keep
// each aligned (F32 before F16 before I8, say), as the reference writer does by sorting.
std::string safetensors_bytes(const std::vector<TensorSpec>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
// 8-byte little-endian length of `header`, then `header`, then `data`; nothing checked.
std::string safetensors_raw(const std::string& header, const std::string& data);
std::string le64(uint64_t v);

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSpec>& tensors);

}  // namespace flamingo::testing
