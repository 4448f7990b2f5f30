// Attention: argument validation, the fixed split into tasks, per-thread workspaces and the
// portable scalar tile kernel.
//
// Split: one task per (key/value head, block of consecutive queries), where a block holds
// about 64 rows (query × head) of the heads sharing that key/value head, so K and V are read
// once per block rather than once per query head. Each row's arithmetic depends only on the
// row itself and the fixed 64-key block boundaries, so results are bitwise identical for any
// thread count and any grouping of rows.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/attention_isa.h"
#include "kernels/cpu.h"
#include "kernels/overlap.h"
#include "kernels/work_estimate.h"
#include "util/check.h"
#include "util/thread_pool.h"

namespace flamingo::kernels {
namespace {

constexpr int kB = kAttentionKeyBlock;
constexpr int64_t kRowsPerTask = 64;
constexpr int kMaxHeadDim = 1024;
constexpr int64_t kMaxDim = int64_t{1} << 31;

void attention_tile_scalar(const AttentionTile& t) {
  const int dh = t.head_dim;
  const int64_t rows = t.n_queries * t.group;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t qi = r / t.group, h = r % t.group;
    const float* q = t.q + qi * t.q_stride + h * dh;
    float* acc = t.acc + r * dh;
    std::fill(acc, acc + dh, 0.f);
    float row_max = -INFINITY, row_sum = 0.f;
    const int64_t limit = t.causal ? t.limit0 + qi : t.limit0;
    for (int64_t kb = 0; kb < limit; kb += kB) {
      const int nb = static_cast<int>(std::min<int64_t>(kB, limit - kb));
      float mx = row_max;
      for (int j = 0; j < nb; ++j) {
        const float* k = t.k + (kb + j) * t.kv_stride;
        float dot = 0.f;
        for (int d = 0; d < dh; ++d) dot += q[d] * k[d];
        t.s[j] = dot * t.scale;
        mx = std::max(mx, t.s[j]);
      }
      const float alpha = std::exp(row_max - mx);
      float sum = 0.f;
      for (int j = 0; j < nb; ++j) {
        t.s[j] = std::exp(t.s[j] - mx);
        sum += t.s[j];
      }
      row_sum = row_sum * alpha + sum;
      row_max = mx;
      for (int d = 0; d < dh; ++d) acc[d] *= alpha;
      for (int j = 0; j < nb; ++j) {
        const float* v = t.v + (kb + j) * t.kv_stride;
        for (int d = 0; d < dh; ++d) acc[d] += t.s[j] * v[d];
      }
    }
    float* dst = t.out + qi * t.out_stride + h * dh;
    const float inv = 1.f / row_sum;
    for (int d = 0; d < dh; ++d) dst[d] = acc[d] * inv;
  }
}

void validate(const AttentionArgs& a) {
  auto bad = [](auto&&... msg) { fail(ErrorCode::kInvalidArgument, "attention: ", msg...); };
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0)
    bad("n_heads=", a.n_heads, " must be a positive multiple of n_kv_heads=", a.n_kv_heads);
  if (a.head_dim <= 0 || a.head_dim > kMaxHeadDim)
    bad("head_dim=", a.head_dim, " outside [1, ", kMaxHeadDim, "]");
  if (a.n_q < 0 || a.n_q > kMaxDim) bad("n_q=", a.n_q, " out of range");
  if (a.n_kv <= 0 || a.n_kv > kMaxDim) bad("n_kv=", a.n_kv, " must be in [1, 2^31]");
  const int64_t q_width = int64_t{a.n_heads} * a.head_dim;
  const int64_t kv_width = int64_t{a.n_kv_heads} * a.head_dim;
  if (a.q_stride < q_width) bad("q_stride=", a.q_stride, " < n_heads·head_dim=", q_width);
  if (a.out_stride < q_width) bad("out_stride=", a.out_stride, " < n_heads·head_dim=", q_width);
  if (a.kv_stride < kv_width) bad("kv_stride=", a.kv_stride, " < n_kv_heads·head_dim=", kv_width);
  if (a.q_stride > kMaxDim || a.out_stride > kMaxDim || a.kv_stride > kMaxDim)
    bad("row stride too large");
  if (!std::isfinite(a.scale)) bad("scale is not finite");
  if (a.causal && (a.q_pos0 < 0 || a.q_pos0 + a.n_q > a.n_kv))
    bad("causal queries at positions [", a.q_pos0, ", ", a.q_pos0 + a.n_q,
        ") need that many keys, have n_kv=", a.n_kv);
  if (a.n_q == 0) return;
  if (a.q == nullptr || a.k == nullptr || a.v == nullptr || a.out == nullptr) bad("null pointer");
  // The output must not overwrite keys or values other tasks are still reading.
  const int64_t out_floats = (a.n_q - 1) * a.out_stride + q_width;
  for (const float* src : {a.k, a.v})
    if (overlaps(a.out, out_floats, src, (a.n_kv - 1) * a.kv_stride + kv_width))
      bad("out overlaps k or v");
}

}  // namespace

void attention(const AttentionArgs& a, ThreadPool& pool) {
  validate(a);
  if (a.n_q == 0) return;
  const int group = a.n_heads / a.n_kv_heads;
  const int dh = a.head_dim;
  const int64_t q_block = std::max<int64_t>(1, kRowsPerTask / group);
  const int64_t n_qblocks = (a.n_q + q_block - 1) / q_block;
  const bool avx = active_isa() == Isa::kAvx2;

  pool.parallel_for(
      n_qblocks * a.n_kv_heads,
      [&](int64_t task) {
        // Later query blocks see more keys under a causal mask: hand them out first.
        const int64_t qb = n_qblocks - 1 - task / a.n_kv_heads;
        const int64_t g = task % a.n_kv_heads;
        const int64_t q0 = qb * q_block;
        const int64_t nq = std::min(q_block, a.n_q - q0);
        const int64_t rows = nq * group;

        thread_local std::vector<float> scratch;
        const size_t need =
            static_cast<size_t>(rows * dh + 2 * rows + int64_t{dh} * kB + int64_t{4} * kB);
        if (scratch.size() < need) scratch.resize(need);

        AttentionTile t;
        t.q = a.q + q0 * a.q_stride + g * group * dh;
        t.q_stride = a.q_stride;
        t.k = a.k + g * dh;
        t.v = a.v + g * dh;
        t.kv_stride = a.kv_stride;
        t.out = a.out + q0 * a.out_stride + g * group * dh;
        t.out_stride = a.out_stride;
        t.n_queries = nq;
        t.group = group;
        t.head_dim = dh;
        t.causal = a.causal;
        t.limit0 = a.causal ? a.q_pos0 + q0 + 1 : a.n_kv;
        t.kv_end = a.causal ? a.q_pos0 + q0 + nq : a.n_kv;
        t.scale = a.scale;
        t.acc = scratch.data();
        t.row_max = t.acc + rows * dh;
        t.row_sum = t.row_max + rows;
        t.kt = t.row_sum + rows;
        t.s = t.kt + int64_t{dh} * kB;
        if (avx)
          avx2::attention_tile(t);
        else
          attention_tile_scalar(t);
      },
      detail::compute_ns(4.0 * static_cast<double>(a.n_q) * static_cast<double>(a.n_kv) *
                         a.n_heads * dh));
}

}  // namespace flamingo::kernels
