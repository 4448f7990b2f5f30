// What an Image holds: the decoded pixels (RGB, or RGBA until a model composites them over
// its configured background) and an RGB copy composited over white for callers.
#pragma once

#include <string>

#include "flamingo/image.h"
#include "io/image_decode.h"

namespace flamingo {

struct Image::Impl {
  DecodedImage decoded;  // 3 or 4 channels
  DecodedImage rgb;      // 3 channels, alpha over white
  std::string name;
};

}  // namespace flamingo
