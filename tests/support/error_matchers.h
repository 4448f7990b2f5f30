// Asserting on flamingo::Error: the code and the pieces of text the message must name.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "flamingo/error.h"

namespace flamingo::testing {

// Runs f, which must throw flamingo::Error with `code` and a message containing every string
// of `needles`. Returns the message (empty on failure) for further checks.
template <typename F>
std::string expect_error(F&& f, ErrorCode code, std::initializer_list<std::string> needles) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code))
        << "got \"" << error_code_name(e.code()) << "\" instead of \"" << error_code_name(code)
        << "\": " << e.what();
    const std::string msg = e.what();
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-flamingo exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw (expected " << error_code_name(code) << ")";
  return {};
}

}  // namespace flamingo::testing
