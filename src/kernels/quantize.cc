// Scalar fp16/bf16 conversions and Q8_0/Q4_0 quantisation, used by converters, packing and
// tests (the kernels themselves never expand a whole matrix).
#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#include "util/check.h"

namespace flamingo::kernels {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

void check_row(const void* x, int64_t k, const void* q, const uint16_t* scales, const char* fn) {
  if (x == nullptr || q == nullptr || scales == nullptr)
    fail(ErrorCode::kInvalidArgument, fn, ": null pointer");
  if (k <= 0 || k % 32 != 0)
    fail(ErrorCode::kInvalidArgument, fn, ": k = ", k, " must be a positive multiple of 32");
}

}  // namespace

const char* weight_type_name(WeightType type) {
  switch (type) {
    case WeightType::kF32:
      return "f32";
    case WeightType::kF16:
      return "f16";
    case WeightType::kBF16:
      return "bf16";
    case WeightType::kQ8_0:
      return "q8_0";
    case WeightType::kQ4_0:
      return "q4_0";
  }
  return "unknown";
}

size_t weight_bytes(WeightType type, int64_t n, int64_t k) {
  const size_t count = static_cast<size_t>(n) * static_cast<size_t>(k);
  switch (type) {
    case WeightType::kF32:
      return count * 4;
    case WeightType::kF16:
    case WeightType::kBF16:
      return count * 2;
    case WeightType::kQ8_0:
      return count + count / 32 * 2;
    case WeightType::kQ4_0:
      return count / 2 + count / 32 * 2;
  }
  return 0;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {  // Inf stays Inf; NaN stays a (quiet) NaN keeping the top payload bits
    return x == 0x7f800000u ? sign | 0x7c00u : sign | 0x7e00u | ((x >> 13) & 0x3ffu);
  }
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // ≥ 65520 rounds (to even) past the largest half
  if (x < 0x38800000u) {
    // Below 2^-14 the result is subnormal: adding 0.5 puts the value where one fp32 ulp is one
    // half subnormal step (2^-24), so the FPU does the round-to-nearest-even for us.
    const float t = float_of(x) + 0.5f;
    return sign | static_cast<uint16_t>(bits_of(t) - 0x3f000000u);
  }
  // Rebias the exponent (127 → 15) and round the 13 dropped mantissa bits to nearest even.
  x += 0xc8000fffu + ((x >> 13) & 1u);
  return sign | static_cast<uint16_t>(x >> 13);
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant · 2^-24, exact
    return float_of(sign | bits_of(v));
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));
  return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float bf16_to_fp32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

void quantize_row_q8_0(const float* x, int64_t k, int8_t* q, uint16_t* scales) {
  check_row(x, k, q, scales, "quantize_row_q8_0");
  for (int64_t b = 0; b < k / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.f;
    for (int i = 0; i < 32; ++i) {
      if (!std::isfinite(xb[i]))
        fail(ErrorCode::kInvalidArgument, "quantize_row_q8_0: non-finite value at ", b * 32 + i);
      amax = std::fmax(amax, std::fabs(xb[i]));
    }
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    scales[b] = fp32_to_fp16(d);
    for (int i = 0; i < 32; ++i) q[b * 32 + i] = static_cast<int8_t>(std::lround(xb[i] * id));
  }
}

void quantize_row_q4_0(const float* x, int64_t k, uint8_t* q, uint16_t* scales) {
  check_row(x, k, q, scales, "quantize_row_q4_0");
  for (int64_t b = 0; b < k / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.f, max = 0.f;  // max: the value of largest magnitude, sign kept
    for (int i = 0; i < 32; ++i) {
      if (!std::isfinite(xb[i]))
        fail(ErrorCode::kInvalidArgument, "quantize_row_q4_0: non-finite value at ", b * 32 + i);
      if (std::fabs(xb[i]) > amax) {
        amax = std::fabs(xb[i]);
        max = xb[i];
      }
    }
    const float d = max / -8.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    scales[b] = fp32_to_fp16(d);
    uint8_t* qb = q + b * 16;
    for (int i = 0; i < 16; ++i) {
      const float lo = std::floor(xb[i] * id + 8.5f), hi = std::floor(xb[i + 16] * id + 8.5f);
      const int l = static_cast<int>(std::fmin(15.f, std::fmax(0.f, lo)));
      const int h = static_cast<int>(std::fmin(15.f, std::fmax(0.f, hi)));
      qb[i] = static_cast<uint8_t>(l | (h << 4));
    }
  }
}

void dequantize_row(const WeightView& w, int64_t row, float* out) {
  if (w.data == nullptr || out == nullptr)
    fail(ErrorCode::kInvalidArgument, "dequantize_row: null pointer");
  if (row < 0 || row >= w.n)
    fail(ErrorCode::kInvalidArgument, "dequantize_row: row ", row, " outside [0, ", w.n, ")");
  const int64_t k = w.k;
  switch (w.type) {
    case WeightType::kF32:
      std::memcpy(out, static_cast<const float*>(w.data) + row * k, static_cast<size_t>(k) * 4);
      return;
    case WeightType::kF16:
    case WeightType::kBF16: {
      const uint16_t* h = static_cast<const uint16_t*>(w.data) + row * k;
      for (int64_t i = 0; i < k; ++i)
        out[i] = w.type == WeightType::kF16 ? fp16_to_fp32(h[i]) : bf16_to_fp32(h[i]);
      return;
    }
    case WeightType::kQ8_0:
    case WeightType::kQ4_0: {
      if (k % 32 != 0 || w.scales == nullptr)
        fail(ErrorCode::kInvalidArgument,
             "dequantize_row: quantised view needs scales and k % 32 == 0");
      const int64_t nb = k / 32;
      for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(w.scales[row * nb + b]);
        if (w.type == WeightType::kQ8_0) {
          const int8_t* q = static_cast<const int8_t*>(w.data) + row * k + b * 32;
          for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<float>(q[i]);
        } else {
          const uint8_t* q = static_cast<const uint8_t*>(w.data) + (row * nb + b) * 16;
          for (int i = 0; i < 16; ++i) {
            out[b * 32 + i] = d * static_cast<float>((q[i] & 15) - 8);
            out[b * 32 + i + 16] = d * static_cast<float>((q[i] >> 4) - 8);
          }
        }
      }
      return;
    }
  }
  fail(ErrorCode::kInvalidArgument, "dequantize_row: unknown weight type");
}

}  // namespace flamingo::kernels
