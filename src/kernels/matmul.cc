// Matmul dispatch: validates the call, picks the ISA's kernels, splits the work into tasks
// that depend on the shape only, and runs GEMV (M < kGemmMinRows) or the blocked GEMM.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul_packed.h"
#include "kernels/pack_a.h"
#include "kernels/work_estimate.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace flamingo::kernels {
namespace {

using detail::kGemmMr;
using detail::kNumPanelTypes;
using detail::kPanelRows;

struct KernelSet {
  detail::GemvFn gemv[kNumPanelTypes];  // null for the quantised types: they take gemv_q
  detail::GemvQuantFn gemv_q[kNumPanelTypes];
  detail::GemvQuantPairFn gemv_q_pair[kNumPanelTypes];  // one row of A, two panels (decode)
  detail::GemvRowFn gemv_row[kNumPanelTypes];           // one row of A, one stream (decode)
  detail::GemvQuantRowFn gemv_q_row[kNumPanelTypes];    // the same for the quantised types
  detail::QuantizeRowsFn quantize_rows;
  detail::DequantFn dequant[kNumPanelTypes];  // null for f32: the GEMM reads its panels in place
  detail::GemmFn gemm;
};

const KernelSet kScalar = {
    {detail::gemv_f32_scalar, detail::gemv_f16_scalar, detail::gemv_bf16_scalar, nullptr, nullptr},
    {nullptr, nullptr, nullptr, detail::gemv_q8_0_q8_scalar, detail::gemv_q4_0_q8_scalar},
    {nullptr, nullptr, nullptr, detail::gemv_q8_0_q8_1x32_scalar, detail::gemv_q4_0_q8_1x32_scalar},
    {},
    {},
    detail::quantize_rows_q8_scalar,
    {nullptr, detail::dequant_panel_f16_scalar, detail::dequant_panel_bf16_scalar,
     detail::dequant_panel_q8_0_scalar, detail::dequant_panel_q4_0_scalar},
    detail::f32_gemm_6x16_scalar};

// DecodeStreams::kSeveral: a row of A reads a panel as four streams (gemv_*_avx2) and quantised
// panels go in pairs.
const KernelSet kAvx2 = {
    {detail::gemv_f32_avx2, detail::gemv_f16_avx2, detail::gemv_bf16_avx2, nullptr, nullptr},
    {nullptr, nullptr, nullptr, detail::gemv_q8_0_q8_avx2, detail::gemv_q4_0_q8_avx2},
    {nullptr, nullptr, nullptr, detail::gemv_q8_0_q8_1x32_avx2, detail::gemv_q4_0_q8_1x32_avx2},
    {},
    {},
    detail::quantize_rows_q8_avx2,
    {nullptr, detail::dequant_panel_f16_avx2, detail::dequant_panel_bf16_avx2,
     detail::dequant_panel_q8_0_avx2, detail::dequant_panel_q4_0_avx2},
    detail::f32_gemm_6x16_avx2};

// DecodeStreams::kOne: for one row of A every panel is read alone, front to back.
const KernelSet kAvx2OneStream = [] {
  KernelSet ks = kAvx2;
  for (auto& pair : ks.gemv_q_pair) pair = nullptr;
  ks.gemv_row[static_cast<int>(detail::PanelType::kF32)] = detail::gemv_f32_1x16_avx2;
  ks.gemv_row[static_cast<int>(detail::PanelType::kF16)] = detail::gemv_f16_1x16_avx2;
  ks.gemv_row[static_cast<int>(detail::PanelType::kBF16)] = detail::gemv_bf16_1x16_avx2;
  ks.gemv_q_row[static_cast<int>(detail::PanelType::kQ8_0)] = detail::gemv_q8_0_q8_1x16_avx2;
  ks.gemv_q_row[static_cast<int>(detail::PanelType::kQ4_0)] = detail::gemv_q4_0_q8_1x16_avx2;
  return ks;
}();

const KernelSet& active_kernels() {
  if (active_isa() != Isa::kAvx2) return kScalar;
  return active_decode_streams() == DecodeStreams::kOne ? kAvx2OneStream : kAvx2;
}

// Below this many rows of A, streaming the weights once (GEMV) beats packing A for the GEMM.
constexpr int64_t kGemmMinRows = kMatmulBatchInvariantRows;
// GEMM cache blocking: a kc×16 weight sub-panel (kc·64 bytes in fp32) stays in L1 while every
// row tile of the mc×kc packed A block streams from L2. kc = 512 halves the per-call overhead
// of the micro-kernel (3-5 % at M = 64) where its 32 KiB sub-panel fits beside an A tile, that
// is with an L1d of 48 KiB or more; 256 (16 KiB) otherwise. The choice depends on the machine
// only, so results stay the same for any thread count. Both are multiples of kQBlock.
constexpr int64_t kMc = 192;
int64_t gemm_kc() {
  static const int64_t kc = l1d_cache_bytes() >= 48 * 1024L ? 512 : 256;
  return kc;
}
// Floats of packed A per chunk of rows (16 MiB): A is packed once per chunk and shared by
// every task of it, and every chunk streams all the weights again. At 8 MiB a 512-row prefill
// with K = 5632 ran as three chunks of 192 rows: 89-96 GFLOP/s at one thread on a Zen 4 VM
// against 99-107 in one chunk (alternating builds, 5 rounds of 5 repetitions).
constexpr int64_t kPackedFloats = int64_t{1} << 22;
static_assert(kMc % kGemmMr == 0);

// Scratch buffers of the calling thread, reused across calls.
struct Scratch {
  std::vector<float> a_packed;
  std::vector<float> b_panel;
  std::vector<int8_t> a_q;  // A rounded to 8 bits for the quantised GEMV
  std::vector<float> a_d;
  std::vector<int32_t> a_sum;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

void apply_epilogue(const float* acc, int64_t rows, int64_t acc_stride, int64_t n0, int64_t cols,
                    float* c, int64_t ldc, const MatmulEpilogue& ep) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = acc + r * acc_stride;
    float* d = c + r * ldc + n0;
    for (int64_t j = 0; j < cols; ++j) {
      const float v = ep.bias ? s[j] + ep.bias[n0 + j] : s[j];
      d[j] = ep.accumulate ? d[j] + v : v;
    }
    if (has_activation(ep)) activate(ep.activation, d, d, cols, ep.activation_scale);
  }
}

