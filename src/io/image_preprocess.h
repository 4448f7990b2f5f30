// From a decoded image to the vision encoder's input: flatten alpha, resize and crop the way
// the reference pipelines do, then scale to [0, 1] and normalise per channel.
//
//   kShortestCrop  OpenFlamingo / open_clip: torchvision Resize(size) scales the shorter side
//                  to `size` and the longer to int(size · long / short), bicubic (Pillow);
//                  then CenterCrop(size) with offsets int(round((side - size) / 2.0)) (Python's
//                  round, ties to even).
//   kSquash        timm (crop_mode "squash") and IDEFICS: resize both sides to
//                  floor(size / crop_pct), bicubic, then the same centre crop; crop_pct = 1
//                  squashes straight to size × size.
//
// Alpha is composited over `background` first (IDEFICS' convert_to_rgb). The output is a
// float tensor [size, size, 3] (HWC, channels last) of (v / 255 - mean) / std in float32,
// which is what torchvision's ToTensor + Normalize compute.
#pragma once

#include <cstdint>
#include <vector>

#include "io/image_decode.h"

namespace flamingo {

enum class ResizeMode { kShortestCrop, kSquash };

// The preprocessing part of config.json ("preprocess", plus the vision input size).
struct PreprocessParams {
  ResizeMode resize = ResizeMode::kShortestCrop;
  double crop_pct = 1.0;  // squash only: (0, 1]
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
  uint8_t background[3] = {255, 255, 255};
  int size = 224;  // square side fed to the vision encoder
};

// Throws kInvalidArgument naming the field for a size outside 1..8192, a crop_pct outside
// (0, 1], or a std that is not a positive finite number.
void validate_preprocess_params(const PreprocessParams& params);

// Where the resize-then-crop lands: the intermediate resized size and the crop's top-left.
struct ResizePlan {
  int resized_width, resized_height;
  int crop_x, crop_y;
};
ResizePlan plan_resize(int width, int height, const PreprocessParams& params);

// Composite, resize and crop: size × size × 3 uint8 (what Pillow holds before ToTensor).
std::vector<uint8_t> resize_and_crop(const DecodedImage& image, const PreprocessParams& params);

// (v / 255 - mean[c]) / std[c] for each of `pixels` RGB triples, in float32.
std::vector<float> normalize_rgb(const uint8_t* rgb, size_t pixels, const PreprocessParams& params);

// The whole pipeline: size × size × 3 floats, HWC.
std::vector<float> preprocess(const DecodedImage& image, const PreprocessParams& params);

}  // namespace flamingo
