// fp16/bf16 conversions and Q8_0/Q4_0 quantisation round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "flamingo/error.h"
#include "kernels/matmul.h"
#include "support/test_util.h"

namespace flamingo::kernels {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Fp16, EdgeCases) {
  EXPECT_EQ(fp32_to_fp16(0.f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(fp32_to_fp16(65520.f), 0x7c00);    // the midpoint rounds to even: infinity
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xfc00);
  const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_NE(fp32_to_fp16(from_bits(0x7f800001u)) & 0x03ff, 0);  // a signalling NaN stays NaN
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -14)), 0x0400);        // smallest normal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -24)), 0x0001);        // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -25)), 0x0000);        // tie → even (0)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.f, -25)), 0x0002);        // tie → even (2)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -26)), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-std::ldexp(1.f, -30)), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);    // rounds up into the normals
  EXPECT_EQ(fp32_to_fp16(1.f + std::ldexp(1.f, -11)), 0x3c00);  // tie → even
  EXPECT_EQ(fp32_to_fp16(1.f + 3 * std::ldexp(1.f, -11)), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(from_bits(0x00000001u)), 0x0000);  // fp32 denormal
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_EQ(fp16_to_fp32(0x7c00), INFINITY);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.f, -24));
  EXPECT_EQ(to_bits(fp16_to_fp32(0x8000)), 0x80000000u);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
    } else {
      ASSERT_EQ(fp32_to_fp16(f), h) << h;
    }
  }
}

// For random floats across the whole half range the result is the nearest half, ties to even.
TEST(Fp16, RoundsToNearestEven) {
  const std::vector<float> x = testing::random_floats(200000, 5, -1.f, 1.f);
  for (size_t i = 0; i < x.size(); ++i) {
    const float f = std::ldexp(x[i], static_cast<int>(i % 42) - 26);  // 2^-26 .. 2^16
    const uint16_t h = fp32_to_fp16(f);
    if ((h & 0x7fff) == 0x7c00) {
      ASSERT_GE(std::fabs(f), 65520.f);
      continue;
    }
    const double err = std::fabs(static_cast<double>(fp16_to_fp32(h)) - f);
    for (int d : {-1, 1}) {
      const uint16_t other = static_cast<uint16_t>(h + d);
      if ((other & 0x7fff) >= 0x7c00 || ((h & 0x7fff) == 0 && d == -1)) continue;
      const double other_err = std::fabs(static_cast<double>(fp16_to_fp32(other)) - f);
      ASSERT_LE(err, other_err) << f;
      if (err == other_err) ASSERT_EQ(h & 1, 0) << f;
    }
  }
}

TEST(Bf16, EdgeCasesAndRoundTrip) {
  EXPECT_EQ(fp32_to_bf16(1.f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(-0.f), 0x8000);
  EXPECT_EQ(fp32_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3f80);      // tie → even
  EXPECT_EQ(fp32_to_bf16(1.f + 3 * std::ldexp(1.f, -8)), 0x3f82);  // tie → even (up)
  EXPECT_EQ(fp32_to_bf16(1.f + std::ldexp(1.f, -9)), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to infinity
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xff80);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(from_bits(0x7f800001u)))));  // low-bit NaN
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(from_bits(0xffc00000u)))));
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00010000u)), 0x0001);  // denormals keep their top bits
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00018000u)), 0x0002);  // tie → even
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
    } else {
      ASSERT_EQ(fp32_to_bf16(f), h) << h;
    }
  }
}

