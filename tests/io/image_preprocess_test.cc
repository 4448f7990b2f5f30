// Resize geometry (torchvision / timm formulas), the windowed resampler, compositing and
// normalisation. Pixel-level agreement with Pillow is in image_golden_test.cc.
#include "io/image_preprocess.h"

#include <gtest/gtest.h>

#include <random>

#include "flamingo/error.h"
#include "io/image_resize.h"

namespace flamingo {
namespace {

PreprocessParams params(ResizeMode mode, int size, double crop_pct = 1.0) {
  PreprocessParams p;
  p.resize = mode;
  p.size = size;
  p.crop_pct = crop_pct;
  return p;
}

TEST(ImagePreprocess, ShortestSidePlanMatchesTorchvision) {
  // Resize(224): long side int(224 * long / short); CenterCrop offsets int(round(d / 2.0)).
  ResizePlan r = plan_resize(640, 480, params(ResizeMode::kShortestCrop, 224));
  EXPECT_EQ(r.resized_width, 298);  // int(224 * 640 / 480) = int(298.67)
  EXPECT_EQ(r.resized_height, 224);
  EXPECT_EQ(r.crop_x, 37);
  EXPECT_EQ(r.crop_y, 0);
  r = plan_resize(333, 500, params(ResizeMode::kShortestCrop, 224));
  EXPECT_EQ(r.resized_width, 224);
  EXPECT_EQ(r.resized_height, 336);  // int(336.336...)
  EXPECT_EQ(r.crop_y, 56);
  // Python's round() sends halves to the even neighbour: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
  EXPECT_EQ(plan_resize(225, 224, params(ResizeMode::kShortestCrop, 224)).crop_x, 0);
  EXPECT_EQ(plan_resize(227, 224, params(ResizeMode::kShortestCrop, 224)).crop_x, 2);
  EXPECT_EQ(plan_resize(229, 224, params(ResizeMode::kShortestCrop, 224)).crop_x, 2);
  EXPECT_EQ(plan_resize(231, 224, params(ResizeMode::kShortestCrop, 224)).crop_x, 4);
  // Square images and the tie w == h take the width as the short side.
  r = plan_resize(100, 100, params(ResizeMode::kShortestCrop, 224));
  EXPECT_EQ(r.resized_width, 224);
  EXPECT_EQ(r.resized_height, 224);
  // 1 × 100000 gives a 224 × 22 400 000 virtual image; only the crop is ever computed.
  r = plan_resize(1, 100000, params(ResizeMode::kShortestCrop, 224));
  EXPECT_EQ(r.resized_height, 22400000);
  EXPECT_EQ(r.crop_y, 11199888);
}

TEST(ImagePreprocess, SquashPlanMatchesTimm) {
  ResizePlan r = plan_resize(640, 480, params(ResizeMode::kSquash, 224, 0.875));
  EXPECT_EQ(r.resized_width, 256);  // floor(224 / 0.875)
  EXPECT_EQ(r.resized_height, 256);
  EXPECT_EQ(r.crop_x, 16);
  r = plan_resize(640, 480, params(ResizeMode::kSquash, 224, 0.9));
  EXPECT_EQ(r.resized_width, 248);  // floor(248.89)
  EXPECT_EQ(r.crop_x, 12);
  r = plan_resize(37, 1000, params(ResizeMode::kSquash, 224));  // IDEFICS: straight squash
  EXPECT_EQ(r.resized_width, 224);
  EXPECT_EQ(r.resized_height, 224);
  EXPECT_EQ(r.crop_x, 0);
}

TEST(ImagePreprocess, InvalidParamsAreRefused) {
  const auto bad = [](PreprocessParams p, const char* field) {
    try {
      validate_preprocess_params(p);
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  PreprocessParams p;
  p.size = 0;
  bad(p, "size");
  p = PreprocessParams();
  p.crop_pct = 0.0;
  bad(p, "crop_pct");
  p.crop_pct = 1.5;
  bad(p, "crop_pct");
  p.crop_pct = std::nan("");
  bad(p, "crop_pct");
  p = PreprocessParams();
  p.std[1] = 0.0f;
  bad(p, "std[1]");
  p = PreprocessParams();
  p.mean[2] = INFINITY;
  bad(p, "mean[2]");
}

std::vector<uint8_t> random_image(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(static_cast<size_t>(w) * h * c);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

// The windowed resampler must give exactly the pixels of a full resize followed by a crop.
TEST(ImagePreprocess, WindowEqualsFullResizeThenCrop) {
  struct Case {
    int w, h, ow, oh;
  } cases[] = {{37, 23, 50, 32},  {64, 48, 17, 13}, {5, 90, 33, 40},
               {120, 9, 200, 16}, {1, 1, 7, 3},     {16, 16, 16, 9}};
  for (const auto& c : cases) {
    const auto src = random_image(c.w, c.h, 3, c.w * 131 + c.h);
    const auto full = resize_bicubic(src.data(), c.w, c.h, 3, c.ow, c.oh);
    for (int x0 = 0; x0 < c.ow; x0 += 3)
      for (int y0 = 0; y0 < c.oh; y0 += 4) {
        const int ww = std::min(5, c.ow - x0), wh = std::min(6, c.oh - y0);
        const auto win = resize_bicubic_window(src.data(), c.w, c.h, 3, c.ow, c.oh, x0, y0, ww, wh);
        for (int y = 0; y < wh; ++y)
          for (int x = 0; x < ww * 3; ++x)
            ASSERT_EQ(win[y * ww * 3 + x], full[((y0 + y) * c.ow + x0) * 3 + x])
                << c.w << "x" << c.h << " -> " << c.ow << "x" << c.oh << " at " << x0 << "," << y0;
      }
  }
}

TEST(ImagePreprocess, SameSizeResizeIsIdentity) {
  const auto src = random_image(13, 7, 3, 5);
  EXPECT_EQ(resize_bicubic(src.data(), 13, 7, 3, 13, 7), src);
}

TEST(ImagePreprocess, ResizeRefusesBadWindows) {
  const auto src = random_image(4, 4, 3, 1);
  EXPECT_THROW(resize_bicubic_window(src.data(), 4, 4, 3, 8, 8, 5, 0, 4, 4), Error);
  EXPECT_THROW(resize_bicubic_window(src.data(), 4, 4, 3, 0, 8, 0, 0, 1, 1), Error);
  EXPECT_THROW(resize_bicubic_window(src.data(), 4, 4, 5, 8, 8, 0, 0, 1, 1), Error);
}

TEST(ImagePreprocess, CompositeEndpoints) {
  DecodedImage img;
  img.width = 3;
  img.height = 1;
  img.channels = 4;
  img.pixels = {10, 20, 30, 0, 10, 20, 30, 255, 200, 100, 0, 128};
  const uint8_t bg[3] = {0, 128, 255};
  const DecodedImage out = composite_over_background(img, bg);
  ASSERT_EQ(out.channels, 3);
  // transparent -> background, opaque -> source, half -> Pillow's rounded blend
  EXPECT_EQ(out.pixels, (std::vector<uint8_t>{0, 128, 255, 10, 20, 30, 100, 114, 127}));
}

// Output is HWC float32 of (v / 255 - mean) / std, as ToTensor + Normalize compute it.
TEST(ImagePreprocess, NormalisesToHwcFloats) {
  DecodedImage img;
  img.width = 4;
  img.height = 4;
  img.channels = 3;
  img.pixels = random_image(4, 4, 3, 9);
  PreprocessParams p = params(ResizeMode::kSquash, 4);  // same size: no resampling
  p.mean[0] = 0.48145466f, p.mean[1] = 0.4578275f, p.mean[2] = 0.40821073f;
  p.std[0] = 0.26862954f, p.std[1] = 0.26130258f, p.std[2] = 0.27577711f;
  const std::vector<float> out = preprocess(img, p);
  ASSERT_EQ(out.size(), 4u * 4 * 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t i = (static_cast<size_t>(y) * 4 + x) * 3 + c;
        const float want = (static_cast<float>(img.pixels[i]) / 255.0f - p.mean[c]) / p.std[c];
        EXPECT_EQ(out[i], want) << y << "," << x << "," << c;
      }
  EXPECT_FLOAT_EQ(normalize_rgb(std::vector<uint8_t>{255, 0, 128}.data(), 1, p)[0],
                  (1.0f - 0.48145466f) / 0.26862954f);
}

}  // namespace
}  // namespace flamingo
