// AVX2 rotation of one token row. Products and sums are rounded separately (no FMA), exactly
// as PyTorch evaluates q·cos + rotate_half(q)·sin.
#include <immintrin.h>

#include <cstdint>

#include "kernels/rope_isa.h"

namespace flamingo::kernels::avx2 {

void rope_row(float* x, int n_heads, int head_dim, const float* cos, const float* sin,
              bool interleaved) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + static_cast<int64_t>(h) * head_dim;
    int i = 0;
    if (interleaved) {
      // Four pairs per vector: lanes (2i, 2i+1) share cos_i / sin_i.
      for (; i + 4 <= half; i += 4) {
        const __m128 c4 = _mm_loadu_ps(cos + i), s4 = _mm_loadu_ps(sin + i);
        const __m256 c = _mm256_set_m128(_mm_unpackhi_ps(c4, c4), _mm_unpacklo_ps(c4, c4));
        __m256 s = _mm256_set_m128(_mm_unpackhi_ps(s4, s4), _mm_unpacklo_ps(s4, s4));
        s = _mm256_xor_ps(s, _mm256_setr_ps(-0.f, 0.f, -0.f, 0.f, -0.f, 0.f, -0.f, 0.f));
        const __m256 v = _mm256_loadu_ps(xh + 2 * i);
        const __m256 swapped = _mm256_permute_ps(v, 0xB1);
        _mm256_storeu_ps(xh + 2 * i, _mm256_add_ps(_mm256_mul_ps(v, c), _mm256_mul_ps(swapped, s)));
      }
      for (; i < half; ++i) {
        const float a = xh[2 * i], b = xh[2 * i + 1];
        const float ac = a * cos[i], bs = b * sin[i], as = a * sin[i], bc = b * cos[i];
        xh[2 * i] = ac - bs;
        xh[2 * i + 1] = bc + as;
      }
    } else {
      for (; i + 8 <= half; i += 8) {
        const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
        const __m256 x1 = _mm256_loadu_ps(xh + i), x2 = _mm256_loadu_ps(xh + half + i);
        _mm256_storeu_ps(xh + i, _mm256_sub_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x2, s)));
        _mm256_storeu_ps(xh + half + i, _mm256_add_ps(_mm256_mul_ps(x2, c), _mm256_mul_ps(x1, s)));
      }
      for (; i < half; ++i) {
        const float x1 = xh[i], x2 = xh[half + i];
        const float x1c = x1 * cos[i], x2s = x2 * sin[i], x2c = x2 * cos[i], x1s = x1 * sin[i];
        xh[i] = x1c - x2s;
        xh[half + i] = x2c + x1s;
      }
    }
  }
}

}  // namespace flamingo::kernels::avx2
