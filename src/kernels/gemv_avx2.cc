// AVX2+FMA+F16C GEMV over one packed panel (M = 1..7 rows of A against 16 weight rows).
//
// Each weight byte is loaded from memory once: K is walked in chunks of kChunk, and when A has
// more rows than one register group holds, the later groups re-read the chunk from L1.
// f32/f16/bf16 weights are widened in registers (F16C for fp16, a 16-bit shift for bf16) and
// multiplied in fp32; several independent accumulators hide the FMA latency, and their fixed
// reduction order keeps results independent of threading. Q8_0/Q4_0 weights are multiplied in
// integers by A rounded to 8 bits per block (QuantizedRows): widening every code to fp32 made
// those kernels compute-bound at 45-86 % of the memory bandwidth, while byte multiply-adds
// handle 32 codes per instruction.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

constexpr int64_t kChunk = 256;

enum Kind { kF32, kF16, kBF16 };

// An empty asm that takes v in a register: GCC folds each use of a loaded vector into an
// instruction of its own with a memory operand, which loads the same bytes again.
inline void keep_in_register(__m256i& v) { asm("" : "+x"(v)); }

// kOneLoad (bf16 only): one 32-byte load per 16 weights, both halves taken from the register,
// not one load for the shift and another for the mask: fewer load µops per cache line. Only
// the one-stream decode kernel asks for it (dense_one_stream says why). f16 always converts
// straight from memory: vcvtph2ps from a register costs Zen 4 twice the pipe time.
template <int T, bool kOneLoad = false>
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
      // A bf16 is the top half of its float. Each 32-bit lane holds columns 2i and 2i + 1:
      // a shift gives the even columns and a mask the odd ones, one µop per 8 weights where
      // zero-extending to 32 bits and shifting took two (a cross-lane shuffle among them).
      // The accumulators hold even and odd columns until to_columns() interleaves them.
      __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
      if constexpr (kOneLoad) keep_in_register(v);
      w0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      w1 = _mm256_castsi256_ps(
          _mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
    }
  }
}

// Sums over the 16 columns as load_w<T> delivered them -> columns 0-7 and 8-15.
template <int T>
inline void to_columns(__m256& lo, __m256& hi) {
  if constexpr (T == kBF16) {
    const __m256 a = _mm256_unpacklo_ps(lo, hi), b = _mm256_unpackhi_ps(lo, hi);
    lo = _mm256_permute2f128_ps(a, b, 0x20);
    hi = _mm256_permute2f128_ps(a, b, 0x31);
  }
}

inline void add_to(float* out, __m256 lo, __m256 hi) {
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), lo));
  _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_loadu_ps(out + 8), hi));
}