void run_gemv(const KernelSet& ks, const float* a, int64_t lda, int64_t m,
              const PackedMatrix::Impl& w, float* c, int64_t ldc, ThreadPool& pool,
              const MatmulEpilogue& ep) {
  const detail::GemvFn gemv = ks.gemv[static_cast<int>(w.type)];
  const detail::GemvQuantFn gemv_q = ks.gemv_q[static_cast<int>(w.type)];
  const detail::GemvQuantPairFn gemv_q_pair = ks.gemv_q_pair[static_cast<int>(w.type)];
  const detail::GemvRowFn gemv_row = m == 1 ? ks.gemv_row[static_cast<int>(w.type)] : nullptr;
  const detail::GemvQuantRowFn gemv_q_row =
      m == 1 ? ks.gemv_q_row[static_cast<int>(w.type)] : nullptr;
  detail::QuantizedRows aq;
  if (gemv_q) {
    // A is rounded once per call, before the tasks start, and shared by all of them.
    Scratch& s = scratch();
    const int64_t nb = w.k / detail::kQBlock;
    s.a_q.resize(static_cast<size_t>(m * w.k));
    s.a_d.resize(static_cast<size_t>(m * nb));
    s.a_sum.resize(static_cast<size_t>(m * nb));
    ks.quantize_rows(a, lda, static_cast<int>(m), w.k, s.a_q.data(), s.a_d.data(), s.a_sum.data());
    aq = {s.a_q.data(), s.a_d.data(), s.a_sum.data(), w.k};
  }
  // Each task starts a new weight stream whose first blocks are demand misses no prefetch has
  // covered yet. With ~64 tasks whatever the size, a 2048² Q4_0 matrix (2.4 MB, 37 KB a task)
  // streamed at 23 GB/s on two threads against 26 with 8 tasks (Q8_0 25 against 27; A/B,
  // medians of 5). So tasks of ≥ 512 KiB, between 8 (two threads still balance) and 64.
  const double bytes = static_cast<double>(weight_bytes(w.type, w.n, w.k));
  const int64_t want = std::clamp<int64_t>(static_cast<int64_t>(bytes / (512 * 1024)), 8, 64);
  const int64_t per_task = std::max<int64_t>(1, (w.num_panels + want - 1) / want);
  const int64_t tasks = (w.num_panels + per_task - 1) / per_task;
  pool.parallel_for(
      tasks,
      [&](int64_t t) {
        float out[kGemmMinRows * kPanelRows];
        const int64_t p_end = std::min(w.num_panels, (t + 1) * per_task);
        auto finish = [&](int64_t p, const float* o) {
          const int64_t n0 = p * kPanelRows;
          apply_epilogue(o, m, kPanelRows, n0, std::min<int64_t>(kPanelRows, w.n - n0), c, ldc, ep);
        };
        int64_t p = t * per_task;
        if (gemv_q_pair && m == 1) {
          for (; p + 2 <= p_end; p += 2) {
            float out1[kPanelRows];
            gemv_q_pair(aq, w.panel(p), w.panel(p + 1), out, out1);
            finish(p, out);
            finish(p + 1, out1);
          }
        }
        for (; p < p_end; ++p) {
          if (gemv_q_row)
            gemv_q_row(aq, w.panel(p), out);
          else if (gemv_q)
            gemv_q(aq, static_cast<int>(m), w.panel(p), out);
          else if (gemv_row)
            gemv_row(a, w.panel(p), w.k, out);
          else
            gemv(a, lda, static_cast<int>(m), w.panel(p), w.k, out);
          finish(p, out);
        }
      },
      detail::stream_ns(bytes));
}

