// 2-D convolutions and pooling for NFNet, on HWC tensors (one image, channels last).
//
// Channels-last because every NFNet layer that matters is a matmul in disguise: a 1×1 conv on
// HWC is exactly C[HW, O] = X[HW, I]·Wᵀ, a grouped 3×3 conv is the same GEMM over a small
// im2col tile, and the final grid is already the [tokens, channels] matrix the resampler reads.
//
// Padding is TensorFlow "SAME": output size ceil(in/stride); pad_total =
// max((out−1)·stride + kernel − in, 0), pad_before = pad_total/2, the rest after (so a
// stride-2 3×3 conv on an even input pads 0 before and 1 after).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/matmul.h"

namespace flamingo {
class ThreadPool;
}

namespace flamingo::kernels {

struct Conv2dParams {
  int64_t in_h = 0, in_w = 0, in_c = 0;
  int64_t out_c = 0;
  int kernel = 1;  // square kernel size: 1 or 3 (any odd or even size ≥ 1 is accepted)
  int stride = 1;  // 1 or 2
  int groups = 1;  // in_c and out_c are multiples of groups
};

int64_t same_out_size(int64_t in, int stride);
int64_t same_pad_before(int64_t in, int kernel, int stride);

class PackedConv2d {
 public:
  PackedConv2d();
  ~PackedConv2d();
  PackedConv2d(PackedConv2d&&) noexcept;
  PackedConv2d& operator=(PackedConv2d&&) noexcept;
  const Conv2dParams& params() const;
  int64_t out_h() const;
  int64_t out_w() const;
  size_t bytes() const;
  // The packed matrix of group g: one per group, or a single one for a 1×1 stride-1
  // ungrouped conv (it runs as a plain matmul).
  const PackedMatrix& group(int64_t g) const;
  int64_t num_groups() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit PackedConv2d(std::unique_ptr<Impl> impl);
  friend PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w, ThreadPool* pool,
                                  HugePageArena* arena);
  friend PackedConv2d adopt_packed_conv2d(const Conv2dParams& p, std::vector<PackedMatrix> groups);
  std::unique_ptr<Impl> impl_;
};

// w is the PyTorch OIHW weight viewed as a matrix: n = out_c, k = (in_c/groups)·kernel·kernel,
// each row ordered (i, kh, kw). Validates params against the view. Any weight type works for a
// 1×1 stride-1 ungrouped conv (it is a plain matmul); other convs take f32, f16 or bf16 (their
// rows are reordered at pack time, which per-block quantisation scales cannot follow).
PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w);
// The same bytes, packed on the pool's threads (model loading): the groups in parallel, or
// the panels of the one matrix of an ungrouped conv.
PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w, ThreadPool& pool);
// The same bytes again: on the pool's threads unless pool is null, into blocks of the arena
// (see pack_matrix) unless arena is null.
PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w, ThreadPool* pool,
                         HugePageArena* arena);
// A conv over matrices packed earlier (group(g) of a conv with the same params, e.g. adopted
// from kept bytes, see adopt_packed_matrix). Throws flamingo::Error if they do not fit p.
PackedConv2d adopt_packed_conv2d(const Conv2dParams& p, std::vector<PackedMatrix> groups);

// out[out_h, out_w, out_c] = activation_scale · activation(conv(in[in_h, in_w, in_c]) + bias)
// (bias may be null). The activation is applied to each block of the output as it completes,
// while it is in cache. out must not overlap in. Bitwise identical results for any number of
// threads in the pool, and to conv2d without an activation followed by activate().
void conv2d(const float* in, const PackedConv2d& conv, const float* bias, float* out,
            ThreadPool& pool, Activation activation = Activation::kIdentity,
            float activation_scale = 1.f);

// 2×2 average pool, stride 2, ceil mode, averaging only over the elements inside the input
// (PyTorch count_include_pad=False). out is [ceil(h/2), ceil(w/2), c]; must not overlap in.
// Bitwise identical results for any number of threads in the pool.
void avg_pool_2x2(const float* in, int64_t h, int64_t w, int64_t c, float* out, ThreadPool& pool);

// out[c] = mean over the hw rows of in[hw, c]; must not overlap in. Bitwise identical for any
// number of threads.
void mean_pool(const float* in, int64_t hw, int64_t c, float* out, ThreadPool& pool);

}  // namespace flamingo::kernels