// Rows [0, MR) of a over k in [k0, k1), added to out (MR × 16).
//
// gemv_dense calls this once per group of rows on each chunk: the first group takes the chunk
// from DRAM, the others from L1. Prefetching a fixed 1 KiB ahead left DRAM idle while the later
// groups ran, so every group prefetches the next chunk (the same k one chunk on, into L2):
// 2048×5632, 1 thread, best of 7 alternating runs: f32 M = 4 4.37 → 3.68 ms, M = 7 5.29 →
// 4.20 (M = 1 takes 4.0, the bandwidth's time); bf16 M = 4 2.54 → 2.01, M = 7 3.60 → 2.95.
// Every loop over rows is unrolled: with the tail's and the final sum's loops left rolled, GCC
// kept acc in memory and stored it on every pass (2048² from DRAM, one thread, Zen 4, two
// alternating rounds: M = 7, i.e. groups of 4 and 3 rows, f32 0.99 → 0.68 ms, bf16 0.90 →
// 0.60; 5632×2048 f32 2.7 → 1.8, bf16 2.4 → 1.5; M = 4 unchanged).
template <int T, int MR, int KU>
void dense_rows(const float* a, int64_t lda, const uint8_t* panel, int64_t k0, int64_t k1,
                float* out) {
  __m256 acc[KU][MR][2];
  for (int u = 0; u < KU; ++u)
    for (int r = 0; r < MR; ++r) acc[u][r][0] = acc[u][r][1] = _mm256_setzero_ps();
  int64_t k = k0;
  constexpr int64_t kRowBytes = T == kF32 ? 64 : 32;
  constexpr int64_t kAhead = kChunk * kRowBytes;
  for (; k + KU <= k1; k += KU) {
#pragma GCC unroll 4
    for (int u = 0; u < KU; ++u) {
      if ((k + u) * kRowBytes % 64 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(panel) + (k + u) * kRowBytes + kAhead,
                     _MM_HINT_T1);
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
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + k);
      acc[0][r][0] = _mm256_fmadd_ps(av, w0, acc[0][r][0]);
      acc[0][r][1] = _mm256_fmadd_ps(av, w1, acc[0][r][1]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
    __m256 lo = acc[0][r][0], hi = acc[0][r][1];
#pragma GCC unroll 4
    for (int u = 1; u < KU; ++u) {
      lo = _mm256_add_ps(lo, acc[u][r][0]);
      hi = _mm256_add_ps(hi, acc[u][r][1]);
    }
    to_columns<T>(lo, hi);
    add_to(out + int64_t{r} * kPanelRows, lo, hi);
  }
}

// acc += a[kk] · W[j][kk] for the 16 columns j, as load_w<T> delivers them.
template <int T, bool kOneLoad = false>
inline void fma_k(const float* a, const uint8_t* panel, int64_t kk, __m256 (&acc)[2]) {
  __m256 w0, w1;
  load_w<T, kOneLoad>(panel, kk, w0, w1);
  const __m256 av = _mm256_broadcast_ss(a + kk);
  acc[0] = _mm256_fmadd_ps(av, w0, acc[0]);
  acc[1] = _mm256_fmadd_ps(av, w1, acc[1]);
}

// out[0..15] = (acc[0] + acc[1]) + (acc[2] + acc[3]), in column order.
template <int T>
inline void store_sum4(const __m256 (&acc)[4][2], float* out) {
  __m256 lo =
      _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[1][0]), _mm256_add_ps(acc[2][0], acc[3][0]));
  __m256 hi =
      _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[1][1]), _mm256_add_ps(acc[2][1], acc[3][1]));
  to_columns<T>(lo, hi);
  _mm256_storeu_ps(out, lo);
  _mm256_storeu_ps(out + 8, hi);
}

// One row of A (decode) under DecodeStreams::kSeveral: the panel is read as kStreams
// interleaved sequential streams (k in [s·K/kStreams, (s+1)·K/kStreams)), each with its own
// accumulators. Several streams keep more cache-line requests in flight than one, which a single
// Intel core needs to approach DRAM bandwidth.
constexpr int kStreams = 4;
// Each stream prefetches its own lines this far ahead: the hardware prefetchers track four
// interleaved streams in one panel less well than one.
constexpr int64_t kStreamPrefetchBytes = 1024;

template <int T>
void dense_one_row(const float* a, const uint8_t* panel, int64_t k, float* out) {
  constexpr int64_t kRowBytes = T == kF32 ? 64 : 32;
  const int64_t len = k / kStreams;
  __m256 acc[kStreams][2];
  // Indexed, not a range-for: with that, GCC 12 kept the 16-bit kernels' sums on the stack.
  for (int s = 0; s < kStreams; ++s) acc[s][0] = acc[s][1] = _mm256_setzero_ps();
  for (int64_t j = 0; j < len; ++j) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s) {
      const int64_t kk = s * len + j;
      if (kk * kRowBytes % 64 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(panel) + kk * kRowBytes + kStreamPrefetchBytes,
                     _MM_HINT_T0);
      fma_k<T>(a, panel, kk, acc[s]);
    }
  }
  for (int64_t kk = len * kStreams; kk < k; ++kk) fma_k<T>(a, panel, kk, acc[0]);
  store_sum4<T>(acc, out);
}

