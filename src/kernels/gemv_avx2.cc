// AVX2+FMA+F16C GEMV over one packed panel (M = 1..7 rows of A against 16 weight rows).
//
// Each weight byte is loaded from memory once: K is walked in chunks of kChunk, and when A has
// more rows than one register group holds, the later groups re-read the chunk from L1.
// Weights are widened in registers (F16C for fp16, a 16-bit shift for bf16, sign extension for
// int8/int4). For the quantised types the products of a block of 32 k are summed unscaled and
// multiplied by the block's scales once, which saves a multiply per weight. Several independent
// accumulators hide the FMA latency; their fixed reduction order keeps results independent of
// threading.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

constexpr int64_t kChunk = 256;
#ifndef PF_DIST
#define PF_DIST 1024
#endif

enum Kind { kF32, kF16, kBF16 };

template <int T>
inline void load_w(const uint8_t* panel, int64_t k, __m256& w0, __m256& w1) {
  if constexpr (T == kF32) {
    const float* f = reinterpret_cast<const float*>(panel) + k * kPanelRows;
    w0 = _mm256_loadu_ps(f);
    w1 = _mm256_loadu_ps(f + 8);
  } else {
    const __m128i* h =
        reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(panel) + k * kPanelRows);
    if constexpr (T == kF16) {
      w0 = _mm256_cvtph_ps(_mm_loadu_si128(h));
      w1 = _mm256_cvtph_ps(_mm_loadu_si128(h + 1));
    } else {
      w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(h)), 16));
      w1 =
          _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(h + 1)), 16));
    }
  }
}

inline void add_to(float* out, __m256 lo, __m256 hi) {
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), lo));
  _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_loadu_ps(out + 8), hi));
}

// Rows [0, MR) of a over k in [k0, k1), added to out (MR × 16).
template <int T, int MR, int KU>
void dense_rows(const float* a, int64_t lda, const uint8_t* panel, int64_t k0, int64_t k1,
                float* out) {
  __m256 acc[KU][MR][2];
  for (int u = 0; u < KU; ++u)
    for (int r = 0; r < MR; ++r) acc[u][r][0] = acc[u][r][1] = _mm256_setzero_ps();
  int64_t k = k0;
  constexpr int64_t kRowBytes = T == kF32 ? 64 : 32;
  for (; k + KU <= k1; k += KU) {
#pragma GCC unroll 4
    for (int u = 0; u < KU; ++u) {
      if ((k + u) * kRowBytes % 64 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(panel) + (k + u) * kRowBytes + PF_DIST,
                     _MM_HINT_T0);
      __m256 w0, w1;
      load_w<T>(panel, k + u, w0, w1);
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        const __m256 av = _mm256_broadcast_ss(a + r * lda + k + u);
        acc[u][r][0] = _mm256_fmadd_ps(av, w0, acc[u][r][0]);
        acc[u][r][1] = _mm256_fmadd_ps(av, w1, acc[u][r][1]);
      }
    }
  }
  for (; k < k1; ++k) {
    __m256 w0, w1;
    load_w<T>(panel, k, w0, w1);
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + k);
      acc[0][r][0] = _mm256_fmadd_ps(av, w0, acc[0][r][0]);
      acc[0][r][1] = _mm256_fmadd_ps(av, w1, acc[0][r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    __m256 lo = acc[0][r][0], hi = acc[0][r][1];
    for (int u = 1; u < KU; ++u) {
      lo = _mm256_add_ps(lo, acc[u][r][0]);
      hi = _mm256_add_ps(hi, acc[u][r][1]);
    }
    add_to(out + int64_t{r} * kPanelRows, lo, hi);
  }
}

// One row of A (decode): the panel is read as kStreams interleaved sequential streams (k in
// [s·K/kStreams, (s+1)·K/kStreams)), each with its own accumulators. Several streams keep more
// cache-line requests in flight than one, which a single core needs to approach DRAM bandwidth.
constexpr int kStreams = 4;

template <int T>
void dense_one_row(const float* a, const uint8_t* panel, int64_t k, float* out) {
  constexpr int64_t kRowBytes = T == kF32 ? 64 : 32;
  const int64_t len = k / kStreams;
  __m256 acc[kStreams][2];
  for (int s = 0; s < kStreams; ++s) acc[s][0] = acc[s][1] = _mm256_setzero_ps();
  for (int64_t j = 0; j < len; ++j) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s) {
      const int64_t kk = s * len + j;
      if (kk * kRowBytes % 64 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(panel) + kk * kRowBytes + PF_DIST, _MM_HINT_T0);
      __m256 w0, w1;
      load_w<T>(panel, kk, w0, w1);
      const __m256 av = _mm256_broadcast_ss(a + kk);
      acc[s][0] = _mm256_fmadd_ps(av, w0, acc[s][0]);
      acc[s][1] = _mm256_fmadd_ps(av, w1, acc[s][1]);
    }
  }
  for (int64_t kk = len * kStreams; kk < k; ++kk) {
    __m256 w0, w1;
    load_w<T>(panel, kk, w0, w1);
    const __m256 av = _mm256_broadcast_ss(a + kk);
    acc[0][0] = _mm256_fmadd_ps(av, w0, acc[0][0]);
    acc[0][1] = _mm256_fmadd_ps(av, w1, acc[0][1]);
  }
  const __m256 lo =
      _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[1][0]), _mm256_add_ps(acc[2][0], acc[3][0]));
  const __m256 hi =
      _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[1][1]), _mm256_add_ps(acc[2][1], acc[3][1]));
  _mm256_storeu_ps(out, lo);
  _mm256_storeu_ps(out + 8, hi);
}

