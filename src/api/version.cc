#include "flamingo/flamingo.h"
#include "kernels/cpu.h"

namespace flamingo {

std::string version() { return FLAMINGO_VERSION_STRING; }

BuildInfo build_info() {
  BuildInfo b;
  b.version = FLAMINGO_VERSION_STRING;
  b.git_commit = FLAMINGO_GIT_COMMIT;
  b.compiler = FLAMINGO_COMPILER;
  b.kernel_path = kernels::isa_name(kernels::active_isa());
  return b;
}

}  // namespace flamingo
