// Convolutions and pooling on HWC tensors.
//
// A 1×1 stride-1 ungrouped conv is a plain matmul of the [H·W, C] input. Every other conv
// runs an implicit-im2col GEMM on the matmul's packed weight panels and micro-kernel
// (matmul_kernels.h): the input patch rows are gathered straight into the micro-kernel's
// packed-A layout, one cache block at a time, so no im2col matrix is ever materialised and the
// gather is paid once per block for all of the group's output channels. Weight rows are
// reordered at pack time from PyTorch's (i, kh, kw) to (kh, kw, i), which makes each tap of a
// patch a contiguous run of cin/groups input channels.
//
// Split: one task per (group, block of kMc output pixels), fixed by the shape; each output
// value is summed in the same order whatever thread runs it, so any thread count gives the
// same bits.
#include "kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/matmul_kernels.h"
#include "kernels/matmul_packed.h"
#include "kernels/overlap.h"
#include "kernels/pack_a.h"
#include "kernels/work_estimate.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace flamingo::kernels {

using detail::kGemmMr;
using detail::kPanelRows;

struct PackedConv2d::Impl {
  Conv2dParams p;
  int64_t out_h = 0, out_w = 0;
  int64_t pad_top = 0, pad_left = 0;
  bool direct_matmul = false;        // 1×1, stride 1, one group
  std::vector<PackedMatrix> groups;  // one per group; a single one when direct_matmul
};

namespace {

// Cache blocking of the implicit GEMM, as in matmul.cc: a kKc×16 weight sub-panel stays in L1
// while the kMc×kKc packed patch block streams from L2. kKc stays 256 where matmul.cc takes
// 512 on a 48 KiB L1d: over NFNet-F0's 3×3 convs 512 measured 74 % of peak against 77 %.
constexpr int64_t kMc = 96;
constexpr int64_t kKc = 256;
static_assert(kMc % kGemmMr == 0);
constexpr int64_t kMaxDim = int64_t{1} << 24;

void validate(const Conv2dParams& p) {
  auto bad = [&](auto&&... msg) {
    fail(ErrorCode::kInvalidArgument, "conv2d: ", msg..., " (in ", p.in_h, "×", p.in_w, "×", p.in_c,
         ", out_c ", p.out_c, ", kernel ", p.kernel, ", stride ", p.stride, ", groups ", p.groups,
         ")");
  };
  if (p.in_h <= 0 || p.in_w <= 0 || p.in_c <= 0 || p.out_c <= 0) bad("sizes must be positive");
  if (p.in_h > kMaxDim || p.in_w > kMaxDim || p.in_c > kMaxDim || p.out_c > kMaxDim ||
      p.in_h * p.in_w > kMaxDim * 16)
    bad("sizes too large");
  if (p.kernel < 1 || p.kernel > 15) bad("kernel size must be in [1, 15]");
  if (p.stride != 1 && p.stride != 2) bad("stride must be 1 or 2");
  if (p.groups < 1 || p.in_c % p.groups != 0 || p.out_c % p.groups != 0)
    bad("groups must divide in_c and out_c");
}

// One row's columns permuted from (i, kh, kw) to (kh, kw, i): a [cin, taps] transpose. The
// tap loop is outside so that the stores are contiguous; with the tap count known (3×3) the
// strided loads come from a row already in L1, 0.39 against 0.49 ns a value.
template <int kTaps, typename T>
void reorder_row(const T* s, int64_t cin, int64_t taps, T* d) {
  const int64_t n = kTaps > 0 ? kTaps : taps;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < cin; ++i) d[t * cin + i] = s[i * n + t];
}

// Copies a [rows, k] slice of a 16-bit or 32-bit matrix with each row reordered as above.
template <typename T>
std::unique_ptr<T[]> reorder_rows(const T* src, int64_t row0, int64_t rows, int64_t cin,
                                  int64_t taps) {
  const int64_t k = cin * taps;
  auto dst = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(rows * k));
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + (row0 + r) * k;
    if (taps == 9)
      reorder_row<9>(s, cin, taps, dst.get() + r * k);
    else
      reorder_row<0>(s, cin, taps, dst.get() + r * k);
  }
  return dst;
}

struct Geometry {
  const float* in;
  int64_t in_w, in_h, in_c;
  int64_t out_w;
  int64_t cin;  // per group
  int kernel, stride;
  int64_t pad_top, pad_left;
};