// One row of A, the panel read front to back (DecodeStreams::kOne). Four accumulators, k mod 4,
// hide the FMA latency: with one, the 16-bit kernels were bound by it near the DRAM rate.
// No software prefetch: a Zen 4 core's prefetchers follow the one stream, and a prefetch 4 KiB
// ahead into L1 cost 3-8 % (one thread, each GEMV alternated with a read sweep of as many
// bytes, bench/matmul_bench's matmul_beside_sweep rows, four shapes, three rounds: f32 at
// 0.97-1.00 of the sweep without, 0.92-0.94 with; f16 0.84-0.93 against 0.82-0.88); 2 KiB
// ahead cost 15-17 % and 4-16 KiB into L2 20-30 % (one round each). bf16 takes its 16
// weights in one 32-byte load (load_w's kOneLoad), as if the core's DRAM stream gained from
// fewer loads per line: beside the sweep, three rounds alternating builds, four shapes, bf16
// 0.86-0.92 against 0.84-0.88 with two loads (and 77-79 GB/s from L2 against 66-69). f16
// does not: its one 32-byte load needed a lane extract and two vcvtph2ps from registers, which
// on Zen 4 take the pipes twice as long as two vcvtph2ps from memory (12 chains of convert +
// FMA, bench/peak_fma.h: 58.6 GB/s of fp16 against 112-117). Two 16-byte loads converted from
// memory: 46-47 → 69-70 GB/s from L2, and beside the sweep (one thread, six rounds
// alternating builds, medians per shape) 0.83-0.87 → 0.87-0.89, better in five rounds of six.

template <int T>
void dense_one_stream(const float* a, const uint8_t* panel, int64_t k, float* out) {
  // Four named accumulator pairs, not an array: GCC 12 kept an acc[4][2] in memory and stored
  // all eight on every pass, eight 32-byte stores per four k, which bounded the kernel from L2
  // (bf16 51 GB/s hot, one 32-byte store per cycle on Zen 4).
  constexpr bool kOneLoad = T == kBF16;
  __m256 s0[2], s1[2], s2[2], s3[2];
  s0[0] = s0[1] = s1[0] = s1[1] = s2[0] = s2[1] = s3[0] = s3[1] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 4 <= k; kk += 4) {
    fma_k<T, kOneLoad>(a, panel, kk, s0);
    fma_k<T, kOneLoad>(a, panel, kk + 1, s1);
    fma_k<T, kOneLoad>(a, panel, kk + 2, s2);
    fma_k<T, kOneLoad>(a, panel, kk + 3, s3);
  }
  if (kk < k) fma_k<T, kOneLoad>(a, panel, kk, s0);
  if (kk + 1 < k) fma_k<T, kOneLoad>(a, panel, kk + 1, s1);
  if (kk + 2 < k) fma_k<T, kOneLoad>(a, panel, kk + 2, s2);
  const __m256 acc[4][2] = {{s0[0], s0[1]}, {s1[0], s1[1]}, {s2[0], s2[1]}, {s3[0], s3[1]}};
  store_sum4<T>(acc, out);
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

inline __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// 4 codes of A (one 32-bit group) in every lane.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The hardware prefetchers alone leave the quantised GEMV stalling on DRAM between its compute
// (one thread read 6.0 G weights/s of q8_0 from DRAM against 12 from L2 with the earlier fp32
// kernels: the two costs added up instead of overlapping). The integer kernels run twice as
// fast from cache, so they prefetch further ahead, into L2: 16 blocks (4.5-8.5 KiB) with the
// T1 hint. Sweep on 2026-12-04 (GEMV from DRAM, the four shapes of the benchmark, medians of 3,
// ranges over shapes): 4 blocks into L1 gave q4_0 9.3-10.8 GB/s on one thread and 17.1-20.5 on
// two, 16 into L2 10.8-12.3 and 19.8-21.3; 32 was no better and less even (13.6-20.2 on two).
constexpr int64_t kPrefetchBlocks = 16;

