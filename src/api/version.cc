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

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kEndOfChunk:
      return "endofchunk";
    case StopReason::kEos:
      return "eos";
    case StopReason::kStopString:
      return "stop_string";
    case StopReason::kCallback:
      return "callback";
    case StopReason::kContextFull:
      return "context_full";
  }
  return "unknown";
}

}  // namespace flamingo
