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
#include "model/pack_cache.h"
#include "util/huge_page_arena.h"
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
  // Packs the matrix `name` for the kernels, on the source's thread pool when it has one, or
  // takes it from the pack cache.
  kernels::PackedMatrix packed(const std::string& name, int64_t n, int64_t k) {
    const kernels::WeightView v = matrix(name, n, k);
    kernels::PackedMatrix m;
    if (cache_) m = cache_->find(name, v.type, n, k);
    if (m.empty()) m = kernels::pack_matrix(v, pack_pool_, pack_arena_);
    if (cache_) cache_->record(name, m);
    return m;
  }
  // The same for the conv `name` with params p, whose packed weights are of type `type`;
  // view() gives the weights to pack (the stored matrix, or a standardised copy of it) and is
  // called only when the cache does not have them.
  template <typename ViewFn>
  kernels::PackedConv2d packed_conv(const std::string& name, const kernels::Conv2dParams& p,
                                    kernels::WeightType type, ViewFn view) {
    kernels::PackedConv2d c;
    if (cache_) c = cache_->find_conv(name, p, type);
    if (c.num_groups() == 0) {
      const kernels::WeightView v = view();
      c = kernels::pack_conv2d(p, v, pack_pool_, pack_arena_);
    }
    if (cache_) cache_->record_conv(name, c);
    return c;
  }
  // Threads used to pack weights while the model is built (not owned; may be null).
  void set_pack_pool(ThreadPool* pool) { pack_pool_ = pool; }
  // Where packed weights are looked up and recorded (not owned; may be null).
  void set_pack_cache(PackCache* cache) { cache_ = cache; }
  // Where packed weights are put (not owned; may be null: a buffer per matrix).
  void set_pack_arena(HugePageArena* arena) { pack_arena_ = arena; }

 private:
  ThreadPool* pack_pool_ = nullptr;
  PackCache* cache_ = nullptr;
  HugePageArena* pack_arena_ = nullptr;
};

}  // namespace flamingo::model