TEST(Quantize, Q8RoundTripWithinHalfStep) {
  const int64_t k = 256;
  std::vector<float> x = testing::random_floats(k, 21, -3.f, 3.f);
  for (int i = 0; i < 32; ++i) x[32 + i] = 0.f;  // an all-zero block
  x[70] = 1000.f;                                // an outlier block
  std::vector<int8_t> q(k);
  std::vector<uint16_t> d(k / 32);
  quantize_row_q8_0(x.data(), k, q.data(), d.data());
  EXPECT_EQ(d[1], 0);
  std::vector<float> y(k);
  dequantize_row({WeightType::kQ8_0, q.data(), d.data(), 1, k}, 0, y.data());
  for (int64_t b = 0; b < k / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    EXPECT_NEAR(fp16_to_fp32(d[b]), amax / 127, amax / 127 * 1e-3 + 1e-30);
    const float step = fp16_to_fp32(d[b]);
    for (int i = 0; i < 32; ++i) {
      // Half a step from rounding, plus the fp16 rounding of the scale times |q| ≤ 127.
      EXPECT_LE(std::fabs(y[b * 32 + i] - x[b * 32 + i]), 0.5f * step + 127 * step * 5e-4f)
          << b << " " << i;
      EXPECT_GE(q[b * 32 + i], -127);
    }
  }
  // Values on the grid come back exactly.
  std::vector<float> grid(32);
  for (int i = 0; i < 32; ++i) grid[i] = static_cast<float>(i * 4 - 64) * 0.5f;
  grid[5] = 63.5f;  // amax = 127 · 0.5
  quantize_row_q8_0(grid.data(), 32, q.data(), d.data());
  dequantize_row({WeightType::kQ8_0, q.data(), d.data(), 1, 32}, 0, y.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], grid[i]);
}

TEST(Quantize, Q4RoundTripWithinOneStep) {
  const int64_t k = 256;
  std::vector<float> x = testing::random_floats(k, 22, -2.f, 2.f);
  for (int i = 0; i < 32; ++i) x[i] = 0.f;
  x[40] = -9.f;  // the block's extreme is negative: it maps to nibble 0
  x[100] = 9.f;  // positive extreme: scale negative, still nibble 0
  std::vector<uint8_t> q(k / 2);
  std::vector<uint16_t> d(k / 32);
  quantize_row_q4_0(x.data(), k, q.data(), d.data());
  std::vector<float> y(k);
  dequantize_row({WeightType::kQ4_0, q.data(), d.data(), 1, k}, 0, y.data());
  EXPECT_EQ(y[40], -9.f);
  EXPECT_EQ(y[100], 9.f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.f);
  for (int64_t b = 0; b < k / 32; ++b) {
    const float step = std::fabs(fp16_to_fp32(d[b]));
    for (int i = 0; i < 32; ++i) {
      // Rounding costs half a step; the clamp at nibble 15 (value +7 steps) costs at most one.
      EXPECT_LE(std::fabs(y[b * 32 + i] - x[b * 32 + i]), step * 1.001f) << b << " " << i;
    }
  }
  // Nibble layout: byte j holds element j (low) and j + 16 (high).
  std::vector<float> grid(32);
  for (int i = 0; i < 32; ++i) grid[i] = static_cast<float>(i % 16 - 8);
  quantize_row_q4_0(grid.data(), 32, q.data(), d.data());
  EXPECT_EQ(fp16_to_fp32(d[0]), 1.f);  // extreme −8 → d = −8/−8
  for (int j = 0; j < 16; ++j) EXPECT_EQ(q[j], (j) | (j << 4)) << j;
}

TEST(Quantize, RejectsBadInput) {
  std::vector<float> x(64, 1.f);
  std::vector<int8_t> q(64);
  std::vector<uint8_t> q4(32);
  std::vector<uint16_t> d(2);
  EXPECT_THROW(quantize_row_q8_0(x.data(), 48, q.data(), d.data()), Error);
  EXPECT_THROW(quantize_row_q4_0(x.data(), 0, q4.data(), d.data()), Error);
  x[3] = NAN;
  EXPECT_THROW(quantize_row_q8_0(x.data(), 64, q.data(), d.data()), Error);
  EXPECT_THROW(quantize_row_q4_0(x.data(), 64, q4.data(), d.data()), Error);
  std::vector<float> out(64);
  EXPECT_THROW(dequantize_row({WeightType::kQ8_0, q.data(), d.data(), 1, 64}, 1, out.data()),
               Error);
}

}  // namespace
}  // namespace flamingo::kernels