// Integer dot products of MR rows of quantised A with one block of a panel: is[r][h] holds
// Σ_k q_a[r][k]·code[j][k] for the 8 columns j of half h, each in its 32-bit lane (the packed
// layout keeps 4 k of one column in one lane, matmul_kernels.h).
//
// Q8_0: vpmaddubsw multiplies unsigned by signed bytes, so the weight's sign moves onto A
// (|w| · sign(a, w) = w · a); pairs of products fit in int16 (2·128·127 < 2¹⁵) and vpmaddwd
// sums them into the lanes at once.
// Q4_0: the nibbles (0..15) are unsigned already; the −8 offset is taken out afterwards as
// −8·Σq_a. A lane's int16 partial sums reach at most 8·15·127 over the whole block, so they are
// widened to 32 bits only once per block.
template <bool Q4, int MR>
inline void block_dots(const int8_t* const* aq, const uint8_t* q, __m256i (&is)[MR][2]) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (Q4) {
    const __m256i m15 = _mm256_set1_epi8(15);
    __m256i s16[MR][2];
    for (int r = 0; r < MR; ++r) s16[r][0] = s16[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int64_t g = 0; g < kQBlock / 8; ++g) {
      const __m256i x[2] = {load256(q + g * 64), load256(q + g * 64 + 32)};
      const __m256i lo[2] = {_mm256_and_si256(x[0], m15), _mm256_and_si256(x[1], m15)};
      const __m256i hi[2] = {_mm256_and_si256(_mm256_srli_epi16(x[0], 4), m15),
                             _mm256_and_si256(_mm256_srli_epi16(x[1], 4), m15)};
      for (int r = 0; r < MR; ++r) {
        const __m256i al = bcast4(aq[r] + 4 * g), ah = bcast4(aq[r] + 4 * g + kQBlock / 2);
        for (int h = 0; h < 2; ++h)
          s16[r][h] = _mm256_add_epi16(
              s16[r][h],
              _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], al), _mm256_maddubs_epi16(hi[h], ah)));
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 2; ++h) is[r][h] = _mm256_madd_epi16(s16[r][h], ones);
  } else {
    for (int r = 0; r < MR; ++r) is[r][0] = is[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int64_t g = 0; g < kQBlock / 4; ++g) {
      const __m256i w[2] = {load256(q + g * 64), load256(q + g * 64 + 32)};
      const __m256i u[2] = {_mm256_abs_epi8(w[0]), _mm256_abs_epi8(w[1])};
      for (int r = 0; r < MR; ++r) {
        const __m256i av = bcast4(aq[r] + 4 * g);
        for (int h = 0; h < 2; ++h)
          is[r][h] = _mm256_add_epi32(
              is[r][h],
              _mm256_madd_epi16(_mm256_maddubs_epi16(u[h], _mm256_sign_epi8(av, w[h])), ones));
      }
    }
  }
}

// The kPanelRows fp16 scales that open a block, columns 0-7 and 8-15.
struct BlockScales {
  explicit BlockScales(const uint8_t* block)
      : half{_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block))),
             _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16)))} {}
  __m256 half[2];
};

// acc + (dot − off)·(d_w·d_a) for 8 columns of one block: every quantised GEMV applies the
// scales here, so that all of them, and the scalar kernel, do the same fp32 operations.
inline __m256 add_block(__m256i dot, __m256 dw, __m256 da, __m256i off, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, off)), _mm256_mul_ps(dw, da),
                         acc);
}

