// The NFNet-F vision encoder (spec §1): stem, four stages of normaliser-free bottleneck
// blocks, optional final 1×1 conv. Input is one normalised HWC image, output the feature grid
// flattened row-major into [positions, channels] tokens.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "io/config.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"
#include "model/activation_kind.h"
#include "model/weight_source.h"
#include "util/thread_pool.h"

namespace flamingo::model {

// timm's make_divisible(v, 8): channel counts it derives are rounded this way.
int64_t nfnet_make_divisible(double v, int64_t divisor = 8);

class NfnetEncoder {
 public:
  NfnetEncoder(const io::VisionConfig& config, WeightSource& weights);

  int64_t out_channels() const { return out_channels_; }
  int64_t grid_h() const { return grid_h_; }
  int64_t grid_w() const { return grid_w_; }
  int64_t positions() const { return grid_h_ * grid_w_; }

  // image: [image_size, image_size, 3] normalised; out: [positions(), out_channels()].
  void forward(const float* image, float* out, ThreadPool& pool) const;

  // FLOPs of one forward pass (2 per multiply-add), for the benchmarks' % of peak.
  double flops() const { return flops_; }

 private:
  struct Conv {
    kernels::PackedConv2d conv;
    std::vector<float> bias;
    // out = scale·act(conv(in) + bias): the activation rides in the conv's epilogue.
    void run(const float* in, float* out, ThreadPool& pool, Activation act = Activation::kIdentity,
             float scale = 1.f) const {
      kernels::conv2d(in, conv, bias.data(), out, pool, act, scale);
    }
  };
  struct Block {
    int64_t in_h, in_w, out_h, out_w, in_c, mid_c, out_c;
    int stride;
    float beta;
    bool has_proj;
    Conv proj, conv1, conv2, conv2b, conv3;
    kernels::PackedMatrix se_fc1, se_fc2;
    std::vector<float> se_b1, se_b2;
    float skip_gain;
  };

  Conv load_conv(WeightSource& w, const std::string& prefix, int64_t in_h, int64_t in_w,
                 int64_t in_c, int64_t out_c, int kernel, int stride, int groups);
  void block_forward(const Block& b, const float* x, float* out, float* h, float* t0, float* t1,
                     ThreadPool& pool) const;

  io::VisionConfig spec_;
  Activation act_;
  float gamma_, alpha_;
  std::array<Conv, 4> stem_;
  std::vector<Block> blocks_;
  Conv final_conv_;
  int64_t out_channels_ = 0, grid_h_ = 0, grid_w_ = 0;
  int64_t max_activation_ = 0;  // floats in the largest intermediate tensor
  double flops_ = 0;
};

}  // namespace flamingo::model
