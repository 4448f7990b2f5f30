#include "io/image_resize.h"

#include <algorithm>
#include <cmath>

#include "util/check.h"

namespace flamingo {
namespace {

// Pillow keeps 8 bits for the pixel and 2 for the overshoot of a filter with negative lobes.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as Pillow's table index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Fixed-point filter taps of output samples [first, first + count) along one axis.
struct AxisTaps {
  std::vector<int> start;   // first input sample
  std::vector<int> length;  // number of input samples
  std::vector<int> offset;  // index of the first weight in `weights`
  std::vector<int32_t> weights;
};

AxisTaps compute_taps(int in_size, int out_size, int first, int count) {
  // Pillow passes the box as floats and divides in double.
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;  // the bicubic filter's support is 2
  const double inv = 1.0 / filterscale;
  AxisTaps taps;
  taps.start.resize(count);
  taps.length.resize(count);
  taps.offset.resize(count);
  std::vector<double> w;
  for (int i = 0; i < count; ++i) {
    const int xx = first + i;
    const double center = (xx + 0.5) * scale;
    // Pillow rounds by truncating value + 0.5 (toward zero), then clamps to the image.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    int n = xmax - xmin;
    if (n < 0) n = 0;
    w.assign(n, 0.0);
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      w[x] = bicubic((x + xmin - center + 0.5) * inv);
      sum += w[x];
    }
    taps.start[i] = xmin;
    taps.length[i] = n;
    taps.offset[i] = static_cast<int>(taps.weights.size());
    for (int x = 0; x < n; ++x) {
      const double k = (sum != 0.0 ? w[x] / sum : w[x]) * (1 << kPrecisionBits);
      taps.weights.push_back(static_cast<int32_t>(k < 0 ? k - 0.5 : k + 0.5));
    }
  }
  return taps;
}

void check_size(int v, const char* what) {
  if (v <= 0)
    fail(ErrorCode::kInvalidArgument, "image resize: ", what, " must be positive, got ", v);
}

}  // namespace

std::vector<uint8_t> resize_bicubic_window(const uint8_t* src, int width, int height, int channels,
                                           int out_width, int out_height, int x0, int y0,
                                           int window_width, int window_height) {
  check_size(width, "input width");
  check_size(height, "input height");
  check_size(out_width, "output width");
  check_size(out_height, "output height");
  check_size(window_width, "window width");
  check_size(window_height, "window height");
  if (channels < 1 || channels > 4)
    fail(ErrorCode::kInvalidArgument, "image resize: ", channels, " channels (1..4 supported)");
  if (x0 < 0 || y0 < 0 || x0 > out_width - window_width || y0 > out_height - window_height)
    fail(ErrorCode::kInvalidArgument, "image resize: window ", window_width, "x", window_height,
         " at (", x0, ",", y0, ") lies outside the ", out_width, "x", out_height, " output");
  const size_t c = static_cast<size_t>(channels);
  const bool need_horizontal = out_width != width;
  const bool need_vertical = out_height != height;

  // Rows of the source that the window's output rows read.
  AxisTaps vtaps;
  int row_first = y0, row_last = y0 + window_height;
  if (need_vertical) {
    vtaps = compute_taps(height, out_height, y0, window_height);
    row_first = vtaps.start[0];
    row_last = vtaps.start[window_height - 1] + vtaps.length[window_height - 1];
    for (int i = 0; i < window_height; ++i) {
      if (vtaps.start[i] < row_first) row_first = vtaps.start[i];
      if (vtaps.start[i] + vtaps.length[i] > row_last) row_last = vtaps.start[i] + vtaps.length[i];
    }
  }
  const int rows = row_last - row_first;

  // Horizontal pass into an intermediate image of `rows` × window_width.
  std::vector<uint8_t> mid(static_cast<size_t>(rows) * window_width * c);
  if (need_horizontal) {
    const AxisTaps h = compute_taps(width, out_width, x0, window_width);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* in_row = src + static_cast<size_t>(row_first + y) * width * c;
      uint8_t* out_row = mid.data() + static_cast<size_t>(y) * window_width * c;
      for (int x = 0; x < window_width; ++x) {
        const int32_t* k = h.weights.data() + h.offset[x];
        const uint8_t* in = in_row + static_cast<size_t>(h.start[x]) * c;
        for (size_t ch = 0; ch < c; ++ch) {
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (int t = 0; t < h.length[x]; ++t) acc += in[t * c + ch] * k[t];
          out_row[x * c + ch] = clip8(acc);
        }
      }
    }
  } else {
    for (int y = 0; y < rows; ++y)
      std::copy_n(src + (static_cast<size_t>(row_first + y) * width + x0) * c, window_width * c,
                  mid.data() + static_cast<size_t>(y) * window_width * c);
  }
  if (!need_vertical) return mid;

  std::vector<uint8_t> out(static_cast<size_t>(window_height) * window_width * c);
  const size_t stride = static_cast<size_t>(window_width) * c;
  for (int y = 0; y < window_height; ++y) {
    const int32_t* k = vtaps.weights.data() + vtaps.offset[y];
    const uint8_t* in = mid.data() + static_cast<size_t>(vtaps.start[y] - row_first) * stride;
    uint8_t* out_row = out.data() + static_cast<size_t>(y) * stride;
    for (size_t i = 0; i < stride; ++i) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int t = 0; t < vtaps.length[y]; ++t) acc += in[t * stride + i] * k[t];
      out_row[i] = clip8(acc);
    }
  }
  return out;
}

}  // namespace flamingo
