// Where stage constructors get their weights from. The model directory loader implements it
// over mmap'ed safetensors; tests can implement it over in-memory tensors. Shapes are checked
// against the config before any stage is built (io/model_manifest), so stages only need the
// element counts to match.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/matmul.h"

namespace flamingo::model {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The [n, k] matrix stored under `name` (a 2-D linear weight, or an OIHW conv weight viewed
  // as [out, in·kh·kw]), in its stored type, pointing into memory that outlives the model.
  virtual kernels::WeightView matrix(const std::string& name, int64_t n, int64_t k) = 0;
  // A small tensor converted to fp32; its element count must be `numel`.
  virtual std::vector<float> floats(const std::string& name, int64_t numel) = 0;
  virtual bool has(const std::string& name) const = 0;
};

}  // namespace flamingo::model
