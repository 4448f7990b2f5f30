// Portable GEMV over one packed panel: expands 32 k of the panel at a time into a small fp32
// buffer and accumulates every row of A against it.
#include <cstring>

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
  for (int r = 0; r < m; ++r) std::memcpy(out + r * kPanelRows, acc[r], sizeof acc[r]);
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
void gemv_q8_0_scalar(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                      float* out) {
  gemv_generic(a, lda, m, panel, k, out, dequant_panel_q8_0_scalar);
}
void gemv_q4_0_scalar(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                      float* out) {
  gemv_generic(a, lda, m, panel, k, out, dequant_panel_q4_0_scalar);
}

}  // namespace flamingo::kernels::detail
