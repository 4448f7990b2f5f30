// WeightSource over the mmap'ed tensors of a model directory.
#pragma once

#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/weight_source.h"

namespace flamingo::model {

class SafetensorsWeightSource : public WeightSource {
 public:
  explicit SafetensorsWeightSource(const io::ModelWeights& weights) : weights_(weights) {}

  // F32/F16/BF16 tensors are used as they are; an I8 (Q8_0) or U8 (Q4_0) tensor comes with
  // its fp16 block scales in "<name>_scale".
  kernels::WeightView matrix(const std::string& name, int64_t n, int64_t k) override;
  std::vector<float> floats(const std::string& name, int64_t numel) override;
  bool has(const std::string& name) const override { return weights_.contains(name); }

 private:
  const io::ModelWeights& weights_;
};

}  // namespace flamingo::model
