// AVX2+FMA 6×16 GEMM micro-kernel: 12 ymm accumulators (6 rows × 2 vectors of 8 columns),
// per k two 8-float loads of the weight panel and six broadcasts of packed A, 12 FMAs.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/matmul_kernels.h"

namespace flamingo::kernels::detail {
namespace {

template <int MR>
void store_tile(const __m256 (&acc)[MR][2], float* c, int64_t ldc, int nr, bool add) {
  if (nr == kPanelRows) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      float* cr = c + r * ldc;
      if (add) {
        _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[r][0]));
        _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc[r][1]));
      } else {
        _mm256_storeu_ps(cr, acc[r][0]);
        _mm256_storeu_ps(cr + 8, acc[r][1]);
      }
    }
    return;
  }
  // Partial panel: go through a buffer so nothing beyond column nr is read or written.
#pragma GCC unroll 6
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

// Tiles of 1 to 5 rows. Like the 6-row tile they prefetch `lines` lines of their slice per
// 4 k (into L2), four prefetches s bytes apart, with no branch in the loop: GCC kept the
// accumulators on the stack when the prefetch was conditional. Without a slice they touch the
// line of B just read, as the 6-row tile does. Every loop over the rows is unrolled, the tail's
// and store_tile's too: one that indexed acc by a loop variable kept all of it in memory, and
// the main loop stored 2·MR vectors per pass (M = 8, i.e. tiles of 6 and 2 rows, one thread:
// 89-92 GFLOP/s before, 92-95 after; M = 64 unchanged).
template <int MR>
void gemm_tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int nr, bool add,
               const void* prefetch, int lines) {
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const char* pf = prefetch ? static_cast<const char*>(prefetch) : reinterpret_cast<const char*>(b);
  const int64_t s = prefetch ? 16 * int64_t{lines} : 16;
  int64_t kk = 0;
  for (; kk + 4 <= kc; kk += 4) {
    _mm_prefetch(pf, _MM_HINT_T1);
    _mm_prefetch(pf + s, _MM_HINT_T1);
    _mm_prefetch(pf + 2 * s, _MM_HINT_T1);
    _mm_prefetch(pf + 3 * s, _MM_HINT_T1);
    pf += 4 * s;
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
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
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(ak + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  store_tile<MR>(acc, c, ldc, nr, add);
}

// One k of the 6-row tile: ymm0/1 take the 16 weights at byte offset B of %[b], ymm2/3 in
// turn the six A values from byte offset A of %[a], and ymm4..15 accumulate.
// clang-format off
#define FLAMINGO_F32_6X16_K(B, B8, A0, A1, A2, A3, A4, A5)                                   \
  "vmovups " #B "(%[b]), %%ymm0\n\t"                                                          \
  "vmovups " #B8 "(%[b]), %%ymm1\n\t"                                                         \
  "vbroadcastss " #A0 "(%[a]), %%ymm2\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm2, %%ymm4\n\t"                                                    \
  "vfmadd231ps %%ymm1, %%ymm2, %%ymm5\n\t"                                                    \
  "vbroadcastss " #A1 "(%[a]), %%ymm3\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm3, %%ymm6\n\t"                                                    \
  "vfmadd231ps %%ymm1, %%ymm3, %%ymm7\n\t"                                                    \
  "vbroadcastss " #A2 "(%[a]), %%ymm2\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm2, %%ymm8\n\t"                                                    \
  "vfmadd231ps %%ymm1, %%ymm2, %%ymm9\n\t"                                                    \
  "vbroadcastss " #A3 "(%[a]), %%ymm3\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm3, %%ymm10\n\t"                                                   \
  "vfmadd231ps %%ymm1, %%ymm3, %%ymm11\n\t"                                                   \
  "vbroadcastss " #A4 "(%[a]), %%ymm2\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm2, %%ymm12\n\t"                                                   \
  "vfmadd231ps %%ymm1, %%ymm2, %%ymm13\n\t"                                                   \
  "vbroadcastss " #A5 "(%[a]), %%ymm3\n\t"                                                    \
  "vfmadd231ps %%ymm0, %%ymm3, %%ymm14\n\t"                                                   \
  "vfmadd231ps %%ymm1, %%ymm3, %%ymm15\n\t"
// clang-format on

// The full 6-row tile. Its k loop is written in assembly: from intrinsics GCC spilled one of
// the 12 accumulators to the stack, which put a store-to-load round trip on a dependency chain
// and cost about a third of the throughput. The loop takes 4 k per pass: the pointer updates
// and the loop branch then cost 4 integer µops per 48 FMAs, and each pass prefetches one line
// at pf (the dispatcher's slice of the next weights; the weights just read when there is none),
// or 2 or 4 lines into L2 in a second loop when the block has too few row tiles for one.
// A full panel (nr = 16) is added to and stored into C from the registers; a partial one goes
// through the stack to store_tile. Through the stack, 5.5 % of this function's samples fell
// outside its k loop in NFNet's 16×16 grouped 3×3 conv (calls of kc = 256), 4.1 % without.
void gemm_tile6(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int nr, bool add,
                const void* prefetch, int prefetch_lines) {
  alignas(32) float acc[6][2][8];
  const void* pf = prefetch ? prefetch : b;
  // Lines per pass × 16: the distance between the four prefetches of a pass of 2 or 4 lines.
  const int64_t ps = prefetch ? 16 * int64_t{prefetch_lines} : 16, ps3 = 3 * ps;
  int64_t passes = kc / 4, rest = kc % 4;
  // The C tile is read (or written) only after the k loop; asking for its lines now hides the
  // cache misses a large C (bigger than L2) would otherwise cost at every tile.
  for (int r = 0; r < 6; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }
  // 0: store to acc (partial panel); 1: C = acc; 2: C = C + acc.
  const int64_t mode = nr != kPanelRows ? 0 : add ? 2 : 1;
  const int64_t ldc_bytes = ldc * 4;
  float* const c3 = c + 3 * ldc;
  __asm__ volatile(
      "vxorps %%xmm4, %%xmm4, %%xmm4\n\t"
      "vxorps %%xmm5, %%xmm5, %%xmm5\n\t"
      "vxorps %%xmm6, %%xmm6, %%xmm6\n\t"
      "vxorps %%xmm7, %%xmm7, %%xmm7\n\t"
      "vxorps %%xmm8, %%xmm8, %%xmm8\n\t"
      "vxorps %%xmm9, %%xmm9, %%xmm9\n\t"
      "vxorps %%xmm10, %%xmm10, %%xmm10\n\t"
      "vxorps %%xmm11, %%xmm11, %%xmm11\n\t"
      "vxorps %%xmm12, %%xmm12, %%xmm12\n\t"
      "vxorps %%xmm13, %%xmm13, %%xmm13\n\t"
      "vxorps %%xmm14, %%xmm14, %%xmm14\n\t"
      "vxorps %%xmm15, %%xmm15, %%xmm15\n\t"
      "test %[passes], %[passes]\n\t"
      "jz 3f\n\t"
      "cmp $16, %[ps]\n\t"
      "je 8f\n\t"
      // Two or four lines per pass, a prefetch before each k.
      "1:\n\t"
      "prefetcht1 (%[pf])\n\t"
      FLAMINGO_F32_6X16_K(0, 32, 0, 4, 8, 12, 16, 20)
      "prefetcht1 (%[pf],%[ps],1)\n\t"
      FLAMINGO_F32_6X16_K(64, 96, 24, 28, 32, 36, 40, 44)
      "prefetcht1 (%[pf],%[ps],2)\n\t"
      FLAMINGO_F32_6X16_K(128, 160, 48, 52, 56, 60, 64, 68)
      "prefetcht1 (%[pf],%[ps3],1)\n\t"
      FLAMINGO_F32_6X16_K(192, 224, 72, 76, 80, 84, 88, 92)
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "lea (%[pf],%[ps],4), %[pf]\n\t"
      "dec %[passes]\n\t"
      "jnz 1b\n\t"
      "jmp 3f\n\t"
      // One line per pass: the three extra prefetches cost 5-10 % of the tile's speed from L1.
      "8:\n\t"
      "prefetcht0 (%[pf])\n\t"
      FLAMINGO_F32_6X16_K(0, 32, 0, 4, 8, 12, 16, 20)
      FLAMINGO_F32_6X16_K(64, 96, 24, 28, 32, 36, 40, 44)
      FLAMINGO_F32_6X16_K(128, 160, 48, 52, 56, 60, 64, 68)
      FLAMINGO_F32_6X16_K(192, 224, 72, 76, 80, 84, 88, 92)
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "add $64, %[pf]\n\t"
      "dec %[passes]\n\t"
      "jnz 8b\n\t"
      "3:\n\t"
      "test %[rest], %[rest]\n\t"
      "jz 2f\n\t"
      "4:\n\t"
      FLAMINGO_F32_6X16_K(0, 32, 0, 4, 8, 12, 16, 20)
      "add $24, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[rest]\n\t"
      "jnz 4b\n\t"
      "2:\n\t"
      "test %[mode], %[mode]\n\t"
      "jz 6f\n\t"
      "cmp $1, %[mode]\n\t"
      "je 5f\n\t"
      // C + acc, in the order the stack path adds them (C[r][j] + acc[r][j]).
      "vmovups (%[c0]), %%ymm0\n\t"
      "vmovups 32(%[c0]), %%ymm1\n\t"
      "vaddps %%ymm4, %%ymm0, %%ymm4\n\t"
      "vaddps %%ymm5, %%ymm1, %%ymm5\n\t"
      "vmovups (%[c0],%[ldc],1), %%ymm0\n\t"
      "vmovups 32(%[c0],%[ldc],1), %%ymm1\n\t"
      "vaddps %%ymm6, %%ymm0, %%ymm6\n\t"
      "vaddps %%ymm7, %%ymm1, %%ymm7\n\t"
      "vmovups (%[c0],%[ldc],2), %%ymm0\n\t"
      "vmovups 32(%[c0],%[ldc],2), %%ymm1\n\t"
      "vaddps %%ymm8, %%ymm0, %%ymm8\n\t"
      "vaddps %%ymm9, %%ymm1, %%ymm9\n\t"
      "vmovups (%[c3]), %%ymm0\n\t"
      "vmovups 32(%[c3]), %%ymm1\n\t"
      "vaddps %%ymm10, %%ymm0, %%ymm10\n\t"
      "vaddps %%ymm11, %%ymm1, %%ymm11\n\t"
      "vmovups (%[c3],%[ldc],1), %%ymm0\n\t"
      "vmovups 32(%[c3],%[ldc],1), %%ymm1\n\t"
      "vaddps %%ymm12, %%ymm0, %%ymm12\n\t"
      "vaddps %%ymm13, %%ymm1, %%ymm13\n\t"
      "vmovups (%[c3],%[ldc],2), %%ymm0\n\t"
      "vmovups 32(%[c3],%[ldc],2), %%ymm1\n\t"
      "vaddps %%ymm14, %%ymm0, %%ymm14\n\t"
      "vaddps %%ymm15, %%ymm1, %%ymm15\n\t"
      "5:\n\t"
      "vmovups %%ymm4, (%[c0])\n\t"
      "vmovups %%ymm5, 32(%[c0])\n\t"
      "vmovups %%ymm6, (%[c0],%[ldc],1)\n\t"
      "vmovups %%ymm7, 32(%[c0],%[ldc],1)\n\t"
      "vmovups %%ymm8, (%[c0],%[ldc],2)\n\t"
      "vmovups %%ymm9, 32(%[c0],%[ldc],2)\n\t"
      "vmovups %%ymm10, (%[c3])\n\t"
      "vmovups %%ymm11, 32(%[c3])\n\t"
      "vmovups %%ymm12, (%[c3],%[ldc],1)\n\t"
      "vmovups %%ymm13, 32(%[c3],%[ldc],1)\n\t"
      "vmovups %%ymm14, (%[c3],%[ldc],2)\n\t"
      "vmovups %%ymm15, 32(%[c3],%[ldc],2)\n\t"
      "jmp 7f\n\t"
      "6:\n\t"
      "vmovaps %%ymm4, (%[acc])\n\t"
      "vmovaps %%ymm5, 32(%[acc])\n\t"
      "vmovaps %%ymm6, 64(%[acc])\n\t"
      "vmovaps %%ymm7, 96(%[acc])\n\t"
      "vmovaps %%ymm8, 128(%[acc])\n\t"
      "vmovaps %%ymm9, 160(%[acc])\n\t"
      "vmovaps %%ymm10, 192(%[acc])\n\t"
      "vmovaps %%ymm11, 224(%[acc])\n\t"
      "vmovaps %%ymm12, 256(%[acc])\n\t"
      "vmovaps %%ymm13, 288(%[acc])\n\t"
      "vmovaps %%ymm14, 320(%[acc])\n\t"
      "vmovaps %%ymm15, 352(%[acc])\n\t"
      "7:\n\t"
      : [passes] "+r"(passes), [rest] "+r"(rest), [a] "+r"(a), [b] "+r"(b), [pf] "+r"(pf)
      : [acc] "r"(&acc[0][0][0]), [mode] "r"(mode), [c0] "r"(c), [c3] "r"(c3), [ldc] "r"(ldc_bytes),
        [ps] "r"(ps), [ps3] "r"(ps3)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
#undef FLAMINGO_F32_6X16_K
  if (mode != 0) return;
  __m256 v[6][2];
  for (int r = 0; r < 6; ++r) {
    v[r][0] = _mm256_load_ps(acc[r][0]);
    v[r][1] = _mm256_load_ps(acc[r][1]);
  }
  store_tile<6>(v, c, ldc, nr, add);
}

}  // namespace

void f32_gemm_6x16_avx2(int mr, int64_t kc, const float* a_packed, const float* b, float* c,
                        int64_t ldc, int nr, bool add, const void* prefetch, int prefetch_lines) {
  switch (mr) {
    case 1:
      return gemm_tile<1>(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
    case 2:
      return gemm_tile<2>(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
    case 3:
      return gemm_tile<3>(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
    case 4:
      return gemm_tile<4>(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
    case 5:
      return gemm_tile<5>(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
    default:
      return gemm_tile6(kc, a_packed, b, c, ldc, nr, add, prefetch, prefetch_lines);
  }
}

}  // namespace flamingo::kernels::detail
