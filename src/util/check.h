// Internal helpers to raise flamingo::Error with a formatted message.
//
// Unlike assert(), these checks stay in release builds: every one of them guards against
// bad input, and compiling them out (as llama.cpp's GGUF CVEs show) turns bad input into
// memory corruption.
#pragma once

#include <cerrno>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

#include "flamingo/error.h"

namespace flamingo {

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(ErrorCode code, Args&&... args) {
  throw Error(code, str_cat(std::forward<Args>(args)...));
}

// The code for a failed system call: ENOMEM means memory (or address space under a ulimit) ran
// out, which a caller handles differently from a missing or unreadable file.
inline ErrorCode io_error_code(int err) {
  return err == ENOMEM ? ErrorCode::kOutOfMemory : ErrorCode::kIo;
}
inline ErrorCode io_error_code(const std::error_code& ec) {
  return ec == std::errc::not_enough_memory ? ErrorCode::kOutOfMemory : ErrorCode::kIo;
}

// Checks an internal invariant that no input can violate; failing it is a bug in libflamingo.
#define FLAMINGO_CHECK(cond)                                                      \
  do {                                                                            \
    if (!(cond))                                                                  \
      ::flamingo::fail(::flamingo::ErrorCode::kInternal, __FILE__, ":", __LINE__, \
                       ": internal check failed: " #cond);                        \
  } while (0)

}  // namespace flamingo
