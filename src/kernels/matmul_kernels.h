// Packed weight layout and the micro-kernels that read it, shared by the baseline dispatcher
// (matmul.cc) and the ISA-specific kernel files. Plain declarations only: *_avx2.cc files
// include this header, so it must not define inline functions or pull in STL templates.
//
// Weights are stored as panels of kPanelRows = 16 consecutive output rows n, K-major, so a
// micro-kernel reads the 16 weights of one k as one contiguous 64-byte (f32) or 32-byte
// (f16/bf16) vector. The last panel is padded with zero rows. Per panel:
//   f32:  float[K][16]
//   f16, bf16: uint16_t[K][16]
//   Q8_0: for each block of 32 k: uint16_t fp16 scale[16] (one per row), then int8
//         q[8][16][4]: byte (g, r, i) is row r's element k = 4g + i
//   Q4_0: for each block of 32 k: uint16_t fp16 scale[16], then uint8 q[4][16][4] where byte
//         (g, r, i) holds row r's element k = 4g + i in its low nibble and k = 4g + i + 16 in
//         its high one (the Q4_0 pairing)
// The quantised codes come in groups of 4 consecutive k per row, so one 32-bit lane holds 4
// codes of one row: the integer GEMV multiplies them by 4 codes of A with one byte
// multiply-add (vpmaddubsw) and sums them into that row's lane without any shuffle.
// One layout serves both ISAs and both the GEMV and the GEMM paths, so set_isa() can switch
// at run time without repacking.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flamingo::kernels::detail {

constexpr int kPanelRows = 16;
constexpr int kQBlock = 32;
constexpr size_t kQScaleBytes = 16 * 2;  // the fp16 scales that open a Q8_0/Q4_0 block
constexpr size_t kQ8BlockBytes = kQScaleBytes + 32 * 16;  // per panel and block of 32 k
constexpr size_t kQ4BlockBytes = kQScaleBytes + 16 * 16;

// Same values as WeightType; repeated here so kernel files need not include matmul.h.
enum class PanelType : int { kF32 = 0, kF16 = 1, kBF16 = 2, kQ8_0 = 3, kQ4_0 = 4 };
constexpr int kNumPanelTypes = 5;

// GEMV of an f32/f16/bf16 panel: out[r*16 + j] = Σ_k a[r*lda + k] · W[j][k], r < m (m = 1..7),
// over all k of the panel. The summation order depends only on k, never on threads.
using GemvFn = void (*)(const float* a, int64_t lda, int m, const uint8_t* panel, int64_t k,
                        float* out);

// One row of A against one f32/f16/bf16 panel, K read front to back as a single stream (the
// decode GEMV under DecodeStreams::kOne): out[j] = Σ_k a[k] · W[j][k].
using GemvRowFn = void (*)(const float* a, const uint8_t* panel, int64_t k, float* out);

// Rows of A rounded to 8 bits per block of 32 k, for the integer GEMV of the quantised types
// (the ggml Q8_0 scheme): a[r][k] ≈ d[r][b] · q[r][k] with b = k/32, d = absmax/127 and
// q = round-to-nearest-even(a · 127/absmax). sum[r][b] = Σ q over the block (the Q4_0
// kernels' −8 offset). A block holding a NaN or Inf gets d = NaN, so that the outputs that
// read it are NaN as they would be in fp32. Row stride: k codes, k/32 scales and sums.
struct QuantizedRows {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* sum = nullptr;
  int64_t k = 0;
};
// Blocks whose absmax is below this quantise to zeros with d = 0: 127/absmax would overflow.
constexpr float kQ8MinAbsMax = 1e-30f;
using QuantizeRowsFn = void (*)(const float* a, int64_t lda, int m, int64_t k, int8_t* q, float* d,
                                int32_t* sum);

// GEMV of quantised A against one Q8_0/Q4_0 panel: out[r*16 + j] = Σ_b d_a[r][b]·d_w[j][b]·
// (Σ_{k in b} q_a[r][k]·q_w[j][k]), the inner sums exact in integers, r < m (1..7). The block
// sums are added in k order, whatever the ISA or threading.
using GemvQuantFn = void (*)(const QuantizedRows& a, int m, const uint8_t* panel, float* out);
// One row of A against two panels at once (decode): out0 and out1 get exactly what
// GemvQuantFn with m = 1 gives for panel0 and panel1. Two weight streams instead of one keep more
// DRAM requests in flight on one core.
using GemvQuantPairFn = void (*)(const QuantizedRows& a, const uint8_t* panel0,
                                 const uint8_t* panel1, float* out0, float* out1);
// One row of A against one panel, its blocks in order and no software prefetch (the decode
// GEMV under DecodeStreams::kOne): exactly what GemvQuantFn with m = 1 gives.
using GemvQuantRowFn = void (*)(const QuantizedRows& a, const uint8_t* panel, float* out);

// Expands k rows [k0, k0+kc) of one panel to fp32: out[(kk)*16 + j] = W[j][k0+kk]. For the
// quantised types k0 and kc are multiples of 32.
using DequantFn = void (*)(const uint8_t* panel, int64_t k0, int64_t kc, float* out);

