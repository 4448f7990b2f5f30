// WeightSource over the mmap'ed tensors of a model directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/weight_source.h"

namespace flamingo::model {

// Every tensor handed out is released (its mapped pages dropped from the process, see
// io::ModelWeights::release) at the next request and when the source is destroyed: by then the
// stage that asked for it has packed or copied it. A tensor read again later (the embedding
// table, used in place) is simply faulted back in from the page cache. Without this the mapped
// file pages touched while packing stay resident beside the packed copy: peak RSS was 1.75× the
// weight files on the TinyLlama-shape benchmark model (docs/performance.md).
class SafetensorsWeightSource : public WeightSource {
 public:
  explicit SafetensorsWeightSource(const io::ModelWeights& weights) : weights_(weights) {}
  ~SafetensorsWeightSource() override;
  SafetensorsWeightSource(const SafetensorsWeightSource&) = delete;
  SafetensorsWeightSource& operator=(const SafetensorsWeightSource&) = delete;

  // F32/F16/BF16 tensors are used as they are; an I8 (Q8_0) or U8 (Q4_0) tensor comes with
  // its fp16 block scales in "<name>_scale".
  kernels::WeightView matrix(const std::string& name, int64_t n, int64_t k) override;
  std::vector<float> floats(const std::string& name, int64_t numel) override;
  bool has(const std::string& name) const override { return weights_.contains(name); }

  // Reports the bytes of the tensors handed out so far, over `total_bytes`, before each new
  // request (by then the previous one is packed) and once more from finish(); a false return
  // throws Error(kCancelled) out of the request, and so out of the model's construction.
  void set_progress(std::function<bool(float)> on_progress, uint64_t total_bytes);
  // Called when every tensor is in place: reports 1.
  void finish();

 private:
  void release_pending();
  void report(const io::TensorView& next);

  const io::ModelWeights& weights_;
  std::vector<const io::TensorView*> pending_;
  std::function<bool(float)> on_progress_;
  uint64_t total_bytes_ = 0;
  uint64_t done_bytes_ = 0;
};

}  // namespace flamingo::model
