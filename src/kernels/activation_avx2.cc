// AVX2+FMA element-wise kernels. The transcendental functions are our own vector
// approximations, each accurate to a few ulp over the whole float range (see the comments at
// each); tails are handled with masked loads and stores so every element takes the same path.
//
// The kernels evaluate long polynomial chains (exp, erf, tanh) on four independent vectors per
// loop pass. GCC emits each chain whole unless it also schedules before register allocation, and
// then the chains do not overlap in the out-of-order window: with pressure-aware scheduling the
// erf GELU, SiLU, SwiGLU and tanh ran 1.05-1.35x faster (elementwise_bench, A/B of the two
// binaries over 4 alternating runs), without the pressure model 10-20 % slower than with it.
// Set here rather than as compile flags, which clang-based tools reject.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/activation_isa.h"
#include "kernels/lanes_avx2.h"

namespace flamingo::kernels::avx2 {
namespace {

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for x already clamped to [−87.34, 88.3]: Cody–Waite reduction x = n·ln2 + r,
// |r| ≤ ln2/2, then Cephes' degree-7 polynomial; about 1 ulp.
inline __m256 exp_in_range8(__m256 xc) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

constexpr float kExpLo = -87.33654f;  // log of the smallest normal float
constexpr float kExpHi = 88.3f;

// e^x over the whole float range: results below the smallest normal flush to 0, above
// 2^127.4 become +inf; NaN propagates.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(kExpLo), hi = _mm256_set1_ps(kExpHi);
  __m256 y = exp_in_range8(_mm256_min_ps(_mm256_max_ps(x, lo), hi));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// x·Φ(x) with Φ(x) = erfc(−x/√2)/2. erfc(a) for a = |x|/√2 ≥ 0 is written exp(−a²)·g(t),
// t = 1/(1 + a/2), and g is a degree-11 polynomial fitted for relative error 3e-9 on
// a ∈ [0, 14] (float evaluation adds ~2 ulp; the coefficients below are g/2, which gives
// erfc/2 directly). a² = x²/2 is formed exactly from x² = hi + lo (FMA), so the exponential
// does not amplify the rounding of x². For x ≥ 0, Φ = 1 − erfc/2 loses nothing; for x < 0,
// Φ = erfc/2 keeps full relative accuracy far into the tail.
// Every lane takes the same path: the encoder applies this to every conv output, and the
// range checks are masks rather than blends (a blendv is 3 µops, an and is 1).
inline __m256 gelu_erf8(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  const __m256 hi = _mm256_mul_ps(x, x);
  const __m256 lo = _mm256_fmsub_ps(x, x, hi);
  const __m256 a = _mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f),
                                 _mm256_fmadd_ps(a, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.f)));
  __m256 g = _mm256_set1_ps(0.01647723521201561f);
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(-0.08675558832406212f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.16656016452667938f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(-0.10599113334349049f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(-0.05128840741871689f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.0460678706247202f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.013666434156225619f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.09740383804787262f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.1215510280150237f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.14127636885403122f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.141031734652624f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(4.565159797874713e-07f));
  // Beyond |x| = 12.9 erfc/2 = e·g would fall below 2.3e-38, towards the subnormals, where
  // every result is a microcode assist of ~150 cycles: such lanes (and NaN) get erfc/2 = 0,
  // and take the exponential of 0 on the way. (Clamping the exponential at the smallest
  // normal instead still left e·g subnormal, and the many |x| > 13 outputs of a deep
  // random-weight encoder made NFNet-F6 ~20 % slower.) For x < −12.9 the exact GELU is below
  // 3e-37 in magnitude; it comes out −0.
  const __m256 in_range = _mm256_cmp_ps(ax, _mm256_set1_ps(12.9f), _CMP_LE_OQ);
  const __m256 z = _mm256_and_ps(_mm256_mul_ps(hi, _mm256_set1_ps(-0.5f)), in_range);
  // exp(−(hi+lo)/2) = exp(−hi/2)·(1 − lo/2) to first order; |lo| ≤ ulp(hi)/2. For
  // |x| ≤ 12.9, −x²/2 ≥ −83.3 is inside exp_in_range8's range.
  const __m256 e = _mm256_mul_ps(exp_in_range8(z),
                                 _mm256_fnmadd_ps(lo, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.f)));
  const __m256 half_erfc = _mm256_and_ps(_mm256_mul_ps(e, g), in_range);
  // blendv picks by the sign bit alone, so x itself is the mask (−0 takes erfc/2 = 1/2).
  const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.f), half_erfc), half_erfc, x);
  return _mm256_mul_ps(x, phi);
}

