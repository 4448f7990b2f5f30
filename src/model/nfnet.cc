#include "model/nfnet.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/activation.h"
#include "util/check.h"
#include "util/scratch_buffer.h"

namespace flamingo::model {

int64_t nfnet_make_divisible(double v, int64_t divisor) {
  // timm: new_v = max(min_value, int(v + divisor / 2) // divisor * divisor), and one more
  // divisor if that rounds down by more than 10 %.
  int64_t nv = std::max<int64_t>(
      divisor, static_cast<int64_t>(v + static_cast<double>(divisor) / 2.0) / divisor * divisor);
  if (static_cast<double>(nv) < 0.9 * v) nv += divisor;
  return nv;
}

namespace {

// Scaled weight standardisation (timm ScaledStdConv2d, gamma folded into the activation):
// Ŵ_o = gain_o · fan_in^-½ · (W_o − mean(W_o)) / sqrt(var(W_o) + eps), in double.
std::vector<float> standardise(const kernels::WeightView& w, const std::vector<float>& gain,
                               double eps) {
  const int64_t n = w.n, k = w.k;
  std::vector<float> row(static_cast<size_t>(k));
  std::vector<float> out(static_cast<size_t>(n * k));
  for (int64_t o = 0; o < n; ++o) {
    kernels::dequantize_row(w, o, row.data());
    double mean = 0;
    for (float v : row) mean += v;
    mean /= static_cast<double>(k);
    double var = 0;
    for (float v : row) var += (v - mean) * (v - mean);
    var /= static_cast<double>(k);
    const double scale =
        gain[static_cast<size_t>(o)] / std::sqrt(static_cast<double>(k)) / std::sqrt(var + eps);
    for (int64_t i = 0; i < k; ++i)
      out[static_cast<size_t>(o * k + i)] =
          static_cast<float>((row[static_cast<size_t>(i)] - mean) * scale);
  }
  return out;
}

}  // namespace

NfnetEncoder::Conv NfnetEncoder::load_conv(WeightSource& w, const std::string& prefix, int64_t in_h,
                                           int64_t in_w, int64_t in_c, int64_t out_c, int kernel,
                                           int stride, int groups) {
  kernels::Conv2dParams p;
  p.in_h = in_h;
  p.in_w = in_w;
  p.in_c = in_c;
  p.out_c = out_c;
  p.kernel = kernel;
  p.stride = stride;
  p.groups = groups;
  const int64_t k = in_c / groups * kernel * kernel;
  const kernels::WeightView view = w.matrix(prefix + ".weight", out_c, k);
  Conv c;
  if (spec_.ws_folded) {
    c.conv = w.packed_conv(prefix, p, view.type, [&] { return view; });
  } else {
    // Packed as the standardised f32 weights; kept alive until packed.
    std::vector<float> folded;
    c.conv = w.packed_conv(prefix, p, kernels::WeightType::kF32, [&] {
      folded = standardise(view, w.floats(prefix + ".gain", out_c), spec_.ws_eps);
      return kernels::WeightView{kernels::WeightType::kF32, folded.data(), nullptr, out_c, k};
    });
  }
  c.bias = w.floats(prefix + ".bias", out_c);
  const int64_t oh = kernels::same_out_size(in_h, stride),
                ow = kernels::same_out_size(in_w, stride);
  flops_ += 2.0 * static_cast<double>(oh * ow * out_c * k);
  max_activation_ = std::max({max_activation_, in_h * in_w * in_c, oh * ow * out_c});
  return c;
}

NfnetEncoder::NfnetEncoder(const io::VisionConfig& spec, WeightSource& w)
    : spec_(spec),
      act_(to_activation(spec.activation)),
      gamma_(static_cast<float>(spec.gamma)),
      alpha_(static_cast<float>(spec.alpha)) {
  // Stem: 3×3 convs with strides 2, 1, 1, 2 and activations between them (none after the last).
  static constexpr int kStemStrides[4] = {2, 1, 1, 2};
  int64_t hw = spec.image_size, c = 3;
  for (int i = 0; i < 4; ++i) {
    stem_[static_cast<size_t>(i)] =
        load_conv(w, "vision.stem.conv" + std::to_string(i + 1), hw, hw, c,
                  spec.stem_channels[static_cast<size_t>(i)], 3, kStemStrides[i], 1);
    hw = kernels::same_out_size(hw, kStemStrides[i]);
    c = spec.stem_channels[static_cast<size_t>(i)];
  }
  // β follows the expected variance of the residual stream: reset after each stage's first
  // block, growing by α² per block.
  double expected_var = 1.0;
  int64_t h = hw, wd = hw;
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < spec.depths[static_cast<size_t>(s)]; ++b) {
      Block blk{};
      const std::string pre = "vision.stages." + std::to_string(s) + "." + std::to_string(b) + ".";
      blk.stride = b == 0 ? static_cast<int>(spec.strides[static_cast<size_t>(s)]) : 1;
      blk.in_c = c;
      blk.out_c = spec.widths[static_cast<size_t>(s)];
      blk.mid_c = nfnet_make_divisible(static_cast<double>(blk.out_c) * spec.bottleneck_ratio);
      const int groups = static_cast<int>(blk.mid_c / spec.group_width);
      blk.in_h = h;
      blk.in_w = wd;
      blk.out_h = kernels::same_out_size(h, blk.stride);
      blk.out_w = kernels::same_out_size(wd, blk.stride);
      blk.beta = static_cast<float>(1.0 / std::sqrt(expected_var));
      if (b == 0) expected_var = 1.0;
      expected_var += spec.alpha * spec.alpha;

      blk.has_proj = blk.in_c != blk.out_c || blk.stride != 1;
      if (blk.has_proj)
        blk.proj = load_conv(w, pre + "downsample.conv", blk.out_h, blk.out_w, blk.in_c, blk.out_c,
                             1, 1, 1);
      blk.conv1 = load_conv(w, pre + "conv1", h, wd, blk.in_c, blk.mid_c, 1, 1, 1);
      blk.conv2 = load_conv(w, pre + "conv2", h, wd, blk.mid_c, blk.mid_c, 3, blk.stride, groups);
      blk.conv2b =
          load_conv(w, pre + "conv2b", blk.out_h, blk.out_w, blk.mid_c, blk.mid_c, 3, 1, groups);
      blk.conv3 = load_conv(w, pre + "conv3", blk.out_h, blk.out_w, blk.mid_c, blk.out_c, 1, 1, 1);
      const int64_t se_c = nfnet_make_divisible(static_cast<double>(blk.out_c) * spec.se_ratio);
      blk.se_fc1 = w.packed(pre + "attn_last.fc1.weight", se_c, blk.out_c);
      blk.se_b1 = w.floats(pre + "attn_last.fc1.bias", se_c);
      blk.se_fc2 = w.packed(pre + "attn_last.fc2.weight", blk.out_c, se_c);
      blk.se_b2 = w.floats(pre + "attn_last.fc2.bias", blk.out_c);
      blk.skip_gain = w.floats(pre + "skipinit_gain", 1)[0];
      blocks_.push_back(std::move(blk));
      c = blocks_.back().out_c;
      h = blocks_.back().out_h;
      wd = blocks_.back().out_w;
    }
  }
  grid_h_ = h;
  grid_w_ = wd;
  out_channels_ = c;
  if (spec.tap == io::VisionTap::kFinalAct) {
    FLAMINGO_CHECK(spec.final_conv_channels > 0);
    final_conv_ = load_conv(w, "vision.final_conv", h, wd, c, spec.final_conv_channels, 1, 1, 1);
    out_channels_ = spec.final_conv_channels;
  }
}