// Writes rows [m0, m0+rows) × columns [k0, k0+kc) of group g's implicit im2col matrix into
// the micro-kernel's packed-A layout: the row tiles of gemm_tile_rows, element (r, kk) at
// kk·mr + r.
// Column k is tap k / cin, input channel k % cin, so a tile is gathered one run of channels
// at a time, all its rows together.
void pack_patches(const Geometry& g, int64_t group, int64_t m0, int64_t rows, int64_t k0,
                  int64_t kc, float* dst) {
  for (int64_t r0 = 0, mr; r0 < rows; r0 += mr) {
    mr = detail::gemm_tile_rows(rows - r0);
    int64_t y0[kGemmMr], x0[kGemmMr];
    for (int r = 0; r < mr; ++r) {
      const int64_t pixel = m0 + r0 + r;
      y0[r] = pixel / g.out_w * g.stride - g.pad_top;
      x0[r] = pixel % g.out_w * g.stride - g.pad_left;
    }
    for (int64_t k = k0; k < k0 + kc;) {
      const int64_t tap = k / g.cin, i = k % g.cin;
      const int64_t len = std::min(g.cin - i, k0 + kc - k);
      const float* src[kGemmMr];
      for (int r = 0; r < mr; ++r) {
        const int64_t iy = y0[r] + tap / g.kernel, ix = x0[r] + tap % g.kernel;
        const bool inside = iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w;
        src[r] = inside ? g.in + (iy * g.in_w + ix) * g.in_c + group * g.cin + i : nullptr;
      }
      detail::interleave_rows(src, static_cast<int>(mr), len, dst + (k - k0) * mr);
      k += len;
    }
    dst += kc * mr;
  }
}

struct Scratch {
  std::vector<float> a_packed;
  std::vector<float> b_panel;
};

}  // namespace

int64_t same_out_size(int64_t in, int stride) { return (in + stride - 1) / stride; }

int64_t same_pad_before(int64_t in, int kernel, int stride) {
  const int64_t out = same_out_size(in, stride);
  return std::max<int64_t>((out - 1) * stride + kernel - in, 0) / 2;
}