template <int T>
void gemv_dense(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k, float* out) {
  if (m == 1) return dense_one_row<T>(a, panel, k, out);
  for (int i = 0; i < m * kPanelRows; ++i) out[i] = 0.f;
  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int64_t k1 = k - k0 < kChunk ? k : k0 + kChunk;
    for (int r0 = 0; r0 < m;) {
      const int rows = m - r0 >= 4 ? 4 : m - r0;
      const float* ar = a + r0 * lda;
      float* o = out + int64_t{r0} * kPanelRows;
      switch (rows) {
        case 1:
          dense_rows<T, 1, 4>(ar, lda, panel, k0, k1, o);
          break;
        case 2:
          dense_rows<T, 2, 2>(ar, lda, panel, k0, k1, o);
          break;
        case 3:
          dense_rows<T, 3, 2>(ar, lda, panel, k0, k1, o);
          break;
        default:
          dense_rows<T, 4, 1>(ar, lda, panel, k0, k1, o);
          break;
      }
      r0 += rows;
    }
  }
}

// 8 int8 (or uint8) at p widened to 8 floats; the load folds into vpmovsxbd / vpmovzxbd.
inline __m256 i8x8_to_ps(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256i u8x8_to_epi32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Rows [0, MR) of a over the quantised blocks [b0, b1), added to out (MR × 16).
//
// Q4 nibbles are widened as unsigned bytes to 32-bit lanes, the low nibble masked and the high
// one shifted down, and summed against A without the −8 offset; the block's products are then
// corrected by −8·Σa once: Σ a·(q−8) = Σ a·q − 8·Σ a. That saves the byte-level subtraction
// and the half-register shuffles of the direct route.
// The hardware prefetchers alone left the q8_0 / q4_0 GEMV stalling on DRAM between its
// compute: one thread read 6.0 G weights/s (q8_0) and 9.7 (q4_0) from DRAM against 12 and 11
// from L2, i.e. the two costs added up instead of overlapping. Prefetching the block
// kPrefetchBlocks ahead (2.1 KiB for q8_0, 1.1 KiB for q4_0) gave 10.1 and 12.8 G weights/s;
// 2, 8 and 16 blocks were measured too and were slower (2048×2048, 1 thread, 2026-12-04).
constexpr int64_t kPrefetchBlocks = 4;
template <bool Q4, int MR>
void quant_rows(const float* a, int64_t lda, const uint8_t* panel, int64_t b0, int64_t b1,
                float* out) {
  constexpr size_t kBlockBytes = Q4 ? kQ4BlockBytes : kQ8BlockBytes;
  // One row of A gives only 4 FMA chains per set of partial sums, fewer than FMA latency ×
  // throughput needs, so M = 1 (decode) keeps a second set: 23-26 % less CPU time per call
  // for q4_0/q8_0 at K = N = 2048.
  constexpr int P = MR == 1 ? 2 : 1;
  const __m256i low_mask = _mm256_set1_epi32(15);
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = panel + b * kBlockBytes;
    const uint8_t* q = blk + 32;
    // Past the panel's end this touches the next panel or nothing: prefetches never fault.
    for (size_t l = 0; l < kBlockBytes; l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBlocks * kBlockBytes + l),
                   _MM_HINT_T0);
    const float* ab = a + b * kQBlock;
    // Independent sums per set, kind and half: even/odd k for Q8, low/high nibble for Q4.
    __m256 t[P][2][MR][2];
    for (int p = 0; p < P; ++p)
      for (int u = 0; u < 2; ++u)
        for (int r = 0; r < MR; ++r) t[p][u][r][0] = t[p][u][r][1] = _mm256_setzero_ps();
    if constexpr (Q4) {
      for (int j0 = 0; j0 < kQBlock / 2; j0 += 2) {
#pragma GCC unroll 2
        for (int jj = 0; jj < 2; ++jj) {
          const int j = j0 + jj, p = P == 2 ? jj : 0;
          const __m256i x0 = u8x8_to_epi32(q + int64_t{j} * kPanelRows);
          const __m256i x1 = u8x8_to_epi32(q + int64_t{j} * kPanelRows + 8);
          const __m256 w[2][2] = {{_mm256_cvtepi32_ps(_mm256_and_si256(x0, low_mask)),
                                   _mm256_cvtepi32_ps(_mm256_and_si256(x1, low_mask))},
                                  {_mm256_cvtepi32_ps(_mm256_srli_epi32(x0, 4)),
                                   _mm256_cvtepi32_ps(_mm256_srli_epi32(x1, 4))}};
#pragma GCC unroll 2
          for (int u = 0; u < 2; ++u) {
#pragma GCC unroll 3
            for (int r = 0; r < MR; ++r) {
              const __m256 av = _mm256_broadcast_ss(ab + r * lda + j + int64_t{u} * (kQBlock / 2));
              t[p][u][r][0] = _mm256_fmadd_ps(av, w[u][0], t[p][u][r][0]);
              t[p][u][r][1] = _mm256_fmadd_ps(av, w[u][1], t[p][u][r][1]);
            }
          }
        }
      }
      // The −8 offset: subtract 8·Σa of the block from every column.
      for (int r = 0; r < MR; ++r) {
        const float* ar = ab + r * lda;
        __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(ar), _mm256_loadu_ps(ar + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(ar + 16), _mm256_loadu_ps(ar + 24)));
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        const __m256 off = _mm256_set1_ps(-8.f * _mm_cvtss_f32(s4));
        t[0][0][r][0] = _mm256_add_ps(t[0][0][r][0], off);
        t[0][0][r][1] = _mm256_add_ps(t[0][0][r][1], off);
      }
    } else {
      for (int j = 0; j < kQBlock; j += 2 * P) {
#pragma GCC unroll 2
        for (int p = 0; p < P; ++p) {
#pragma GCC unroll 2
          for (int u = 0; u < 2; ++u) {
            const int kk = j + 2 * p + u;
            const __m256 w0 = i8x8_to_ps(q + int64_t{kk} * kPanelRows);
            const __m256 w1 = i8x8_to_ps(q + int64_t{kk} * kPanelRows + 8);
#pragma GCC unroll 3
            for (int r = 0; r < MR; ++r) {
              const __m256 av = _mm256_broadcast_ss(ab + r * lda + kk);
              t[p][u][r][0] = _mm256_fmadd_ps(av, w0, t[p][u][r][0]);
              t[p][u][r][1] = _mm256_fmadd_ps(av, w1, t[p][u][r][1]);
            }
          }
        }
      }
    }
    if constexpr (P == 2) {
      for (int u = 0; u < 2; ++u)
        for (int r = 0; r < MR; ++r)
          for (int h = 0; h < 2; ++h) t[0][u][r][h] = _mm256_add_ps(t[0][u][r][h], t[1][u][r][h]);
    }
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)));
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = _mm256_fmadd_ps(_mm256_add_ps(t[0][0][r][0], t[0][1][r][0]), d0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(_mm256_add_ps(t[0][0][r][1], t[0][1][r][1]), d1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) add_to(out + int64_t{r} * kPanelRows, acc[r][0], acc[r][1]);
}

