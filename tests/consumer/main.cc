// A separate project that finds the installed libflamingo with find_package(flamingo) and
// uses its public API. Built by the test suite against the installed tree.
#include <flamingo/flamingo.h>

#include <cstdio>

int main() {
  std::printf("libflamingo %s\n", flamingo::version().c_str());
  try {
    flamingo::Model::load("/nonexistent/model/dir");
  } catch (const flamingo::Error& e) {
    // The expected outcome: a typed error naming the directory.
    std::printf("error as expected (%s): %s\n", flamingo::error_code_name(e.code()), e.what());
    return e.code() == flamingo::ErrorCode::kIo ? 0 : 1;
  }
  return 1;
}
