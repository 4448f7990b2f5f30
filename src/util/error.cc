#include "flamingo/error.h"

namespace flamingo {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kIo:
      return "i/o error";
    case ErrorCode::kCorruptFile:
      return "corrupt file";
    case ErrorCode::kInvalidConfig:
      return "invalid config";
    case ErrorCode::kModelMismatch:
      return "model mismatch";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kResourceLimit:
      return "resource limit";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal error";
    case ErrorCode::kOutOfMemory:
      return "out of memory";
  }
  return "unknown error";
}

}  // namespace flamingo
