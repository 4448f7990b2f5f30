#include "io/image_preprocess.h"

#include <cmath>
#include <limits>

#include "io/image_resize.h"
#include "util/check.h"

namespace flamingo {
namespace {

// int(round(d / 2.0)) in Python 3 for d >= 0: halves go to the even neighbour.
int centre_offset(int64_t excess) {
  int64_t off = excess / 2;
  if (excess % 2 == 1 && off % 2 == 1) ++off;
  return static_cast<int>(off);
}

int checked_side(double v, const char* what) {
  if (!(v >= 1.0) || v > static_cast<double>(std::numeric_limits<int>::max()))
    fail(ErrorCode::kResourceLimit, "image preprocessing: resized ", what, " of ", v,
         " pixels is out of range");
  return static_cast<int>(v);
}

}  // namespace

void validate_preprocess_params(const PreprocessParams& p) {
  if (p.size < 1 || p.size > 8192)
    fail(ErrorCode::kInvalidArgument, "preprocess: image size ", p.size, " is outside 1..8192");
  if (!(p.crop_pct > 0.0 && p.crop_pct <= 1.0))
    fail(ErrorCode::kInvalidArgument, "preprocess.crop_pct: ", p.crop_pct, " is outside (0, 1]");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(p.mean[c]))
      fail(ErrorCode::kInvalidArgument, "preprocess.mean[", c, "] is not finite");
    if (!(std::isfinite(p.std[c]) && p.std[c] > 0.0f))
      fail(ErrorCode::kInvalidArgument, "preprocess.std[", c, "]: ", p.std[c],
           " must be a positive finite number");
  }
}

ResizePlan plan_resize(int width, int height, const PreprocessParams& p) {
  validate_preprocess_params(p);
  if (width <= 0 || height <= 0)
    fail(ErrorCode::kInvalidArgument, "image preprocessing: image size ", width, "x", height,
         " is not positive");
  ResizePlan plan{};
  if (p.resize == ResizeMode::kShortestCrop) {
    const bool portrait = width <= height;
    const int64_t shorter = portrait ? width : height;
    const int64_t longer = portrait ? height : width;
    // torchvision: int(size * long / short), an exact integer product then a true division.
    const int new_long = checked_side(
        std::floor(static_cast<double>(int64_t{p.size} * longer) / static_cast<double>(shorter)),
        "long side");
    plan.resized_width = portrait ? p.size : new_long;
    plan.resized_height = portrait ? new_long : p.size;
  } else {
    const int side = checked_side(std::floor(p.size / p.crop_pct), "side");
    plan.resized_width = plan.resized_height = side;
  }
  plan.crop_x = centre_offset(plan.resized_width - p.size);
  plan.crop_y = centre_offset(plan.resized_height - p.size);
  return plan;
}

std::vector<uint8_t> resize_and_crop(const DecodedImage& image, const PreprocessParams& p) {
  if (image.channels != 3 && image.channels != 4)
    fail(ErrorCode::kInvalidArgument, "image preprocessing: ", image.channels,
         " channels (3 or 4 expected)");
  if (image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels)
    fail(ErrorCode::kInvalidArgument, "image preprocessing: pixel buffer of ", image.pixels.size(),
         " bytes does not match ", image.width, "x", image.height, "x", image.channels);
  const ResizePlan plan = plan_resize(image.width, image.height, p);
  if (image.channels == 4) {
    const DecodedImage rgb = composite_over_background(image, p.background);
    return resize_bicubic_window(rgb.pixels.data(), rgb.width, rgb.height, 3, plan.resized_width,
                                 plan.resized_height, plan.crop_x, plan.crop_y, p.size, p.size);
  }
  return resize_bicubic_window(image.pixels.data(), image.width, image.height, 3,
                               plan.resized_width, plan.resized_height, plan.crop_x, plan.crop_y,
                               p.size, p.size);
}

std::vector<float> normalize_rgb(const uint8_t* rgb, size_t pixels, const PreprocessParams& p) {
  std::vector<float> out(pixels * 3);
  for (size_t i = 0; i < pixels * 3; ++i) {
    const int c = static_cast<int>(i % 3);
    out[i] = (static_cast<float>(rgb[i]) / 255.0f - p.mean[c]) / p.std[c];
  }
  return out;
}

std::vector<float> preprocess(const DecodedImage& image, const PreprocessParams& params) {
  const std::vector<uint8_t> rgb = resize_and_crop(image, params);
  return normalize_rgb(rgb.data(), rgb.size() / 3, params);
}

}  // namespace flamingo
