// ISA dispatch of the packed-A interleave (pack_a.h); the portable path is the definition.
#include "kernels/pack_a.h"

#include "kernels/cpu.h"
#include "kernels/pack_a_isa.h"

namespace flamingo::kernels::detail {

void interleave_rows(const float* const* src, int rows, int64_t len, float* dst) {
  if (active_isa() == Isa::kAvx2) return avx2::interleave_rows(src, rows, len, dst);
  for (int64_t t = 0; t < len; ++t)
    for (int r = 0; r < rows; ++r) dst[t * rows + r] = src[r] ? src[r][t] : 0.f;
}

}  // namespace flamingo::kernels::detail
