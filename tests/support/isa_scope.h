// Runs a test body once per instruction-set path this CPU can execute, restoring the
// process-wide choice afterwards.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "kernels/cpu.h"

namespace flamingo::testing {

inline std::vector<kernels::Isa> available_isas() {
  std::vector<kernels::Isa> isas{kernels::Isa::kScalar};
  if (kernels::cpu_has_avx2()) isas.push_back(kernels::Isa::kAvx2);
  return isas;
}

class ScopedIsa {
 public:
  explicit ScopedIsa(kernels::Isa isa) : saved_(kernels::active_isa()) { kernels::set_isa(isa); }
  ~ScopedIsa() { kernels::set_isa(saved_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  kernels::Isa saved_;
};

template <typename F>
void for_each_isa(F&& body) {
  for (kernels::Isa isa : available_isas()) {
    SCOPED_TRACE(kernels::isa_name(isa));
    ScopedIsa scoped(isa);
    body(isa);
  }
}

// The sizes every element-wise kernel is tried on (ggml test-backend-ops style edge sizes).
inline const std::vector<int64_t>& edge_sizes() {
  static const std::vector<int64_t> sizes{1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129};
  return sizes;
}

}  // namespace flamingo::testing
