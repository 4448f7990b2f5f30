// Where stage constructors get their weights from. The model directory loader implements it
// over mmap'ed safetensors; tests can implement it over in-memory tensors. Shapes are checked
// against the config before any stage is built (io/model_manifest), so stages only need the
// element counts to match.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "kernels/matmul.h"
#include "util/thread_pool.h"

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
  // Packs the matrix `name` for the kernels, on the source's thread pool when it has one.
  kernels::PackedMatrix packed(const std::string& name, int64_t n, int64_t k) {
    const kernels::WeightView v = matrix(name, n, k);
    return pack_pool_ ? kernels::pack_matrix(v, *pack_pool_) : kernels::pack_matrix(v);
  }
  // Packs conv weights `v` (matrix() of the conv, or a standardised copy of it) the same way.
  kernels::PackedConv2d packed_conv(const kernels::Conv2dParams& p, const kernels::WeightView& v) {
    return pack_pool_ ? kernels::pack_conv2d(p, v, *pack_pool_) : kernels::pack_conv2d(p, v);
  }
  // Threads used to pack weights while the model is built (not owned; may be null).
  void set_pack_pool(ThreadPool* pool) { pack_pool_ = pool; }

 private:
  ThreadPool* pack_pool_ = nullptr;
};

}  // namespace flamingo::model
