// AVX2+FMA attention tile: for each block of 64 keys, the block is transposed once so that up
// to four query rows' scores come out of broadcast-FMA loops over head_dim, then each row
// takes its online-softmax step and accumulates p·V with its accumulator held in registers.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/activation_isa.h"
#include "kernels/attention_isa.h"
#include "kernels/lanes_avx2.h"

namespace flamingo::kernels::avx2 {
namespace {

constexpr int kB = kAttentionKeyBlock;

// s[r·kB + j] = scale · q_r · k_j for j < ncols (a multiple of 16); kt is [head_dim][kB].
template <int NR>
void block_scores(const float* const* q, const float* kt, int head_dim, int ncols, float scale,
                  float* s) {
  const __m256 vs = _mm256_set1_ps(scale);
  for (int jc = 0; jc < ncols; jc += 16) {
    __m256 acc[NR][2];
    for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* kp = kt + jc;
    for (int d = 0; d < head_dim; ++d, kp += kB) {
      const __m256 k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8);
      for (int r = 0; r < NR; ++r) {
        const __m256 qb = _mm256_broadcast_ss(q[r] + d);
        acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      _mm256_storeu_ps(s + r * kB + jc, _mm256_mul_ps(acc[r][0], vs));
      _mm256_storeu_ps(s + r * kB + jc + 8, _mm256_mul_ps(acc[r][1], vs));
    }
  }
}

// o[0, 8·NV) = o·alpha + Σ_{j<n} p[j]·v_j[0, 8·NV), v_j = v + j·v_stride.
template <int NV>
void accumulate_pv(float* o, float alpha, const float* p, int n, const float* v, int64_t v_stride) {
  __m256 acc[NV];
  const __m256 va = _mm256_set1_ps(alpha);
  for (int i = 0; i < NV; ++i) acc[i] = _mm256_mul_ps(_mm256_loadu_ps(o + 8 * i), va);
  for (int j = 0; j < n; ++j, v += v_stride) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    for (int i = 0; i < NV; ++i) acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8 * i), acc[i]);
  }
  for (int i = 0; i < NV; ++i) _mm256_storeu_ps(o + 8 * i, acc[i]);
}

// kt[d·kB + j] = k_j[d] for j < nb, d < head_dim: 8×8 register transposes where whole tiles
// fit, element copies for the edges.
void transpose_keys(const float* k, int64_t k_stride, int nb, int head_dim, float* kt) {
  const int nb8 = nb / 8 * 8, dh8 = head_dim / 8 * 8;
  for (int j0 = 0; j0 < nb8; j0 += 8) {
    const float* kj = k + j0 * k_stride;
    for (int d0 = 0; d0 < dh8; d0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(kj + i * k_stride + d0);
      transpose8x32(r);
      float* d = kt + ptrdiff_t{d0} * kB + j0;
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d + ptrdiff_t{i} * kB, r[i]);
    }
    for (int j = j0; j < j0 + 8; ++j)
      for (int d = dh8; d < head_dim; ++d) kt[d * kB + j] = k[j * k_stride + d];
  }
  for (int j = nb8; j < nb; ++j)
    for (int d = 0; d < head_dim; ++d) kt[d * kB + j] = k[j * k_stride + d];
}

void accumulate_row(float* o, float alpha, const float* p, int n, const float* v, int64_t v_stride,
                    int head_dim) {
  int d = 0;
  for (; d + 64 <= head_dim; d += 64) accumulate_pv<8>(o + d, alpha, p, n, v + d, v_stride);
  switch ((head_dim - d) / 8) {
    case 1:
      accumulate_pv<1>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 2:
      accumulate_pv<2>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 3:
      accumulate_pv<3>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 4:
      accumulate_pv<4>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 5:
      accumulate_pv<5>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 6:
      accumulate_pv<6>(o + d, alpha, p, n, v + d, v_stride);
      break;
    case 7:
      accumulate_pv<7>(o + d, alpha, p, n, v + d, v_stride);
      break;
    default:
      break;
  }
  d += (head_dim - d) / 8 * 8;
  for (; d < head_dim; ++d) {
    float acc = o[d] * alpha;
    for (int j = 0; j < n; ++j) acc += p[j] * v[j * v_stride + d];
    o[d] = acc;
  }
}

}  // namespace

void attention_tile(const AttentionTile& t) {
  const int dh = t.head_dim;
  const int64_t rows = t.n_queries * t.group;
  for (int64_t r = 0; r < rows; ++r) {
    t.row_max[r] = -INFINITY;
    t.row_sum[r] = 0.f;
  }
  std::memset(t.acc, 0, sizeof(float) * static_cast<size_t>(rows * dh));

  for (int64_t kb = 0; kb < t.kv_end; kb += kB) {
    const int nb = static_cast<int>(t.kv_end - kb < kB ? t.kv_end - kb : kB);
    const int ncols = (nb + 15) / 16 * 16;
    transpose_keys(t.k + kb * t.kv_stride, t.kv_stride, nb, dh, t.kt);
    for (int d = 0; d < dh; ++d)
      for (int j = nb; j < ncols; ++j) t.kt[d * kB + j] = 0.f;
    const float* vb = t.v + kb * t.kv_stride;

    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
      const int nr = static_cast<int>(rows - r0 < 4 ? rows - r0 : 4);
      int vis[4];
      const float* q[4];
      bool any = false;
      for (int i = 0; i < nr; ++i) {
        const int64_t qi = (r0 + i) / t.group, h = (r0 + i) % t.group;
        const int64_t limit = t.causal ? t.limit0 + qi : t.limit0;
        const int64_t n = limit - kb;
        vis[i] = static_cast<int>(n <= 0 ? 0 : (n < nb ? n : nb));
        any |= vis[i] > 0;
        q[i] = t.q + qi * t.q_stride + h * dh;
      }
      if (!any) continue;
      switch (nr) {
        case 1:
          block_scores<1>(q, t.kt, dh, ncols, t.scale, t.s);
          break;
        case 2:
          block_scores<2>(q, t.kt, dh, ncols, t.scale, t.s);
          break;
        case 3:
          block_scores<3>(q, t.kt, dh, ncols, t.scale, t.s);
          break;
        default:
          block_scores<4>(q, t.kt, dh, ncols, t.scale, t.s);
          break;
      }
      for (int i = 0; i < nr; ++i) {
        // A row with no visible key in this block is left exactly as it was.
        if (vis[i] == 0) continue;
        const int64_t r = r0 + i;
        float* s = t.s + i * kB;
        float mx = t.row_max[r];
        for (int j = 0; j < vis[i]; ++j) mx = s[j] > mx ? s[j] : mx;
        const float alpha = std::exp(t.row_max[r] - mx);
        const float sum = exp_shifted_sum(s, mx, s, vis[i]);
        t.row_sum[r] = t.row_sum[r] * alpha + sum;
        t.row_max[r] = mx;
        accumulate_row(t.acc + r * dh, alpha, s, vis[i], vb, t.kv_stride, dh);
      }
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t qi = r / t.group, h = r % t.group;
    const float inv = 1.f / t.row_sum[r];
    const float* o = t.acc + r * dh;
    float* dst = t.out + qi * t.out_stride + h * dh;
    for (int d = 0; d < dh; ++d) dst[d] = o[d] * inv;
  }
}

}  // namespace flamingo::kernels::avx2