// x: the block input; out: its output; h, t0, t1: scratch of max_activation_ floats each.
void NfnetEncoder::block_forward(const Block& b, const float* x, float* out, float* h, float* t0,
                                 float* t1, ThreadPool& pool) const {
  const int64_t in_n = b.in_h * b.in_w, out_n = b.out_h * b.out_w;
  const float g = gamma_;
  // h = act_γ(x)·β: the pre-activation both branches read.
  activate(act_, x, h, in_n * b.in_c, g * b.beta, pool);

  // The shortcut: the projection writes `out` now; the identity is copied into it row block
  // by row block in the final loop below, in parallel and just before those rows are added to.
  if (b.has_proj) {
    if (b.stride == 2) {
      kernels::avg_pool_2x2(h, b.in_h, b.in_w, b.in_c, t0, pool);
      b.proj.run(t0, out, pool);
    } else {
      b.proj.run(h, out, pool);
    }
  }

  // The residual branch ping-pongs between t0 and t1 (a conv never writes its input).
  b.conv1.run(h, t0, pool, act_, g);
  b.conv2.run(t0, t1, pool, act_, g);
  b.conv2b.run(t1, t0, pool, act_, g);
  float* r = t1;
  b.conv3.run(t0, r, pool);

  // Squeeze-excite on the block output: 2·sigmoid(fc2(relu(fc1(mean)))) per channel.
  std::vector<float> mean(static_cast<size_t>(b.out_c)), se_h(b.se_b1.size()),
      se(static_cast<size_t>(b.out_c));
  kernels::mean_pool(r, out_n, b.out_c, mean.data(), pool);
  kernels::matmul(mean.data(), b.out_c, 1, b.se_fc1, se_h.data(), b.se_fc1.n(), pool,
                  {b.se_b1.data(), false});
  kernels::relu(se_h.data(), se_h.data(), static_cast<int64_t>(se_h.size()));
  kernels::matmul(se_h.data(), b.se_fc1.n(), 1, b.se_fc2, se.data(), b.out_c, pool,
                  {b.se_b2.data(), false});
  // One per-channel factor: SE gate (×2), skip gain and α; out += r·factor, rows in parallel.
  kernels::sigmoid(se.data(), se.data(), b.out_c, 2.f);
  kernels::scale(b.skip_gain * alpha_, se.data(), se.data(), b.out_c);
  constexpr int64_t kRows = 64;
  pool.parallel_for((out_n + kRows - 1) / kRows,
                    [&](int64_t t) {
                      const int64_t r0 = t * kRows, rows = std::min(kRows, out_n - r0);
                      float* rr = r + r0 * b.out_c;
                      float* o = out + r0 * b.out_c;
                      if (!b.has_proj) std::copy(x + r0 * b.out_c, x + (r0 + rows) * b.out_c, o);
                      kernels::mul_rows(rr, se.data(), rr, rows, b.out_c);
                      kernels::axpy(1.f, rr, o, rows * b.out_c);
                    },
                    // ns: 12 bytes a value at 10 GB/s, 16 with the identity's copy
                    (b.has_proj ? 1.2 : 1.6) * static_cast<double>(out_n * b.out_c));
}