template <bool Q4>
void gemv_quant(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k, float* out) {
  for (int i = 0; i < m * kPanelRows; ++i) out[i] = 0.f;
  const int64_t nb = k / kQBlock, chunk_blocks = kChunk / kQBlock;
  for (int64_t b0 = 0; b0 < nb; b0 += chunk_blocks) {
    const int64_t b1 = nb - b0 < chunk_blocks ? nb : b0 + chunk_blocks;
    for (int r0 = 0; r0 < m;) {
      const int rows = m - r0 >= 3 ? 3 : m - r0;
      const float* ar = a + r0 * lda;
      float* o = out + int64_t{r0} * kPanelRows;
      switch (rows) {
        case 1:
          quant_rows<Q4, 1>(ar, lda, panel, b0, b1, o);
          break;
        case 2:
          quant_rows<Q4, 2>(ar, lda, panel, b0, b1, o);
          break;
        default:
          quant_rows<Q4, 3>(ar, lda, panel, b0, b1, o);
          break;
      }
      r0 += rows;
    }
  }
}

}  // namespace

void gemv_f32_avx2(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                   float* out) {
  gemv_dense<kF32>(a, lda, m, panel, k, out);
}
void gemv_f16_avx2(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                   float* out) {
  gemv_dense<kF16>(a, lda, m, panel, k, out);
}
void gemv_bf16_avx2(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                    float* out) {
  gemv_dense<kBF16>(a, lda, m, panel, k, out);
}
void gemv_q8_0_avx2(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                    float* out) {
  gemv_quant<false>(a, lda, m, panel, k, out);
}
void gemv_q4_0_avx2(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                    float* out) {
  gemv_quant<true>(a, lda, m, panel, k, out);
}

}  // namespace flamingo::kernels::detail
