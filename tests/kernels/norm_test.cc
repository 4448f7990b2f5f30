// RMSNorm and LayerNorm on every ISA path against double-precision references.
// Thresholds: NMSE ≤ 1e-13 for centred inputs of any magnitude; 1e-6 for LayerNorm of rows
// whose mean is 1000× their spread: an fp32 mean of such a row is off by up to ulp(1000)/2 =
// 3e-5, i.e. 3e-5 of the spread, in any fp32 implementation (PyTorch's included).
#include "kernels/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "support/isa_scope.h"
#include "support/test_util.h"
#include "util/check.h"

namespace flamingo {
namespace {

using kernels::Isa;
using testing::GuardedBuffer;

std::vector<float> rmsnorm_ref(const std::vector<float>& x, const float* w, int64_t rows,
                               int64_t dim, double eps) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double{x[r * dim + i]} * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i)
      y[r * dim + i] = static_cast<float>(x[r * dim + i] * inv * (w ? w[i] : 1.0));
  }
  return y;
}

std::vector<float> layernorm_ref(const std::vector<float>& x, const float* w, const float* b,
                                 int64_t rows, int64_t dim, double eps) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
    mean /= dim;
    for (int64_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
    var /= dim;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; ++i)
      y[r * dim + i] =
          static_cast<float>((x[r * dim + i] - mean) * inv * (w ? w[i] : 1.0) + (b ? b[i] : 0.0));
  }
  return y;
}

std::vector<int64_t> dims() {
  auto d = testing::edge_sizes();
  for (int64_t real : {768, 1536, 2048, 4096, 5120}) d.push_back(real);  // resampler / LLaMA widths
  return d;
}

TEST(Norm, RmsNorm) {
  testing::for_each_isa([](Isa) {
    const int64_t rows = 3;
    for (int64_t dim : dims())
      for (float mag : {1e-3f, 1.f, 1e4f})
        for (bool affine : {false, true}) {
          const auto x = testing::random_floats(static_cast<size_t>(rows * dim), dim, -mag, mag);
          const auto w = testing::random_floats(static_cast<size_t>(dim), dim + 1, 0.5f, 1.5f);
          const float* wp = affine ? w.data() : nullptr;
          GuardedBuffer y(x.size());
          kernels::rmsnorm(x.data(), wp, rows, dim, 1e-6f, y.data());
          ASSERT_TRUE(y.intact());
          const auto ref = rmsnorm_ref(x, wp, rows, dim, 1e-6f);
          EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), 1e-13)
              << "dim=" << dim << " mag=" << mag;
          // In place gives the same bits.
          auto inplace = x;
          kernels::rmsnorm(inplace.data(), wp, rows, dim, 1e-6f, inplace.data());
          EXPECT_EQ(0, std::memcmp(inplace.data(), y.data(), sizeof(float) * x.size()));
        }
  });
}

TEST(Norm, LayerNorm) {
  testing::for_each_isa([](Isa) {
    const int64_t rows = 3;
    for (int64_t dim : dims())
      for (float offset : {0.f, 1000.f})
        for (bool affine : {false, true}) {
          auto x = testing::random_floats(static_cast<size_t>(rows * dim), dim + 7, -1.f, 1.f);
          for (auto& v : x) v += offset;
          const auto w = testing::random_floats(static_cast<size_t>(dim), dim + 8, 0.5f, 1.5f);
          const auto b = testing::random_floats(static_cast<size_t>(dim), dim + 9, -0.5f, 0.5f);
          const float* wp = affine ? w.data() : nullptr;
          const float* bp = affine ? b.data() : nullptr;
          GuardedBuffer y(x.size());
          kernels::layernorm(x.data(), wp, bp, rows, dim, 1e-5f, y.data());
          ASSERT_TRUE(y.intact());
          const auto ref = layernorm_ref(x, wp, bp, rows, dim, 1e-5f);
          const double limit = dim == 1 ? 0 : offset == 0.f ? 1e-13 : 1e-6;
          if (dim == 1 && !affine) {
            EXPECT_EQ(y.data()[0], 0.f);  // a one-element row normalises to 0
            continue;
          }
          if (limit > 0)
            EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), limit) << "dim=" << dim;
          EXPECT_TRUE(testing::all_finite(y.data(), y.size()));
        }
  });
}

TEST(Norm, RejectsBadShapes) {
  float x = 1.f;
  EXPECT_THROW(kernels::rmsnorm(&x, nullptr, 1, 0, 1e-6f, &x), Error);
  EXPECT_THROW(kernels::layernorm(&x, nullptr, nullptr, -1, 1, 1e-5f, &x), Error);
  EXPECT_THROW(kernels::rmsnorm(&x, nullptr, 1, 1, NAN, &x), Error);
}

}  // namespace
}  // namespace flamingo
