// A separate project that finds the installed libflamingo with find_package(flamingo) and
// uses its public API. Built by the test suite against the installed tree.
#include <flamingo/flamingo.h>

#include <cstdio>

int main() {
  std::printf("libflamingo %s\n", flamingo::version().c_str());
  const unsigned char rgb[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9};
  const flamingo::Image img = flamingo::Image::from_rgb(2, 2, rgb);
  if (img.width() != 2 || img.height() != 2 || img.rgb()[4] != 255) return 1;
  try {
    flamingo::Image::from_file("/nonexistent/picture.png");
  } catch (const flamingo::Error& e) {
    // The expected outcome: a typed error naming the file.
    std::printf("error as expected (%s): %s\n", flamingo::error_code_name(e.code()), e.what());
    return e.code() == flamingo::ErrorCode::kIo ? 0 : 1;
  }
  return 1;
}
