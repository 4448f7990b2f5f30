// The unit of work of attention.cc's fixed split, shared with the AVX2 kernel: a run of
// consecutive queries × the query heads that read one key/value head. Rows are ordered
// query-major (row = query·group + head), so rows with the same causal limit sit together.
#pragma once

#include <cstdint>

namespace flamingo::kernels {

// Keys are consumed in blocks of this many; every row sees the same block boundaries, which is
// what makes a row's result independent of how rows are grouped into tasks.
constexpr int kAttentionKeyBlock = 64;

struct AttentionTile {
  const float* q = nullptr;  // query q_begin, first head of the group
  int64_t q_stride = 0;
  const float* k = nullptr;  // key 0 of this key/value head
  const float* v = nullptr;
  int64_t kv_stride = 0;
  float* out = nullptr;  // same position as q
  int64_t out_stride = 0;
  int64_t n_queries = 0;
  int group = 1;  // query heads per key/value head
  int head_dim = 0;
  int64_t kv_end = 0;  // keys [0, kv_end) may be visible to some row
  int64_t limit0 =
      0;  // the first query sees keys [0, limit0); with causal, query i sees limit0 + i
  bool causal = false;
  float scale = 1.f;
  // Workspace, rows = n_queries·group: acc [rows·head_dim], row_max and row_sum [rows],
  // kt [head_dim·kAttentionKeyBlock] (a key block transposed), s [4·kAttentionKeyBlock].
  float* acc = nullptr;
  float* row_max = nullptr;
  float* row_sum = nullptr;
  float* kt = nullptr;
  float* s = nullptr;
};

namespace avx2 {
void attention_tile(const AttentionTile& tile);
}  // namespace avx2

}  // namespace flamingo::kernels