// a_packed[tile][kk * mr + r] for the row tiles of gemm_tile_rows.
// With few columns of W per row of A (a 1×1 conv of 128 channels), the element-by-element
// transpose took 9 % of the call; the ISA's interleave does it in registers.
void pack_a(const float* a, int64_t lda, int64_t rows, int64_t k0, int64_t kc, float* dst) {
  for (int64_t r0 = 0, mr; r0 < rows; r0 += mr) {
    mr = detail::gemm_tile_rows(rows - r0);
    const float* row[kGemmMr];
    for (int r = 0; r < mr; ++r) row[r] = a + (r0 + r) * lda + k0;
    detail::interleave_rows(row, static_cast<int>(mr), kc, dst);
    dst += kc * mr;
  }
}

void run_gemm(const KernelSet& ks, const float* a, int64_t lda, int64_t m,
              const PackedMatrix::Impl& w, float* c, int64_t ldc, ThreadPool& pool,
              const MatmulEpilogue& ep) {
  const detail::DequantFn dequant = ks.dequant[static_cast<int>(w.type)];
  const detail::GemmFn gemm = ks.gemm;
  // A is packed once per chunk of rows, before the tasks start: packing it inside every task
  // copied all of A once per N block, 10-15 % of the time at M = 64..512. Chunks bound the
  // scratch to about kPackedFloats (vision GEMMs have thousands of rows). In a chunk, block
  // kb (columns [k0, k0 + kc)) holds every row tile at offset k0·rows, tile t at t·mr·kc.
  const int64_t chunk_rows = std::max<int64_t>(kMc, kPackedFloats / w.k / kMc * kMc);
  Scratch& caller = scratch();
  caller.a_packed.resize(static_cast<size_t>(std::min(m, chunk_rows) * w.k));
  float* const a_packed = caller.a_packed.data();
  const int64_t kc_block = gemm_kc();
  const int64_t k_blocks = (w.k + kc_block - 1) / kc_block;
  for (int64_t c0 = 0; c0 < m; c0 += chunk_rows) {
    const int64_t crows = std::min(chunk_rows, m - c0);
    const float* a_chunk = a + c0 * lda;
    float* c_chunk = c + c0 * ldc;
    const int64_t m_blocks = (crows + kMc - 1) / kMc;
    // One packing task per (k block, m block): with K ≤ kc a single task packed all of A while
    // the other threads waited (a tenth of a 64×64×128→128 1×1 convolution at 2 threads).
    pool.parallel_for(
        k_blocks * m_blocks,
        [&](int64_t t) {
          const int64_t k0 = t / m_blocks * kc_block, m0 = t % m_blocks * kMc;
          const int64_t kc = std::min(kc_block, w.k - k0);
          pack_a(a_chunk + m0 * lda, lda, std::min(kMc, crows - m0), k0, kc,
                 a_packed + k0 * crows + m0 * kc);
        },
        detail::stream_ns(8.0 * static_cast<double>(crows * w.k)));
    // N blocks of up to 16 panels (256 columns), fewer when that leaves too few tasks.
    const int64_t panels_per_block =
        std::clamp<int64_t>((w.num_panels * m_blocks + 15) / 16, 1, 16);
    const int64_t n_blocks = (w.num_panels + panels_per_block - 1) / panels_per_block;
    pool.parallel_for(
        m_blocks * n_blocks,
        [&](int64_t t) {
          const int64_t mb = t / n_blocks, nb = t % n_blocks;
          const int64_t m0 = mb * kMc, rows = std::min(kMc, crows - m0);
          const int64_t p0 = nb * panels_per_block,
                        p1 = std::min(w.num_panels, p0 + panels_per_block);
          std::vector<float>& b_panel = scratch().b_panel;
          if (dequant) b_panel.resize(static_cast<size_t>(kc_block * kPanelRows));
          const int64_t row_tiles = detail::gemm_row_tiles(rows);
          for (int64_t k0 = 0; k0 < w.k; k0 += kc_block) {
            const int64_t kc = std::min(kc_block, w.k - k0);
            const bool add = ep.accumulate || k0 > 0;
            const float* a_block = a_packed + k0 * crows + m0 * kc;
            for (int64_t p = p0; p < p1; ++p) {
              const float* b = sub_panel(dequant, w, p, k0, kc, b_panel.data());
              const int64_t n0 = p * kPanelRows;
              const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, w.n - n0));
              run_row_tiles(gemm, a_block, rows, kc, b, c_chunk + m0 * ldc + n0, ldc, nr, add,
                            next_weights(w, p, p0, p1, k0, kc, kc_block, row_tiles));
            }
          }
          finish_block(c_chunk + m0 * ldc, ldc, rows, p0 * kPanelRows,
                       std::min(w.n, p1 * kPanelRows), ep);
        },
        detail::compute_ns(2.0 * static_cast<double>(crows) * static_cast<double>(w.n) *
                           static_cast<double>(w.k)));
  }
}

}  // namespace

