// Per-ISA entry point behind rope.h: rotates the heads of one token row given that token's
// cos/sin tables (head_dim/2 entries each, entry i for frequency i).
#pragma once

namespace flamingo::kernels::avx2 {

void rope_row(float* x, int n_heads, int head_dim, const float* cos, const float* sin,
              bool interleaved);

}  // namespace flamingo::kernels::avx2
