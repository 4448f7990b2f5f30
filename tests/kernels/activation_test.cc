// Element-wise kernels on every ISA path against double-precision references.
//
// Thresholds: NMSE ≤ 1e-13 on every input range (fp32 rounding is ~1e-15; 1e-10 for
// GELU-tanh), plus a per-element relative bound on |x| ≤ 8 where the functions' values matter:
// 5e-7 (≈4 ulp) for GELU-erf, SiLU, sigmoid, tanh and SwiGLU, exact rounding for ReLU and
// scale; 2e-5 for GELU-tanh, whose fp32 inner polynomial u = √(2/π)(x + 0.044715x³) is itself
// rounded (PyTorch rounds it the same way). Each bound gets one more rounding for ·scale.
#include "kernels/activation.h"

#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "support/isa_scope.h"
#include "support/test_util.h"
#include "util/check.h"

namespace flamingo {
namespace {

using kernels::Isa;
using testing::GuardedBuffer;

using Kernel = std::function<void(const float*, float*, int64_t, float)>;
using Ref = std::function<double(double)>;

double gelu_erf_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// 0.5·x·(1 + tanh(u)) written as x·sigmoid(2u): the same function without the cancellation
// that would make even a double reference useless in the negative tail.
double gelu_tanh_ref(double x) {
  return x * sigmoid_ref(2.0 * std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x));
}
double relu_ref(double x) { return x > 0 ? x : 0; }

struct UnaryCase {
  std::string name;
  Kernel kernel;
  Ref ref;
  double rtol;  // per element on |x| ≤ 8, before the final rounding of ·scale
  double max_nmse = 1e-13;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"gelu_erf", kernels::gelu_erf, gelu_erf_ref, 5e-7},
      {"gelu_tanh", kernels::gelu_tanh, gelu_tanh_ref, 2e-5, 1e-10},
      {"silu", kernels::silu, [](double x) { return x * sigmoid_ref(x); }, 5e-7},
      {"relu", kernels::relu, relu_ref, 0},
      {"squared_relu", kernels::squared_relu, [](double x) { return relu_ref(x) * relu_ref(x); },
       6e-8},
      {"sigmoid", kernels::sigmoid, sigmoid_ref, 5e-7},
      {"tanh", kernels::tanh_act, [](double x) { return std::tanh(x); }, 5e-7},
      {"scale", [](const float* x, float* y, int64_t n, float s) { kernels::scale(s, x, y, n); },
       [](double x) { return x; }, 0},
  };
}

// Checks kernel(x)·s against ref(x)·s, elementwise (|x| ≤ 8) and by NMSE, with canaries.
void check_unary(const UnaryCase& c, const std::vector<float>& x, float s, bool elementwise) {
  const int64_t n = static_cast<int64_t>(x.size());
  GuardedBuffer y(x.size());
  c.kernel(x.data(), y.data(), n, s);
  ASSERT_TRUE(y.intact()) << c.name << " wrote outside its output, n=" << n;
  std::vector<float> ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = c.ref(x[i]) * s;
    ref[i] = static_cast<float>(r);
    if (elementwise && std::fabs(x[i]) <= 8.f) {
      const double tol = (c.rtol + 6e-8) * std::fabs(r) + 1e-37;
      ASSERT_LE(std::fabs(y.data()[i] - r), tol) << c.name << " at x=" << x[i] << " n=" << n;
    }
  }
  ASSERT_TRUE(testing::all_finite(y.data(), y.size())) << c.name;
  EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), c.max_nmse) << c.name << " n=" << n;
}

TEST(Activation, UnaryKernelsMatchReferenceOnEdgeSizes) {
  testing::for_each_isa([](Isa) {
    for (const auto& c : unary_cases())
      for (int64_t n : testing::edge_sizes()) {
        const auto x = testing::random_floats(static_cast<size_t>(n), 100 + n, -6.f, 6.f);
        check_unary(c, x, 1.f, true);
        check_unary(c, x, 1.7015043f, true);  // NFNet's γ-scaled GELU
      }
  });
}

TEST(Activation, UnaryKernelsAccurateAcrossRanges) {
  testing::for_each_isa([](Isa) {
    for (const auto& c : unary_cases()) {
      // A dense sweep through the transition regions of every approximation.
      std::vector<float> sweep;
      for (float x = -20.f; x <= 20.f; x += 0.00390625f) sweep.push_back(x);
      check_unary(c, sweep, 1.f, true);
      for (float mag : {1e-6f, 1.f, 100.f, 1e4f, 1e15f}) {
        const auto x = testing::random_floats(4099, 7, -mag, mag);
        check_unary(c, x, 1.f, mag <= 100.f);
      }
    }
  });
}

