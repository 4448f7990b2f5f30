#include "support/safetensors_writer.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "support/test_util.h"

namespace flamingo::testing {
namespace {

size_t element_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  throw std::invalid_argument("safetensors_writer: unknown dtype " + dtype);
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <typename T>
void append(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

}  // namespace

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u)
    return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to Inf
  if (x < 0x38800000u) {
    // Subnormal half (or zero): value = m · 2^-24.
    float a;
    std::memcpy(&a, &x, 4);
    const float m = std::nearbyint(a * 16777216.0f);  // round half to even (default mode)
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(m));
  }
  const uint32_t mant = x & 0x7fffffu;
  uint32_t h = ((x >> 23) - 112) << 10 | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

uint16_t float_to_bfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

TensorSpec f32_tensor(const std::string& name, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  TensorSpec t{name, "F32", std::move(shape), {}};
  for (float v : values) append(t.bytes, v);
  return t;
}

TensorSpec f16_tensor(const std::string& name, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  TensorSpec t{name, "F16", std::move(shape), {}};
  for (float v : values) append(t.bytes, float_to_half(v));
  return t;
}

TensorSpec bf16_tensor(const std::string& name, std::vector<int64_t> shape,
                       const std::vector<float>& values) {
  TensorSpec t{name, "BF16", std::move(shape), {}};
  for (float v : values) append(t.bytes, float_to_bfloat16(v));
  return t;
}

TensorSpec filled_tensor(const std::string& name, const std::string& dtype,
                         std::vector<int64_t> shape, float value) {
  const auto n = static_cast<size_t>(numel(shape));
  if (dtype == "F32") return f32_tensor(name, std::move(shape), std::vector<float>(n, value));
  if (dtype == "F16") return f16_tensor(name, std::move(shape), std::vector<float>(n, value));
  if (dtype == "BF16") return bf16_tensor(name, std::move(shape), std::vector<float>(n, value));
  TensorSpec t{name, dtype, std::move(shape), {}};
  t.bytes.assign(n * element_size(dtype), '\x01');
  return t;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string safetensors_raw(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string safetensors_bytes(const std::vector<TensorSpec>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& t : tensors) {
    const size_t expected = static_cast<size_t>(numel(t.shape)) * element_size(t.dtype);
    if (t.bytes.size() != expected)
      throw std::invalid_argument("safetensors_writer: " + t.name + " has the wrong byte count");
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  return safetensors_raw(h, data);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSpec>& tensors) {
  write_file(path, safetensors_bytes(tensors));
}

}  // namespace flamingo::testing
