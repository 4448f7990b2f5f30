#include "flamingo/image.h"

#include <utility>

#include "api/image_impl.h"
#include "util/check.h"
#include "util/out_of_memory.h"

namespace flamingo {
namespace {

std::shared_ptr<const Image::Impl> make_impl(DecodedImage decoded, std::string name) {
  auto impl = std::make_shared<Image::Impl>();
  static const uint8_t kWhite[3] = {255, 255, 255};
  impl->rgb = decoded.channels == 3 ? decoded : composite_over_background(decoded, kWhite);
  impl->decoded = std::move(decoded);
  impl->name = std::move(name);
  return impl;
}

}  // namespace

Image::Image(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Image Image::from_file(const std::string& path, const ImageLimits& limits) {
  return reporting_out_of_memory(
      [&] { return Image(make_impl(decode_image_file(path, limits), path)); }, "decoding ", path);
}

Image Image::from_memory(const void* data, size_t size, const std::string& name,
                         const ImageLimits& limits) {
  if (data == nullptr && size > 0) fail(ErrorCode::kInvalidArgument, name, ": null image data");
  return reporting_out_of_memory(
      [&] {
        return Image(make_impl(
            decode_image_memory(static_cast<const uint8_t*>(data), size, name, limits), name));
      },
      "decoding ", name);
}

Image Image::from_rgb(int width, int height, const uint8_t* rgb, size_t row_stride) {
  if (width <= 0 || height <= 0)
    fail(ErrorCode::kInvalidArgument, "Image::from_rgb: dimensions must be positive, got ", width,
         "x", height);
  if (rgb == nullptr) fail(ErrorCode::kInvalidArgument, "Image::from_rgb: null pixel pointer");
  const size_t row = static_cast<size_t>(width) * 3;
  if (row_stride == 0) row_stride = row;
  if (row_stride < row)
    fail(ErrorCode::kInvalidArgument, "Image::from_rgb: row stride ", row_stride,
         " < 3·width = ", row);
  return reporting_out_of_memory(
      [&] {
        std::vector<uint8_t> packed(row * static_cast<size_t>(height));
        for (int y = 0; y < height; ++y)
          std::copy(rgb + static_cast<size_t>(y) * row_stride,
                    rgb + static_cast<size_t>(y) * row_stride + row,
                    packed.begin() + static_cast<ptrdiff_t>(y * row));
        return Image(make_impl(image_from_pixels(width, height, 3, packed.data(), packed.size(),
                                                 "<rgb>", ImageLimits()),
                               "<rgb>"));
      },
      "copying a ", width, "x", height, " RGB image");
}

int Image::width() const { return impl_->rgb.width; }
int Image::height() const { return impl_->rgb.height; }
const uint8_t* Image::rgb() const { return impl_->rgb.pixels.data(); }
const std::string& Image::name() const { return impl_->name; }

}  // namespace flamingo