// Rows [r0, r0 + MR) of A over the blocks [b0, b1): out[r] = fma(dot, d_w·d_a, out[r]) per
// block in k order, the same operations as the scalar kernel, so both give identical bits.
template <bool Q4, int MR>
void quant_rows(const QuantizedRows& a, int r0, const uint8_t* panel, int64_t b0, int64_t b1,
                float* out) {
  constexpr size_t kBlockBytes = Q4 ? kQ4BlockBytes : kQ8BlockBytes;
  const int64_t nb = a.k / kQBlock;
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* blk = panel + b * kBlockBytes;
    // Past the panel's end this touches the next panel or nothing: prefetches never fault.
    for (size_t l = 0; l < kBlockBytes; l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBlocks * kBlockBytes + l),
                   _MM_HINT_T1);
    const int8_t* aq[MR];
    for (int r = 0; r < MR; ++r) aq[r] = a.q + (r0 + r) * a.k + b * kQBlock;
    __m256i is[MR][2];
    block_dots<Q4, MR>(aq, blk + kQScaleBytes, is);
    const BlockScales dw(blk);
    for (int r = 0; r < MR; ++r) {
      const int64_t ab = (r0 + r) * nb + b;
      const __m256 da = _mm256_set1_ps(a.d[ab]);
      const __m256i off = _mm256_set1_epi32(Q4 ? 8 * a.sum[ab] : 0);
      float* o = out + int64_t{r0 + r} * kPanelRows;
      for (int h = 0; h < 2; ++h)
        _mm256_storeu_ps(o + 8 * h,
                         add_block(is[r][h], dw.half[h], da, off, _mm256_loadu_ps(o + 8 * h)));
    }
  }
}

template <bool Q4>
void gemv_quant(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  for (int i = 0; i < m * kPanelRows; ++i) out[i] = 0.f;
  const int64_t nb = a.k / kQBlock, chunk_blocks = kChunk / kQBlock;
  for (int64_t b0 = 0; b0 < nb; b0 += chunk_blocks) {
    const int64_t b1 = nb - b0 < chunk_blocks ? nb : b0 + chunk_blocks;
    for (int r0 = 0; r0 < m;) {
      const int rows = m - r0 >= 3 ? 3 : m - r0;
      switch (rows) {
        case 1:
          quant_rows<Q4, 1>(a, r0, panel, b0, b1, out);
          break;
        case 2:
          quant_rows<Q4, 2>(a, r0, panel, b0, b1, out);
          break;
        default:
          quant_rows<Q4, 3>(a, r0, panel, b0, b1, out);
          break;
      }
      r0 += rows;
    }
  }
}

// One row of A against P panels (decode), their blocks interleaved, sums kept in registers.
// Each panel's sums are the operations of quant_rows<Q4, 1> in the same order, so the results
// are those of single-panel gemv_quant calls, bit for bit.
//
// P = 2 (DecodeStreams::kSeveral): two streams keep twice the cache-line requests in flight,
// which is what a single Intel core lacked: one thread, Q8_0 from DRAM, 13.4-13.6 GB/s one
// panel at a time against 16.4-17.2 in pairs (Q4_0 14.0-14.2 against 15.6-16.6), on a VM that
// reads 15-17 GB/s. The prefetch then reaches only ~2 KiB ahead, into L1: Q8_0 pairs ran 5-10 %
// slower 8 blocks (4.3 KiB) ahead, Q4_0 pairs best at 4-8 blocks (1.1-2.3 KiB).
// P = 1 (DecodeStreams::kOne): a Zen 4 core's prefetchers follow one stream better than any
// software prefetch. One thread, 2048² from DRAM, medians of 3, three rounds: no prefetch
// Q8_0 18-29 GB/s (most runs 27-29), Q4_0 25-28; T0 1-4 KiB ahead 23-26 and 15-28; quant_rows
// with its 16-block L2 prefetch 22-24 and 20-22.
constexpr int64_t kPairPrefetchBytes = 2048;

template <bool Q4, int P, int64_t kPrefetchBytes>
void quant_panels(const QuantizedRows& a, const uint8_t* const (&panel)[P],
                  float* const (&out)[P]) {
  constexpr size_t kBlockBytes = Q4 ? kQ4BlockBytes : kQ8BlockBytes;
  const int64_t nb = a.k / kQBlock;
  __m256 acc[P][2];
  for (auto& p : acc) p[0] = p[1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* const aq[1] = {a.q + b * kQBlock};
    const __m256 da = _mm256_set1_ps(a.d[b]);
    const __m256i off = _mm256_set1_epi32(Q4 ? 8 * a.sum[b] : 0);
    for (int s = 0; s < P; ++s) {
      const uint8_t* blk = panel[s] + b * kBlockBytes;
      if constexpr (kPrefetchBytes > 0) {
        for (size_t l = 0; l < kBlockBytes; l += 64)
          _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + l), _MM_HINT_T0);
      }
      __m256i is[1][2];
      block_dots<Q4, 1>(aq, blk + kQScaleBytes, is);
      const BlockScales dw(blk);
      for (int h = 0; h < 2; ++h) acc[s][h] = add_block(is[0][h], dw.half[h], da, off, acc[s][h]);
    }
  }
  for (int s = 0; s < P; ++s)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(out[s] + 8 * h, acc[s][h]);
}