PackedConv2d::PackedConv2d() = default;
PackedConv2d::~PackedConv2d() = default;
PackedConv2d::PackedConv2d(PackedConv2d&&) noexcept = default;
PackedConv2d& PackedConv2d::operator=(PackedConv2d&&) noexcept = default;
PackedConv2d::PackedConv2d(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

const Conv2dParams& PackedConv2d::params() const {
  FLAMINGO_CHECK(impl_ != nullptr);
  return impl_->p;
}
int64_t PackedConv2d::out_h() const { return impl_ ? impl_->out_h : 0; }
int64_t PackedConv2d::out_w() const { return impl_ ? impl_->out_w : 0; }
int64_t PackedConv2d::num_groups() const {
  return impl_ ? static_cast<int64_t>(impl_->groups.size()) : 0;
}
size_t PackedConv2d::bytes() const {
  size_t b = 0;
  if (impl_)
    for (const auto& m : impl_->groups) b += m.bytes();
  return b;
}

namespace {

std::unique_ptr<PackedConv2d::Impl> conv_layout(const Conv2dParams& p) {
  auto impl = std::make_unique<PackedConv2d::Impl>();
  impl->p = p;
  impl->out_h = same_out_size(p.in_h, p.stride);
  impl->out_w = same_out_size(p.in_w, p.stride);
  impl->pad_top = same_pad_before(p.in_h, p.kernel, p.stride);
  impl->pad_left = same_pad_before(p.in_w, p.kernel, p.stride);
  impl->direct_matmul = p.kernel == 1 && p.stride == 1 && p.groups == 1;
  return impl;
}

}  // namespace

const PackedMatrix& PackedConv2d::group(int64_t g) const {
  FLAMINGO_CHECK(impl_ != nullptr && g >= 0 && g < static_cast<int64_t>(impl_->groups.size()));
  return impl_->groups[static_cast<size_t>(g)];
}

PackedConv2d adopt_packed_conv2d(const Conv2dParams& p, std::vector<PackedMatrix> groups) {
  validate(p);
  auto impl = conv_layout(p);
  const int64_t cin = p.in_c / p.groups, cout = p.out_c / p.groups;
  const int64_t k = cin * p.kernel * p.kernel;
  const size_t want = impl->direct_matmul ? 1 : static_cast<size_t>(p.groups);
  if (groups.size() != want)
    fail(ErrorCode::kInvalidArgument, "adopt_packed_conv2d: ", groups.size(),
         " packed matrices for a conv that packs ", want);
  for (const PackedMatrix& g : groups) {
    if (g.empty() || g.n() != (impl->direct_matmul ? p.out_c : cout) || g.k() != k ||
        g.type() != groups[0].type())
      fail(ErrorCode::kInvalidArgument, "adopt_packed_conv2d: a group's packed matrix is ", g.n(),
           "×", g.k(), ", expected ", cout, "×", k, " of one weight type");
    if (!impl->direct_matmul && g.type() != WeightType::kF32 && g.type() != WeightType::kF16 &&
        g.type() != WeightType::kBF16)
      fail(ErrorCode::kInvalidArgument, "adopt_packed_conv2d: ", weight_type_name(g.type()),
           " weights only pack 1×1 stride-1 ungrouped convs");
  }
  impl->groups = std::move(groups);
  return PackedConv2d(std::move(impl));
}

PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w, ThreadPool* pool,
                         HugePageArena* arena) {
  validate(p);
  const int64_t cin = p.in_c / p.groups, cout = p.out_c / p.groups;
  const int64_t taps = int64_t{p.kernel} * p.kernel;
  if (w.n != p.out_c || w.k != cin * taps)
    fail(ErrorCode::kModelMismatch, "pack_conv2d: weight is ", w.n, "×", w.k, ", expected ",
         p.out_c, "×", cin * taps, " (out_c × in_c/groups·kernel²)");
  if (w.data == nullptr) fail(ErrorCode::kInvalidArgument, "pack_conv2d: null weight data");

  auto impl = conv_layout(p);
  const auto pack = [&](const WeightView& v, ThreadPool* on) { return pack_matrix(v, on, arena); };
  if (impl->direct_matmul) {
    impl->groups.push_back(pack(w, pool));
    return PackedConv2d(std::move(impl));
  }
  if (w.type != WeightType::kF32 && w.type != WeightType::kF16 && w.type != WeightType::kBF16)
    fail(ErrorCode::kUnsupported, "pack_conv2d: ", weight_type_name(w.type),
         " weights are only supported for 1×1 stride-1 ungrouped convs (block scales cannot follow "
         "the "
         "(kh, kw, i) reordering); store this conv as f32, f16 or bf16");
  // One group per task when there are several; a single group packs its panels on the pool.
  ThreadPool* inner = p.groups == 1 ? pool : nullptr;
  impl->groups.resize(static_cast<size_t>(p.groups));
  const auto pack_group = [&](int64_t g) {
    const auto reorder_and_pack = [&](const auto* src) {
      const auto rows = reorder_rows(src, g * cout, cout, cin, taps);
      WeightView gv = w;
      gv.n = cout;
      gv.data = rows.get();
      impl->groups[static_cast<size_t>(g)] = pack(gv, inner);
    };
    if (w.type == WeightType::kF32)
      reorder_and_pack(static_cast<const float*>(w.data));
    else
      reorder_and_pack(static_cast<const uint16_t*>(w.data));
  };
  if (pool && p.groups > 1) {
    pool->parallel_for(
        p.groups, pack_group,
        detail::stream_ns(3.0 * static_cast<double>(weight_bytes(w.type, w.n, w.k))));
  } else {
    for (int64_t g = 0; g < p.groups; ++g) pack_group(g);
  }
  return PackedConv2d(std::move(impl));
}

PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w) {
  return pack_conv2d(p, w, nullptr, nullptr);
}

PackedConv2d pack_conv2d(const Conv2dParams& p, const WeightView& w, ThreadPool& pool) {
  return pack_conv2d(p, w, &pool, nullptr);
}

