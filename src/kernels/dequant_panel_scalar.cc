// Portable expansion of packed weight sub-panels to fp32 (see matmul_kernels.h for layouts).
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {

void dequant_panel_f16_scalar(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(panel) + k0 * kPanelRows;
  for (int64_t i = 0; i < kc * kPanelRows; ++i) out[i] = fp16_to_fp32(h[i]);
}

void dequant_panel_bf16_scalar(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(panel) + k0 * kPanelRows;
  for (int64_t i = 0; i < kc * kPanelRows; ++i) out[i] = bf16_to_fp32(h[i]);
}

void block_scales_scalar(const uint8_t* block, float* d) {
  uint16_t sh[kPanelRows];
  std::memcpy(sh, block, sizeof sh);
  for (int j = 0; j < kPanelRows; ++j) d[j] = fp16_to_fp32(sh[j]);
}

void dequant_panel_q8_0_scalar(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ8BlockBytes;
    float d[kPanelRows];
    block_scales_scalar(blk, d);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + kQScaleBytes);
    for (int64_t kk = 0; kk < kQBlock; ++kk) {
      for (int j = 0; j < kPanelRows; ++j) {
        const int64_t at = (kk / 4 * kPanelRows + j) * 4 + kk % 4;
        out[kk * kPanelRows + j] = d[j] * static_cast<float>(q[at]);
      }
    }
    out += int64_t{kQBlock} * kPanelRows;
  }
}

void dequant_panel_q4_0_scalar(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t b = k0 / kQBlock; b < (k0 + kc) / kQBlock; ++b) {
    const uint8_t* blk = panel + b * kQ4BlockBytes;
    float d[kPanelRows];
    block_scales_scalar(blk, d);
    const uint8_t* q = blk + kQScaleBytes;
    for (int64_t kk = 0; kk < kQBlock / 2; ++kk) {
      for (int j = 0; j < kPanelRows; ++j) {
        const uint8_t byte = q[(kk / 4 * kPanelRows + j) * 4 + kk % 4];
        out[kk * kPanelRows + j] = d[j] * static_cast<float>((byte & 15) - 8);
        out[(kk + kQBlock / 2) * kPanelRows + j] = d[j] * static_cast<float>((byte >> 4) - 8);
      }
    }
    out += int64_t{kQBlock} * kPanelRows;
  }
}

}  // namespace flamingo::kernels::detail
