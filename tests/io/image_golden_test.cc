// Decoding and preprocessing compared with Pillow (Debian python3-pil 9.4) on the images and
// goldens written by tools/make_image_goldens.py. The issue asks for agreement within 1/255;
// the engine follows Pillow's integer arithmetic, so these tests demand exact equality and
// print the measured maximum difference and the number of differing values per case.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image_decode.h"
#include "io/image_preprocess.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;

fs::path image_dir() { return testing::test_data_dir() / "images"; }

nlohmann::json manifest() {
  std::ifstream in(image_dir() / "manifest.json");
  EXPECT_TRUE(in.good()) << "missing tests/data/images/manifest.json";
  return nlohmann::json::parse(in);
}

struct Diff {
  int max_abs = 0;
  size_t differing = 0;
};

Diff compare(const std::vector<uint8_t>& got, const std::string& golden) {
  const std::string want = testing::read_file(image_dir() / golden);
  EXPECT_EQ(got.size(), want.size()) << golden;
  Diff d;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const int delta = std::abs(int{got[i]} - int{static_cast<uint8_t>(want[i])});
    if (delta > 0) ++d.differing;
    if (delta > d.max_abs) d.max_abs = delta;
  }
  return d;
}

TEST(ImageGolden, DecodeMatchesPillow) {
  const auto m = manifest();
  ASSERT_GE(m["images"].size(), 30u);
  int worst_png = 0, worst_jpeg = 0;
  for (const auto& e : m["images"]) {
    const std::string file = e["file"];
    SCOPED_TRACE(file);
    const DecodedImage img = decode_image_file(image_dir() / file);
    ASSERT_EQ(img.width, e["width"].get<int>());
    ASSERT_EQ(img.height, e["height"].get<int>());
    ASSERT_EQ(img.channels, e["channels"].get<int>());
    const Diff d = compare(img.pixels, e["decoded"]);
    const bool jpeg = file.ends_with(".jpg");
    std::printf("decode  %-32s %s max|diff| %d, %zu of %zu values differ\n", file.c_str(),
                jpeg ? "JPEG" : "PNG ", d.max_abs, d.differing, img.pixels.size());
    (jpeg ? worst_jpeg : worst_png) = std::max(jpeg ? worst_jpeg : worst_png, d.max_abs);
    EXPECT_EQ(d.max_abs, 0);
  }
  std::printf("decode worst: PNG %d, JPEG %d\n", worst_png, worst_jpeg);
}

TEST(ImageGolden, PreprocessMatchesPillow) {
  const auto m = manifest();
  int worst = 0, cases = 0;
  size_t differing = 0, values = 0;
  for (const auto& e : m["images"]) {
    const std::string file = e["file"];
    const DecodedImage img = decode_image_file(image_dir() / file);
    for (const auto& p : e["preprocessed"]) {
      SCOPED_TRACE(file + " -> " + p["golden"].get<std::string>());
      PreprocessParams params;
      params.resize = p["mode"] == "squash" ? ResizeMode::kSquash : ResizeMode::kShortestCrop;
      params.crop_pct = p["crop_pct"];
      params.size = p["size"];
      for (int c = 0; c < 3; ++c) params.background[c] = p["background"][c].get<uint8_t>();
      const std::vector<uint8_t> out = resize_and_crop(img, params);
      ASSERT_EQ(out.size(), static_cast<size_t>(params.size) * params.size * 3);
      const Diff d = compare(out, p["golden"]);
      std::printf("resize  %-52s max|diff| %d, %zu of %zu values differ\n",
                  p["golden"].get<std::string>().c_str(), d.max_abs, d.differing, out.size());
      worst = std::max(worst, d.max_abs);
      differing += d.differing;
      values += out.size();
      ++cases;
      EXPECT_EQ(d.max_abs, 0);
    }
  }
  std::printf("preprocess: %d cases, worst max|diff| %d, %zu of %zu values differ\n", cases, worst,
              differing, values);
}

}  // namespace
}  // namespace flamingo