// Register-tiled micro-kernel: acc[r][j] = Σ_kk a_packed[kk*mr + r] · b[kk*16 + j] for
// r < mr ≤ 6, then C[r][j] = acc (add = false) or C[r][j] += acc (add = true) for j < nr ≤ 16.
// When prefetch is not null, the kernel also pulls kc/4 · prefetch_lines consecutive 64-byte
// lines there, prefetch_lines (1, 2 or 4) per 4 k, so that the dispatcher can fetch the next
// weights a slice per call at the pace that the block's few or many row tiles need (the AVX2
// kernel's 6-row tile takes one line per pass towards L1, more into L2).
using GemmFn = void (*)(int mr, int64_t kc, const float* a_packed, const float* b, float* c,
                        int64_t ldc, int nr, bool add, const void* prefetch, int prefetch_lines);
constexpr int kGemmMr = 6;

// Rows of the next row tile of a block when `left` rows of it remain: six, but the last 7 to 9
// rows go as 4 + 3, 4 + 4 and 5 + 4. A tile of r rows runs 2r FMA chains, and below 4 rows
// (8 chains) the FMA latency, not the throughput, sets its pace: the 2 rows after a 6-row tile
// took a quarter of a GEMM's time at M = 8. Each element is summed in k order whatever tile
// holds its row, so the partition changes no bit of the result.
constexpr int gemm_tile_rows(int64_t left) {
  return left <= kGemmMr ? static_cast<int>(left) : left <= 8 ? 4 : left == 9 ? 5 : kGemmMr;
}
// Row tiles of a block of `rows` rows.
constexpr int64_t gemm_row_tiles(int64_t rows) {
  int64_t tiles = 0;
  for (int64_t left = rows; left > 0; left -= gemm_tile_rows(left)) ++tiles;
  return tiles;
}

// Packs rows [0, nr) of one panel (nr ≤ 16) into the layout above, leaving the bytes of rows
// past nr as they are. rows[r] points at row r's K values (f32 or 16-bit) or codes (Q8_0: K
// bytes, Q4_0: K/2); for the quantised types scales[r * (K/32) + b] is row r's fp16 scale of
// block b. f16 and bf16 share the 16-bit kernel ("x16"): packing only moves bits.
using PackPanelFn = void (*)(const uint8_t* const* rows, int nr, const uint16_t* scales, int64_t k,
                             uint8_t* dst);

// Kernels per ISA, weight type in the name ("gemv_q4_0_avx2": GEMV over Q4_0 panels). The
// dispatcher (matmul.cc) gathers them into tables indexed by PanelType.
#define FLAMINGO_DECLARE_MATMUL_KERNELS(isa)                                                     \
  void gemv_f32_##isa(const float*, int64_t, int, const uint8_t*, int64_t, float*);              \
  void gemv_f16_##isa(const float*, int64_t, int, const uint8_t*, int64_t, float*);              \
  void gemv_bf16_##isa(const float*, int64_t, int, const uint8_t*, int64_t, float*);             \
  void quantize_rows_q8_##isa(const float*, int64_t, int, int64_t, int8_t*, float*, int32_t*);   \
  void gemv_q8_0_q8_##isa(const QuantizedRows&, int, const uint8_t*, float*);                    \
  void gemv_q4_0_q8_##isa(const QuantizedRows&, int, const uint8_t*, float*);                    \
  void gemv_q8_0_q8_1x32_##isa(const QuantizedRows&, const uint8_t*, const uint8_t*, float*,     \
                               float*);                                                          \
  void gemv_q4_0_q8_1x32_##isa(const QuantizedRows&, const uint8_t*, const uint8_t*, float*,     \
                               float*);                                                          \
  void dequant_panel_f16_##isa(const uint8_t*, int64_t, int64_t, float*);                        \
  void dequant_panel_bf16_##isa(const uint8_t*, int64_t, int64_t, float*);                       \
  void dequant_panel_q8_0_##isa(const uint8_t*, int64_t, int64_t, float*);                       \
  void dequant_panel_q4_0_##isa(const uint8_t*, int64_t, int64_t, float*);                       \
  void f32_gemm_6x16_##isa(int, int64_t, const float*, const float*, float*, int64_t, int, bool, \
                           const void*, int);                                                    \
  void pack_panel_f32_##isa(const uint8_t* const*, int, const uint16_t*, int64_t, uint8_t*);     \
  void pack_panel_x16_##isa(const uint8_t* const*, int, const uint16_t*, int64_t, uint8_t*);     \
  void pack_panel_q8_0_##isa(const uint8_t* const*, int, const uint16_t*, int64_t, uint8_t*);    \
  void pack_panel_q4_0_##isa(const uint8_t* const*, int, const uint16_t*, int64_t, uint8_t*);

FLAMINGO_DECLARE_MATMUL_KERNELS(scalar)
FLAMINGO_DECLARE_MATMUL_KERNELS(avx2)
#undef FLAMINGO_DECLARE_MATMUL_KERNELS

// Single-stream decode GEMVs (GemvRowFn, GemvQuantRowFn). The scalar path has no streams to
// choose between: its GemvFn and GemvQuantFn serve one row as they serve seven.
void gemv_f32_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out);
void gemv_f16_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out);
void gemv_bf16_1x16_avx2(const float* a, const uint8_t* panel, int64_t k, float* out);
void gemv_q8_0_q8_1x16_avx2(const QuantizedRows& a, const uint8_t* panel, float* out);
void gemv_q4_0_q8_1x16_avx2(const QuantizedRows& a, const uint8_t* panel, float* out);

// The kPanelRows fp16 scales that open a Q8_0/Q4_0 panel block, widened to fp32 (scalar path;
// the codes follow them at block + kQScaleBytes).
void block_scales_scalar(const uint8_t* block, float* d);

// Bytes of one packed panel of K columns.
size_t panel_bytes(PanelType type, int64_t k);

}  // namespace flamingo::kernels::detail