// The tanh form 0.5·x·(1 + tanh(u)) equals x·sigmoid(2u); the latter has no cancellation for
// negative x.
inline __m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                 _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
  return _mm256_mul_ps(x, sigmoid8(_mm256_add_ps(u, u)));
}

// tanh: for |x| < 0.625 an odd polynomial x + x³·Q(x²) (fitted, ≤ 1 ulp); otherwise
// 1 − 2/(e^{2|x|} + 1), whose cancellation is mild there (amplification < 0.8).
inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 u = _mm256_mul_ps(x, x);
  __m256 q = _mm256_set1_ps(0.0021489808276237876f);
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.008184658234853651f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(0.021703999076329132f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.05394745394155114f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(0.1333321250005463f));
  q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(-0.3333333101033884f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, u), q, x);
  const __m256 e = exp8(_mm256_add_ps(ax, ax));
  const __m256 big_abs =
      _mm256_sub_ps(_mm256_set1_ps(1.f),
                    _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, _mm256_set1_ps(1.f))));
  const __m256 big = _mm256_or_ps(big_abs, _mm256_and_ps(sign, x));
  __m256 y = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

template <typename F>
void map_unary(const float* x, float* y, int64_t n, float scale, F f) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 a = f(_mm256_loadu_ps(x + i)), b = f(_mm256_loadu_ps(x + i + 8));
    const __m256 c = f(_mm256_loadu_ps(x + i + 16)), d = f(_mm256_loadu_ps(x + i + 24));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(a, s));
    _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(b, s));
    _mm256_storeu_ps(y + i + 16, _mm256_mul_ps(c, s));
    _mm256_storeu_ps(y + i + 24, _mm256_mul_ps(d, s));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(f(_mm256_loadu_ps(x + i)), s));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(f(_mm256_maskload_ps(x + i, m)), s));
  }
}

}  // namespace

void gelu_erf(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, gelu_erf8);
}
void gelu_tanh(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, gelu_tanh8);
}
void silu(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, [](__m256 v) {
    return _mm256_div_ps(
        v, _mm256_add_ps(_mm256_set1_ps(1.f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
  });
}
void relu(const float* x, float* y, int64_t n, float scale) {
  // max(0, v) returns v when v is NaN, as torch.relu does.
  map_unary(x, y, n, scale, [](__m256 v) { return _mm256_max_ps(_mm256_setzero_ps(), v); });
}
void squared_relu(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, [](__m256 v) {
    const __m256 r = _mm256_max_ps(_mm256_setzero_ps(), v);
    return _mm256_mul_ps(r, r);
  });
}
void sigmoid(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, sigmoid8);
}
void tanh_act(const float* x, float* y, int64_t n, float scale) {
  map_unary(x, y, n, scale, tanh8);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 g[4];
    for (int64_t u = 0; u < 4; ++u) g[u] = _mm256_loadu_ps(gate + i + 8 * u);
    for (int64_t u = 0; u < 4; ++u) g[u] = _mm256_mul_ps(g[u], sigmoid8(g[u]));
    for (int64_t u = 0; u < 4; ++u)
      _mm256_storeu_ps(y + i + 8 * u, _mm256_mul_ps(g[u], _mm256_loadu_ps(up + i + 8 * u)));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    _mm256_maskstore_ps(
        y + i, m, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_maskload_ps(up + i, m)));
  }
}

float exp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  const __m256 sh = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 e[4];
    for (int64_t u = 0; u < 4; ++u) e[u] = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8 * u), sh));
    // Added in the order of the one-vector loop below, so the sum does not depend on n % 32.
    for (int64_t u = 0; u < 4; ++u) {
      _mm256_storeu_ps(y + i + 8 * u, e[u]);
      acc = _mm256_add_ps(acc, e[u]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    _mm256_storeu_ps(y + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    // Masked-off lanes load 0; exp(0 − shift) must not reach the sum, so zero them again.
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), sh)),
                                   _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(y + i, m, e);
    acc = _mm256_add_ps(acc, e);
  }
  return hsum(acc);
}

void softmax(float* x, int64_t n) {
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  float mx = hmax(vmax);
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float sum = exp_shifted_sum(x, mx, x, n);
  scale(1.f / sum, x, x, n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(
        y + i, m, _mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

void scale(float a, const float* x, float* y, int64_t n) {
  map_unary(x, y, n, a, [](__m256 v) { return v; });
}

void mul_rows(const float* x, const float* w, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8)
      _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(w + i)));
    if (i < cols) {
      const __m256i m = tail_mask(cols - i);
      _mm256_maskstore_ps(
          yr + i, m, _mm256_mul_ps(_mm256_maskload_ps(xr + i, m), _mm256_maskload_ps(w + i, m)));
    }
  }
}

}  // namespace flamingo::kernels::avx2
