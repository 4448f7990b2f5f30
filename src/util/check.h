// Internal helpers to raise flamingo::Error with a formatted message.
//
// Unlike assert(), these checks stay in release builds: every one of them guards against
// bad input, and compiling them out (as llama.cpp's GGUF CVEs show) turns bad input into
// memory corruption.
#pragma once

#include <sstream>
#include <string>
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

// Checks an internal invariant that no input can violate; failing it is a bug in libflamingo.
#define FLAMINGO_CHECK(cond)                                                      \
  do {                                                                            \
    if (!(cond))                                                                  \
      ::flamingo::fail(::flamingo::ErrorCode::kInternal, __FILE__, ":", __LINE__, \
                       ": internal check failed: " #cond);                        \
  } while (0)

}  // namespace flamingo
