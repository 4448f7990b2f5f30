#include "support/model_fixture.h"

#include "io/model_manifest.h"
#include "support/test_util.h"

namespace flamingo::testing {

std::vector<TensorSpec> random_weights(const io::ModelConfig& c, uint64_t seed,
                                       const std::string& dtype) {
  std::vector<TensorSpec> out;
  for (const auto& e : io::expected_tensors(c)) {
    const auto& shape = e.shapes.front();
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    const auto values = random_floats(n, seed++, -0.1f, 0.1f);
    if (dtype == "F16")
      out.push_back(f16_tensor(e.name, shape, values));
    else if (dtype == "BF16")
      out.push_back(bf16_tensor(e.name, shape, values));
    else
      out.push_back(f32_tensor(e.name, shape, values));
  }
  return out;
}

void write_model_dir(const std::filesystem::path& dir, const io::ModelConfig& c, uint64_t seed,
                     const std::string& dtype) {
  std::filesystem::create_directories(dir);
  write_file(dir / "config.json", io::config_to_json(c));
  write_safetensors(dir / "model.safetensors", random_weights(c, seed, dtype));
}

io::ModelConfig tiny_config() { return io::load_config(test_data_dir() / "config" / "tiny.json"); }

}  // namespace flamingo::testing