// Absolute value of the largest-magnitude element and a flag for a NaN or Inf among 32 floats.
inline float block_absmax(const float* x, bool& finite) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 mx = _mm256_setzero_ps(), nonfinite = _mm256_setzero_ps();
  for (int i = 0; i < kQBlock; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v));
    // v − v is 0 for finite v and NaN for ±Inf or NaN.
    nonfinite = _mm256_or_ps(nonfinite,
                             _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
  }
  finite = _mm256_movemask_ps(nonfinite) == 0;
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  return _mm_cvtss_f32(m4);
}

}  // namespace

void quantize_rows_q8_avx2(const float* a, int64_t lda, int m, int64_t k, int8_t* q, float* d,
                           int32_t* sum) {
  const int64_t nb = k / kQBlock;
  for (int r = 0; r < m; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* x = a + r * lda + b * kQBlock;
      int8_t* qb = q + r * k + b * kQBlock;
      bool finite = true;
      const float amax = block_absmax(x, finite);
      float db = 0.f;
      int32_t s = 0;
      if (!finite) {
        db = __builtin_nanf("");
        std::memset(qb, 0, kQBlock);
      } else if (!(amax >= kQ8MinAbsMax)) {
        std::memset(qb, 0, kQBlock);
      } else {
        db = amax / 127.f;
        const __m256 id = _mm256_set1_ps(127.f / amax);
        __m256i v[4];
        for (int64_t i = 0; i < 4; ++i)
          v[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), id));
        // |v| ≤ 127 already (x·127/absmax, rounded); packing keeps each lane's order after
        // the permute that undoes the per-128-bit interleave of packs.
        const __m256i p16a = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
        const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb), p8);
        const __m256i s32 =
            _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        s = _mm_cvtsi128_si32(s4);
      }
      d[r * nb + b] = db;
      sum[r * nb + b] = s;
    }
  }
}

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
void gemv_f32_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out) {
  dense_one_stream<kF32>(a, panel, k, out);
}
void gemv_f16_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out) {
  dense_one_stream<kF16>(a, panel, k, out);
}
void gemv_bf16_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out) {
  dense_one_stream<kBF16>(a, panel, k, out);
}
void gemv_q8_0_q8_avx2(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  gemv_quant<false>(a, m, panel, out);
}
void gemv_q4_0_q8_avx2(const QuantizedRows& a, int m, const uint8_t* panel, float* out) {
  gemv_quant<true>(a, m, panel, out);
}
void gemv_q8_0_q8_1x16_avx2(const QuantizedRows& a, const uint8_t* panel, float* out) {
  quant_panels<false, 1, 0>(a, {panel}, {out});
}
void gemv_q4_0_q8_1x16_avx2(const QuantizedRows& a, const uint8_t* panel, float* out) {
  quant_panels<true, 1, 0>(a, {panel}, {out});
}
void gemv_q8_0_q8_1x32_avx2(const QuantizedRows& a, const uint8_t* panel0, const uint8_t* panel1,
                            float* out0, float* out1) {
  quant_panels<false, 2, kPairPrefetchBytes>(a, {panel0, panel1}, {out0, out1});
}
void gemv_q4_0_q8_1x32_avx2(const QuantizedRows& a, const uint8_t* panel0, const uint8_t* panel1,
                            float* out0, float* out1) {
  quant_panels<true, 2, kPairPrefetchBytes>(a, {panel0, panel1}, {out0, out1});
}

}  // namespace flamingo::kernels::detail
