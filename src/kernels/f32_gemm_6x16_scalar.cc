// Portable 6×16 GEMM micro-kernel (the tile the AVX2 kernel uses, so both share the packing).
#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {

void f32_gemm_6x16_scalar(int mr, int64_t kc, const float* a_packed, const float* b, float* c,
                          int64_t ldc, int nr, bool add, const void* /*prefetch: no portable hint*/,
                          int /*prefetch_lines*/) {
  float acc[kGemmMr][kPanelRows] = {};
  for (int64_t kk = 0; kk < kc; ++kk) {
    const float* bk = b + kk * kPanelRows;
    for (int r = 0; r < mr; ++r) {
      const float av = a_packed[kk * mr + r];
      for (int j = 0; j < kPanelRows; ++j) acc[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    if (add) {
      for (int j = 0; j < nr; ++j) cr[j] += acc[r][j];
    } else {
      for (int j = 0; j < nr; ++j) cr[j] = acc[r][j];
    }
  }
}

}  // namespace flamingo::kernels::detail