void conv2d(const float* in, const PackedConv2d& conv, const float* bias, float* out,
            ThreadPool& pool, Activation activation, float activation_scale) {
  if (conv.out_h() == 0)
    fail(ErrorCode::kInvalidArgument, "conv2d: the conv is empty (not packed)");
  if (in == nullptr || out == nullptr)
    fail(ErrorCode::kInvalidArgument, "conv2d: null input or output");
  const PackedConv2d::Impl& c = conv.impl();
  const Conv2dParams& p = c.p;
  const int64_t pixels = c.out_h * c.out_w;
  if (overlaps(in, p.in_h * p.in_w * p.in_c, out, pixels * p.out_c))
    fail(ErrorCode::kInvalidArgument, "conv2d: output overlaps input");
  MatmulEpilogue ep;
  ep.bias = bias;
  ep.activation = activation;
  ep.activation_scale = activation_scale;
  if (c.direct_matmul) {
    matmul(in, p.in_c, pixels, c.groups[0], out, p.out_c, pool, ep);
    return;
  }

  const detail::GemmFn gemm = panel_gemm();
  const detail::DequantFn dequant = panel_dequant(c.groups[0].type());

  const int64_t cin = p.in_c / p.groups, cout = p.out_c / p.groups;
  const int64_t k_total = cin * p.kernel * p.kernel;
  const Geometry geo{in,  p.in_w,   p.in_h,   p.in_c,    c.out_w,
                     cin, p.kernel, p.stride, c.pad_top, c.pad_left};
  const int64_t m_blocks = (pixels + kMc - 1) / kMc;

  pool.parallel_for(
      m_blocks * p.groups,
      [&](int64_t task) {
        const int64_t g = task % p.groups, mb = task / p.groups;
        const int64_t m0 = mb * kMc, rows = std::min(kMc, pixels - m0);
        const PackedMatrix::Impl& w = c.groups[static_cast<size_t>(g)].impl();
        thread_local Scratch s;
        s.a_packed.resize(static_cast<size_t>(kMc * kKc));
        if (dequant) s.b_panel.resize(static_cast<size_t>(kKc * kPanelRows));
        float* c_base = out + m0 * p.out_c + g * cout;
        const int64_t row_tiles = detail::gemm_row_tiles(rows);
        for (int64_t k0 = 0; k0 < k_total; k0 += kKc) {
          const int64_t kc = std::min(kKc, k_total - k0);
          pack_patches(geo, g, m0, rows, k0, kc, s.a_packed.data());
          for (int64_t panel = 0; panel < w.num_panels; ++panel) {
            const float* b = sub_panel(dequant, w, panel, k0, kc, s.b_panel.data());
            const int64_t n0 = panel * kPanelRows;
            const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, cout - n0));
            run_row_tiles(gemm, s.a_packed.data(), rows, kc, b, c_base + n0, p.out_c, nr, k0 > 0,
                          next_weights(w, panel, 0, w.num_panels, k0, kc, kKc, row_tiles));
          }
        }
        finish_block(out + m0 * p.out_c, p.out_c, rows, g * cout, (g + 1) * cout, ep);
      },
      detail::compute_ns(2.0 * static_cast<double>(pixels) * static_cast<double>(p.out_c) *
                         static_cast<double>(k_total)));
}

void avg_pool_2x2(const float* in, int64_t h, int64_t w, int64_t c, float* out, ThreadPool& pool) {
  if (h <= 0 || w <= 0 || c <= 0)
    fail(ErrorCode::kInvalidArgument, "avg_pool_2x2: bad shape ", h, "×", w, "×", c);
  const int64_t oh = (h + 1) / 2, ow = (w + 1) / 2;
  if (overlaps(in, h * w * c, out, oh * ow * c))
    fail(ErrorCode::kInvalidArgument, "avg_pool_2x2: output overlaps input");
  // One task per output row: every output is summed by one task in the same order.
  pool.parallel_for(
      oh,
      [&](int64_t oy) {
        const int64_t y1 = std::min(2 * oy + 2, h);
        for (int64_t ox = 0; ox < ow; ++ox) {
          // Summed in PyTorch's window order (row by row), divided by the count of real
          // elements. Starting from +0 rather than the first element keeps a window of −0s +0.
          const int64_t x1 = std::min(2 * ox + 2, w);
          float* d = out + (oy * ow + ox) * c;
          std::fill(d, d + c, 0.f);
          for (int64_t y = 2 * oy; y < y1; ++y)
            for (int64_t x = 2 * ox; x < x1; ++x) {
              const float* s = in + (y * w + x) * c;
              for (int64_t j = 0; j < c; ++j) d[j] += s[j];
            }
          const float count = static_cast<float>((y1 - 2 * oy) * (x1 - 2 * ox));
          for (int64_t j = 0; j < c; ++j) d[j] /= count;
        }
      },
      // ns: about a nanosecond per input value read (memory-bound at a few GB/s).
      static_cast<double>(h) * static_cast<double>(w) * static_cast<double>(c));
}

void mean_pool(const float* in, int64_t hw, int64_t c, float* out, ThreadPool& pool) {
  if (hw <= 0 || c <= 0) fail(ErrorCode::kInvalidArgument, "mean_pool: bad shape ", hw, "×", c);
  if (overlaps(in, hw * c, out, c))
    fail(ErrorCode::kInvalidArgument, "mean_pool: output overlaps input");
  // Tasks own blocks of channels, so each channel's sum runs over the rows in one order.
  constexpr int64_t kChannels = 64;
  const float n = static_cast<float>(hw);
  pool.parallel_for((c + kChannels - 1) / kChannels,
                    [&](int64_t t) {
                      const int64_t j0 = t * kChannels, cols = std::min(kChannels, c - j0);
                      float acc[kChannels] = {};
                      for (int64_t r = 0; r < hw; ++r) {
                        const float* s = in + r * c + j0;
                        for (int64_t j = 0; j < cols; ++j) acc[j] += s[j];
                      }
                      for (int64_t j = 0; j < cols; ++j) out[j0 + j] = acc[j] / n;
                    },
                    static_cast<double>(hw) * static_cast<double>(c));
}

}  // namespace flamingo::kernels