void NfnetEncoder::forward(const float* image, float* out, ThreadPool& pool) const {
  // Five tensors of the largest activation's size: the input and output of the current
  // block, and its three scratch (40 MiB at F0 @256; fresh per call they cost 2-3 % of the
  // encoder's time). Huge pages also help the convolutions' patch gathers, which stride
  // across a whole activation.
  const auto n_max = static_cast<size_t>(max_activation_);
  thread_local ScratchBuffer workspace;
  float* a = workspace.floats(5 * n_max);
  float* b = a + n_max;
  float* h = b + n_max;
  float* t0 = h + n_max;
  float* t1 = t0 + n_max;
  const int64_t s = spec_.image_size;
  std::copy(image, image + s * s * 3, a);
  for (size_t i = 0; i < 4; ++i) {
    const bool last = i == 3;  // no activation after the last stem conv
    stem_[i].run(a, b, pool, last ? Activation::kIdentity : act_, last ? 1.f : gamma_);
    std::swap(a, b);
  }
  for (const Block& blk : blocks_) {
    block_forward(blk, a, b, h, t0, t1, pool);
    std::swap(a, b);
  }
  const int64_t n_pos = grid_h_ * grid_w_;
  if (spec_.tap == io::VisionTap::kFinalAct) {
    final_conv_.run(a, out, pool, act_, gamma_);
  } else {
    std::copy(a, a + n_pos * out_channels_, out);
  }
}

}  // namespace flamingo::model
