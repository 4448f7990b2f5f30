// The tensors a config implies (docs/model-format.md, "Tensor names and shapes") and the check
// of a loaded weight set against them.
//
// Every tensor may be F32, F16 or BF16. Matrices the kernels multiply (linear weights, the LM
// head, and convolution weights once weight standardisation is folded in) may instead be
// quantised as a pair:  X.weight I8 [n, k] (q8_0) or U8 [n, k/2] (q4_0), plus
// X.weight_scale F16 [n, k/32], where n is the output size and k the product of the other
// dims (a conv's in/groups · kh · kw), and k % 32 == 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"

namespace flamingo::io {

struct ExpectedTensor {
  std::string name;
  // Accepted shapes; usually one. (skipinit_gain may be [] or [1].)
  std::vector<std::vector<int64_t>> shapes;
  // May be stored as the I8/U8 + "<name>_scale" pair; rows × cols is then its matrix view.
  bool quantizable = false;
  int64_t rows = 0;
  int64_t cols = 0;
};

// In a fixed order: vision, resampler, gated blocks, LM. The config must be valid.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

// The name of the scale tensor of a quantised matrix.
std::string scale_name(const std::string& weight_name);

// Every problem found, one line each: missing tensors (with the expected shape), wrong shapes
// (expected and actual), dtypes not allowed, broken quantised pairs, and unexpected tensors.
// Empty when the weights match.
std::vector<std::string> find_weight_problems(const ModelConfig& c, const ModelWeights& w);

// Throws Error(kModelMismatch) listing the problems (the first 30, then a count).
void check_weights(const ModelConfig& c, const ModelWeights& w);

}  // namespace flamingo::io
