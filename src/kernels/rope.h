// Rotary position embeddings, applied in place to the heads of one or more token rows.
//
// inv_freq[i] = θ^(−2i/head_dim) for i < head_dim/2 (computed in fp32 like HF), angle =
// position·inv_freq[i].
//   Rotate-half (HF LLaMA): pairs (i, i + head_dim/2).
//   Interleaved (Meta LLaMA): pairs (2i, 2i+1).
#pragma once

#include <cstdint>

namespace flamingo::kernels {

enum class RopeStyle { kRotateHalf, kInterleaved };

// x is [n_tokens, stride] with n_heads heads of head_dim at the start of each row; token t is
// at position positions[t].
void rope(float* x, int64_t n_tokens, int64_t stride, int n_heads, int head_dim,
          const int64_t* positions, float theta, RopeStyle style);

}  // namespace flamingo::kernels
