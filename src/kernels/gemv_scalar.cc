// Portable GEMV over one packed panel. f32/f16/bf16: expands 32 k of the panel at a time into a
// small fp32 buffer and accumulates every row of A against it. Q8_0/Q4_0: integer dot products
// with A rounded to 8 bits, bit for bit what the AVX2 kernels compute.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

constexpr int64_t kChunk = kQBlock;

void gemv_generic(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k, float* out,
                  DequantFn dequant) {
  float acc[7][kPanelRows] = {};
  float buf[kChunk * kPanelRows];
  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int64_t kc = k - k0 < kChunk ? k - k0 : kChunk;
    const float* w;
    if (dequant == nullptr) {
      w = reinterpret_cast<const float*>(panel) + k0 * kPanelRows;
    } else {
      dequant(panel, k0, kc, buf);
      w = buf;
    }
    for (int r = 0; r < m; ++r) {
      const float* ar = a + r * lda + k0;
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int j = 0; j < kPanelRows; ++j) acc[r][j] += ar[kk] * w[kk * kPanelRows + j];
    }
  }
  for (int r = 0; r < m; ++r) std::memcpy(out + int64_t{r} * kPanelRows, acc[r], sizeof acc[r]);
}

}  // namespace

void gemv_f32_scalar(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                     float* out) {
  gemv_generic(a, lda, m, panel, k, out, nullptr);
}
void gemv_f16_scalar(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                     float* out) {
  gemv_generic(a, lda, m, panel, k, out, dequant_panel_f16_scalar);
}
void gemv_bf16_scalar(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                      float* out) {
  gemv_generic(a, lda, m, panel, k, out, dequant_panel_bf16_scalar);
}
void quantize_rows_q8_scalar(const float* a, int64_t lda, int m, int64_t k, int8_t* q, float* d,
                             int32_t* sum) {
  const int64_t nb = k / kQBlock;
  for (int r = 0; r < m; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* x = a + r * lda + b * kQBlock;
      int8_t* qb = q + r * k + b * kQBlock;
      bool finite = true;
      float amax = 0.f;
      for (int i = 0; i < kQBlock; ++i) {
        finite = finite && std::isfinite(x[i]);
        amax = std::max(amax, std::fabs(x[i]));
      }
      float db = 0.f;
      int32_t s = 0;
      std::memset(qb, 0, kQBlock);
      if (!finite) {
        db = std::numeric_limits<float>::quiet_NaN();
      } else if (amax >= kQ8MinAbsMax) {
        db = amax / 127.f;
        const float id = 127.f / amax;
        for (int i = 0; i < kQBlock; ++i) {
          // Round to nearest even, as vcvtps2dq does under the default rounding mode.
          const float v = std::nearbyint(x[i] * id);
          qb[i] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
          s += qb[i];
        }
      }
      d[r * nb + b] = db;
      sum[r * nb + b] = s;
    }
  }
}

namespace {

template <bool Q4>
void gemv_quant(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  constexpr size_t kBlockBytes = Q4 ? kQ4BlockBytes : kQ8BlockBytes;
  const int64_t nb = a.k / kQBlock;
  for (int i = 0; i < m * kPanelRows; ++i) out[i] = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = panel + b * kBlockBytes;
    float dw[kPanelRows];
    block_scales_scalar(blk, dw);
    const uint8_t* q = blk + kQScaleBytes;
    for (int r = 0; r < m; ++r) {
      const int8_t* qa = a.q + r * a.k + b * kQBlock;
      const int64_t ab = r * nb + b;
      for (int j = 0; j < kPanelRows; ++j) {
        int32_t dot = 0;
        for (int kk = 0; kk < kQBlock / (Q4 ? 2 : 1); ++kk) {
          const uint8_t byte = q[(kk / 4 * kPanelRows + j) * 4 + kk % 4];
          if constexpr (Q4) {
            dot += qa[kk] * (byte & 15) + qa[kk + kQBlock / 2] * (byte >> 4);
          } else {
            dot += qa[kk] * static_cast<int8_t>(byte);
          }
        }
        if constexpr (Q4) dot -= 8 * a.sum[ab];
        // The AVX2 kernel's operations in its order: fma(dot, d_w·d_a, acc).
        out[r * kPanelRows + j] =
            std::fma(static_cast<float>(dot), dw[j] * a.d[ab], out[r * kPanelRows + j]);
      }
    }
  }
}

}  // namespace

void gemv_q8_0_q8_scalar(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  gemv_quant<false>(a, m, panel, out);
}
void gemv_q4_0_q8_scalar(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  gemv_quant<true>(a, m, panel, out);
}
// Two streams buy a scalar loop nothing: the two panels one after the other, the same bits.
void gemv_q8_0_q8_1x32_scalar(const QuantizedRows& a, const uint8_t* panel0, const uint8_t* panel1,
                              float* out0, float* out1) {
  gemv_quant<false>(a, 1, panel0, out0);
  gemv_quant<false>(a, 1, panel1, out1);
}
void gemv_q4_0_q8_1x32_scalar(const QuantizedRows& a, const uint8_t* panel0, const uint8_t* panel1,
                              float* out0, float* out1) {
  gemv_quant<true>(a, 1, panel0, out0);
  gemv_quant<true>(a, 1, panel1, out1);
}

}  // namespace flamingo::kernels::detail