detail::GemmFn panel_gemm() { return active_kernels().gemm; }

detail::DequantFn panel_dequant(WeightType type) {
  return active_kernels().dequant[static_cast<int>(type)];
}

void run_row_tiles(detail::GemmFn gemm, const float* a_block, int64_t rows, int64_t kc,
                   const float* b, float* c, int64_t ldc, int nr, bool add,
                   const NextWeights& next) {
  const float* ap = a_block;
  for (int64_t r0 = 0, tile = 0; r0 < rows; ++tile) {
    const int mr = detail::gemm_tile_rows(rows - r0);
    gemm(mr, kc, ap, b, c + r0 * ldc, ldc, nr, add, next.slice(tile), next.lines);
    ap += kc * mr;
    r0 += mr;
  }
}

bool has_activation(const MatmulEpilogue& ep) {
  return ep.activation != Activation::kIdentity || ep.activation_scale != 1.f;
}

void finish_block(float* c, int64_t ldc, int64_t rows, int64_t n0, int64_t n1,
                  const MatmulEpilogue& ep) {
  if (!ep.bias && !has_activation(ep)) return;
  for (int64_t r = 0; r < rows; ++r) {
    float* d = c + r * ldc;
    if (ep.bias)
      for (int64_t j = n0; j < n1; ++j) d[j] += ep.bias[j];
    if (has_activation(ep)) activate(ep.activation, d + n0, d + n0, n1 - n0, ep.activation_scale);
  }
}

NextWeights next_weights(const PackedMatrix::Impl& w, int64_t p, int64_t p0, int64_t p1, int64_t k0,
                         int64_t kc, int64_t k_block, int64_t row_tiles) {
  const int64_t pn = p + 1 < p1 ? p + 1 : p0;
  const int64_t kn = p + 1 < p1 ? k0 : k0 + kc;
  NextWeights next;
  const int64_t passes = kc / 4;
  if (kn >= w.k || passes == 0) return next;
  const auto type = static_cast<detail::PanelType>(w.type);
  const auto bytes = static_cast<int64_t>(detail::panel_bytes(type, std::min(k_block, w.k - kn)));
  const int64_t lines = (bytes + 63) / 64, reach = std::max<int64_t>(row_tiles, 1) * passes;
  while (next.lines < 4 && next.lines * reach < lines) next.lines *= 2;
  next.slice_bytes = passes * 64 * next.lines;
  next.at = w.panel(pn) + detail::panel_bytes(type, kn);
  next.tiles = (bytes + next.slice_bytes - 1) / next.slice_bytes;
  return next;
}

void matmul(const float* a, int64_t lda, int64_t m, const PackedMatrix& w, float* c, int64_t ldc,
            ThreadPool& pool, const MatmulEpilogue& epilogue) {
  if (w.empty())
    fail(ErrorCode::kInvalidArgument, "matmul: the weight matrix is empty (not packed)");
  const PackedMatrix::Impl& impl = w.impl();
  if (m < 0) fail(ErrorCode::kInvalidArgument, "matmul: m = ", m, " is negative");
  if (lda < impl.k)
    fail(ErrorCode::kInvalidArgument, "matmul: lda = ", lda, " is smaller than K = ", impl.k);
  if (ldc < impl.n)
    fail(ErrorCode::kInvalidArgument, "matmul: ldc = ", ldc, " is smaller than N = ", impl.n);
  if (epilogue.accumulate && has_activation(epilogue))
    fail(ErrorCode::kInvalidArgument,
         "matmul: an activation epilogue cannot accumulate into C (it applies to A·Wᵀ + bias)");
  if (m == 0) return;
  if (a == nullptr || c == nullptr) fail(ErrorCode::kInvalidArgument, "matmul: null A or C");
  const KernelSet& ks = active_kernels();
  const bool quantised = ks.gemv_q[static_cast<int>(impl.type)] != nullptr;
  if (m < kGemmMinRows && (!quantised || epilogue.int8_activations)) {
    run_gemv(ks, a, lda, m, impl, c, ldc, pool, epilogue);
  } else {
    run_gemm(ks, a, lda, m, impl, c, ldc, pool, epilogue);
  }
}

}  // namespace flamingo::kernels
