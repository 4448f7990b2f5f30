// AVX2+FMA 6×16 GEMM micro-kernel: 12 ymm accumulators (6 rows × 2 vectors of 8 columns),
// per k two 8-float loads of the weight panel and six broadcasts of packed A, 12 FMAs.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

template <int MR>
void gemm_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int nr,
               bool add) {
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 2 <= kc; kk += 2) {
#pragma GCC unroll 2
    for (int u = 0; u < 2; ++u) {
      const __m256 b0 = _mm256_loadu_ps(b + (kk + u) * kPanelRows);
      const __m256 b1 = _mm256_loadu_ps(b + (kk + u) * kPanelRows + 8);
      const float* ak = a + (kk + u) * MR;
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m256 av = _mm256_broadcast_ss(ak + r);
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      }
    }
  }
  for (; kk < kc; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(b + kk * kPanelRows);
    const __m256 b1 = _mm256_loadu_ps(b + kk * kPanelRows + 8);
    const float* ak = a + kk * MR;
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(ak + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (nr == kPanelRows) {
    for (int r = 0; r < MR; ++r) {
      float* cr = c + r * ldc;
      if (add) {
        acc[r][0] = _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]);
        acc[r][1] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]);
      }
      _mm256_storeu_ps(cr, acc[r][0]);
      _mm256_storeu_ps(cr + 8, acc[r][1]);
    }
    return;
  }
  // Partial panel: go through a buffer so nothing beyond column nr is read or written.
  for (int r = 0; r < MR; ++r) {
    float tmp[kPanelRows];
    _mm256_storeu_ps(tmp, acc[r][0]);
    _mm256_storeu_ps(tmp + 8, acc[r][1]);
    float* cr = c + r * ldc;
    if (add) {
      for (int j = 0; j < nr; ++j) cr[j] += tmp[j];
    } else {
      for (int j = 0; j < nr; ++j) cr[j] = tmp[j];
    }
  }
}

}  // namespace

void f32_gemm_6x16_avx2(int mr, int64_t kc, const float* a_packed, const float* b, float* c,
                        int64_t ldc, int nr, bool add) {
  switch (mr) {
    case 1:
      return gemm_tile<1>(kc, a_packed, b, c, ldc, nr, add);
    case 2:
      return gemm_tile<2>(kc, a_packed, b, c, ldc, nr, add);
    case 3:
      return gemm_tile<3>(kc, a_packed, b, c, ldc, nr, add);
    case 4:
      return gemm_tile<4>(kc, a_packed, b, c, ldc, nr, add);
    case 5:
      return gemm_tile<5>(kc, a_packed, b, c, ldc, nr, add);
    default:
      return gemm_tile<6>(kc, a_packed, b, c, ldc, nr, add);
  }
}

}  // namespace flamingo::kernels::detail