TEST(Activation, SpecialValues) {
  testing::for_each_isa([](Isa) {
    const std::vector<float> x{0.f,     -0.f, INFINITY, -INFINITY, 1e-40f,
                               -1e-40f, 88.f, -88.f,    100.f,     -100.f};
    std::vector<float> y(x.size());
    kernels::gelu_erf(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(y[0], 0.f);
    EXPECT_EQ(y[2], INFINITY);
    EXPECT_EQ(y[8], 100.f);
    EXPECT_EQ(y[9], 0.f);
    kernels::sigmoid(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(y[0], 0.5f);
    EXPECT_EQ(y[2], 1.f);
    EXPECT_EQ(y[3], 0.f);
    kernels::tanh_act(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(y[2], 1.f);
    EXPECT_EQ(y[3], -1.f);
    EXPECT_EQ(y[8], 1.f);
    kernels::silu(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_EQ(y[2], INFINITY);
    EXPECT_EQ(y[8], 100.f);
    const float nan = NAN;
    for (const auto& c : unary_cases()) {
      float out = 0.f;
      c.kernel(&nan, &out, 1, 1.f);
      EXPECT_TRUE(std::isnan(out)) << c.name << " must propagate NaN";
    }
  });
}

TEST(Activation, InPlace) {
  testing::for_each_isa([](Isa) {
    auto x = testing::random_floats(37, 3, -4.f, 4.f);
    std::vector<float> expect(x.size());
    kernels::gelu_erf(x.data(), expect.data(), 37, 2.f);
    kernels::gelu_erf(x.data(), x.data(), 37, 2.f);
    EXPECT_EQ(x, expect);
  });
}

TEST(Activation, SwiGLU) {
  testing::for_each_isa([](Isa) {
    for (int64_t n : testing::edge_sizes()) {
      const auto g = testing::random_floats(static_cast<size_t>(n), 11 + n, -8.f, 8.f);
      const auto u = testing::random_floats(static_cast<size_t>(n), 12 + n, -3.f, 3.f);
      GuardedBuffer y(static_cast<size_t>(n));
      kernels::swiglu(g.data(), u.data(), y.data(), n);
      ASSERT_TRUE(y.intact());
      std::vector<float> ref(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        const double r = g[i] * sigmoid_ref(g[i]) * u[i];
        ref[i] = static_cast<float>(r);
        ASSERT_LE(std::fabs(y.data()[i] - r), 5e-7 * std::fabs(r) + 1e-37)
            << "n=" << n << " i=" << i;
      }
      EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), 1e-13);
      // Aliasing the output onto either input is allowed.
      auto g2 = g;
      kernels::swiglu(g2.data(), u.data(), g2.data(), n);
      EXPECT_EQ(0, std::memcmp(g2.data(), y.data(), sizeof(float) * static_cast<size_t>(n)));
    }
  });
}

TEST(Activation, Softmax) {
  testing::for_each_isa([](Isa) {
    for (float mag : {1.f, 30.f, 1000.f})
      for (int64_t n : testing::edge_sizes()) {
        const auto x = testing::random_floats(static_cast<size_t>(n), 21 + n, -mag, mag);
        GuardedBuffer y(x.size());
        std::copy(x.begin(), x.end(), y.data());
        kernels::softmax(y.data(), n);
        ASSERT_TRUE(y.intact());
        double mx = -INFINITY, sum = 0;
        for (float v : x) mx = std::max<double>(mx, v);
        for (float v : x) sum += std::exp(v - mx);
        std::vector<float> ref(x.size());
        for (size_t i = 0; i < x.size(); ++i)
          ref[i] = static_cast<float>(std::exp(x[i] - mx) / sum);
        EXPECT_LE(testing::nmse(y.data(), ref.data(), ref.size()), 1e-13)
            << "n=" << n << " mag=" << mag;
      }
  });
}

TEST(Activation, AxpyScaleMulRows) {
  testing::for_each_isa([](Isa) {
    for (int64_t n : testing::edge_sizes()) {
      const auto x = testing::random_floats(static_cast<size_t>(n), 31 + n, -1e3f, 1e3f);
      const auto y0 = testing::random_floats(static_cast<size_t>(n), 32 + n, -1e3f, 1e3f);
      GuardedBuffer y(x.size());
      std::copy(y0.begin(), y0.end(), y.data());
      kernels::axpy(-0.37f, x.data(), y.data(), n);
      ASSERT_TRUE(y.intact());
      for (int64_t i = 0; i < n; ++i) {
        const double r = y0[i] + -0.37 * static_cast<double>(x[i]);
        ASSERT_LE(std::fabs(y.data()[i] - r), 1.2e-7 * (std::fabs(y0[i]) + std::fabs(0.37 * x[i])));
      }
      const int64_t rows = 3;
      const auto m = testing::random_floats(static_cast<size_t>(rows * n), 33 + n, -1e3f, 1e3f);
      GuardedBuffer out(static_cast<size_t>(rows * n));
      kernels::mul_rows(m.data(), x.data(), out.data(), rows, n);
      ASSERT_TRUE(out.intact());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out.data()[r * n + i], m[r * n + i] * x[i]);
    }
  });
}

TEST(Activation, RejectsNegativeCounts) {
  float x = 0.f;
  EXPECT_THROW(kernels::gelu_erf(&x, &x, -1), Error);
  EXPECT_THROW(kernels::softmax(&x, -3), Error);
  EXPECT_THROW(kernels::mul_rows(&x, &x, &x, -1, 1), Error);
}

TEST(Activation, ScalarAndAvx2Agree) {
  if (!kernels::cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  const auto x = testing::random_floats(1000, 77, -10.f, 10.f);
  for (const auto& c : unary_cases()) {
    std::vector<float> a(x.size()), b(x.size());
    {
      testing::ScopedIsa s(Isa::kScalar);
      c.kernel(x.data(), a.data(), 1000, 1.f);
    }
    {
      testing::ScopedIsa s(Isa::kAvx2);
      c.kernel(x.data(), b.data(), 1000, 1.f);
    }
    EXPECT_LE(testing::nmse(b.data(), a.data(), a.size()), c.max_nmse) << c.name;
  }
}

// Large inputs on the AVX2 path compute no subnormal on the way to a result that is not one:
// each subnormal result is a microcode assist of ~150 cycles, and a GELU whose exponential
// was clamped at the smallest normal, then scaled below it, made every |x| > 13 output pay
// one (NFNet-F6 at random weights: vision ~20 % slower). The CPU records a tiny result in
// the underflow flag, which is what this reads. (The scalar path calls libm, whose erfc and
// exp of large arguments underflow by design.)
TEST(Activation, Avx2LargeMagnitudesMakeNoSubnormals) {
  if (!kernels::cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  testing::ScopedIsa s(Isa::kAvx2);
  const float mags[] = {12.95f, 13.f, 13.1f, 13.3f, 20.f, 50.f, 100.f, 1e4f, 1e30f, INFINITY};
  auto check = [](const char* name, const std::vector<float>& x,
                  const std::function<void(const float*, float*, int64_t)>& f) {
    std::vector<float> y(x.size());
    std::feclearexcept(FE_ALL_EXCEPT);
    f(x.data(), y.data(), static_cast<int64_t>(x.size()));
    const bool underflow = std::fetestexcept(FE_UNDERFLOW) != 0;
    bool subnormal_out = false;
    for (float v : y) subnormal_out |= std::fpclassify(v) == FP_SUBNORMAL;
    EXPECT_FALSE(underflow && !subnormal_out) << name << " at |x| = " << std::fabs(x[0]);
  };
  for (float m : mags) {
    for (float sign : {-1.f, 1.f}) {
      const std::vector<float> x(37, sign * m);  // 4 vectors and a masked tail
      for (const auto& c : unary_cases())
        check(c.name.c_str(), x,
              [&](const float* in, float* out, int64_t n) { c.kernel(in, out, n, 1.f); });
      check("swiglu", x, [](const float* in, float* out, int64_t n) {
        const std::vector<float> up(static_cast<size_t>(n), 1.f);
        kernels::swiglu(in, up.data(), out, n);
      });
      check("softmax", x, [](const float* in, float* out, int64_t n) {
        std::memcpy(out, in, static_cast<size_t>(n) * sizeof(float));
        out[0] = 0.f;  // one element far from the others
        kernels::softmax(out, n);
      });
    }
  }
}

}  // namespace
}  // namespace flamingo
