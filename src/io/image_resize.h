// Bicubic resampling that reproduces Pillow's Image.resize(..., Image.BICUBIC) on 8-bit
// images bit for bit.
//
// Pillow (libImaging/Resample.c) filters separably, horizontal pass first, with the Keys
// cubic (a = -0.5) widened by the downscale factor so that shrinking antialiases; each pass
// uses 22-bit fixed-point weights and rounds and clamps to uint8. We follow the same
// arithmetic, so the results are identical (checked against python3-pil goldens in
// tests/io/image_golden_test.cc). A pass whose axis keeps its size is skipped, as in Pillow.
#pragma once

#include <cstdint>
#include <vector>

namespace flamingo {

// Resizes `src` (width × height × channels, interleaved, row-major) to out_width × out_height
// and returns only the window of the result with top-left (x0, y0) and size
// window_width × window_height. Pixels of the window equal those of Pillow's full resize
// followed by a crop, but only the rows and columns the window needs are computed, so a
// centre crop of a very elongated image costs no more than the crop itself.
std::vector<uint8_t> resize_bicubic_window(const uint8_t* src, int width, int height, int channels,
                                           int out_width, int out_height, int x0, int y0,
                                           int window_width, int window_height);

inline std::vector<uint8_t> resize_bicubic(const uint8_t* src, int width, int height, int channels,
                                           int out_width, int out_height) {
  return resize_bicubic_window(src, width, height, channels, out_width, out_height, 0, 0, out_width,
                               out_height);
}

}  // namespace flamingo
