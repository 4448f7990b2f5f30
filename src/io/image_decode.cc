#include "io/image_decode.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <system_error>

#include "util/check.h"

namespace flamingo {
namespace {

bool starts_with(const uint8_t* bytes, size_t size, const char* magic, size_t magic_size,
                 size_t offset = 0) {
  return size >= offset + magic_size && std::memcmp(bytes + offset, magic, magic_size) == 0;
}

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

// A file shorter than a signature but equal to its beginning is a truncated image, not an
// unknown format.
bool is_signature_prefix(const uint8_t* bytes, size_t size) {
  if (size == 0) return false;
  if (size < sizeof(kPngSignature) && std::memcmp(bytes, kPngSignature, size) == 0) return true;
  return size == 1 && bytes[0] == 0xFF;
}

}  // namespace

ImageFormat sniff_image_format(const uint8_t* b, size_t n) {
  if (starts_with(b, n, reinterpret_cast<const char*>(kPngSignature), 8)) return ImageFormat::kPng;
  if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8) return ImageFormat::kJpeg;
  if (starts_with(b, n, "GIF87a", 6) || starts_with(b, n, "GIF89a", 6)) return ImageFormat::kGif;
  if (starts_with(b, n, "RIFF", 4) && starts_with(b, n, "WEBP", 4, 8)) return ImageFormat::kWebp;
  if (starts_with(b, n, "II*\0", 4) || starts_with(b, n, "MM\0*", 4)) return ImageFormat::kTiff;
  if (starts_with(b, n, "\0\0\1\0", 4) || starts_with(b, n, "\0\0\2\0", 4))
    return ImageFormat::kIco;
  if (starts_with(b, n, "qoif", 4)) return ImageFormat::kQoi;
  if (starts_with(b, n, "8BPS", 4)) return ImageFormat::kPsd;
  if (starts_with(b, n, "#?RADIANCE", 10) || starts_with(b, n, "#?RGBE", 6))
    return ImageFormat::kHdr;
  if (starts_with(b, n, "\xFF\x0A", 2) || starts_with(b, n, "\0\0\0\x0CJXL \r\n\x87\n", 12))
    return ImageFormat::kJpegXl;
  if (starts_with(b, n, "\0\0\0\x0CjP  \r\n\x87\n", 12) || starts_with(b, n, "\xFF\x4F\xFF\x51", 4))
    return ImageFormat::kJpeg2000;
  if (starts_with(b, n, "ftyp", 4, 4)) {
    if (starts_with(b, n, "avif", 4, 8) || starts_with(b, n, "avis", 4, 8))
      return ImageFormat::kAvif;
    if (starts_with(b, n, "heic", 4, 8) || starts_with(b, n, "heix", 4, 8) ||
        starts_with(b, n, "mif1", 4, 8) || starts_with(b, n, "msf1", 4, 8) ||
        starts_with(b, n, "hevc", 4, 8))
      return ImageFormat::kHeif;
  }
  if (starts_with(b, n, "BM", 2) && n >= 14) return ImageFormat::kBmp;
  if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' &&
      (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t'))
    return ImageFormat::kPnm;
  return ImageFormat::kUnknown;
}

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kUnknown:
      return "unknown";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kTiff:
      return "TIFF";
    case ImageFormat::kIco:
      return "ICO/CUR";
    case ImageFormat::kQoi:
      return "QOI";
    case ImageFormat::kHeif:
      return "HEIF/HEIC";
    case ImageFormat::kAvif:
      return "AVIF";
    case ImageFormat::kJpeg2000:
      return "JPEG 2000";
    case ImageFormat::kJpegXl:
      return "JPEG XL";
    case ImageFormat::kPnm:
      return "PNM (PBM/PGM/PPM/PAM)";
    case ImageFormat::kPsd:
      return "PSD";
    case ImageFormat::kHdr:
      return "Radiance HDR";
  }
  return "unknown";
}

void check_image_dimensions(int64_t width, int64_t height, const std::string& source_name,
                            const ImageLimits& limits) {
  if (width <= 0 || height <= 0)
    fail(ErrorCode::kCorruptFile, source_name, ": image declares a size of ", width, "x", height,
         " (both sides must be positive)");
  if (width > limits.max_side || height > limits.max_side)
    fail(ErrorCode::kResourceLimit, source_name, ": image is ", width, "x", height,
         ", a side exceeds the limit of ", limits.max_side, " pixels");
  const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  if (pixels > limits.max_pixels)
    fail(ErrorCode::kResourceLimit, source_name, ": image is ", width, "x", height, " = ", pixels,
         " pixels, over the limit of ", limits.max_pixels);
}

uint64_t decode_budget_bytes(uint64_t pixels, const ImageLimits& limits) {
  // 32 bytes per pixel covers a 16-bit RGBA PNG's inflated scanlines (8 B), its unfiltered
  // copy (8 B) and the 8-bit conversions, or a progressive JPEG's coefficient buffers.
  const uint64_t want = (64ull << 20) + 32 * pixels;
  return want < limits.max_decode_bytes ? want : limits.max_decode_bytes;
}

DecodedImage decode_image_memory(const uint8_t* bytes, size_t size, const std::string& source_name,
                                 const ImageLimits& limits) {
  if (bytes == nullptr && size != 0)
    fail(ErrorCode::kInvalidArgument, source_name, ": null image buffer with size ", size);
  if (size == 0) fail(ErrorCode::kCorruptFile, source_name, ": image data is empty (0 bytes)");
  if (size > limits.max_file_bytes)
    fail(ErrorCode::kResourceLimit, source_name, ": image data is ", size,
         " bytes, over the limit of ", limits.max_file_bytes);
  const ImageFormat format = sniff_image_format(bytes, size);
  switch (format) {
    case ImageFormat::kPng:
      return decode_png(bytes, size, source_name, limits);
    case ImageFormat::kJpeg:
      return decode_jpeg(bytes, size, source_name, limits);
    case ImageFormat::kUnknown:
      if (is_signature_prefix(bytes, size))
        fail(ErrorCode::kCorruptFile, source_name, ": truncated image (", size,
             " bytes, shorter than the PNG/JPEG signature)");
      fail(ErrorCode::kUnsupported, source_name,
           ": not a PNG or JPEG image (unrecognised data); only PNG and JPEG are supported");
    default:
      fail(ErrorCode::kUnsupported, source_name, ": ", image_format_name(format),
           " images are not supported; only PNG and JPEG are");
  }
}

DecodedImage decode_image_file(const std::filesystem::path& path, const ImageLimits& limits) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found)
    fail(ErrorCode::kIo, name, ": cannot open image: no such file");
  if (ec) fail(io_error_code(ec), name, ": cannot open image: ", ec.message());
  if (std::filesystem::is_directory(status))
    fail(ErrorCode::kIo, name, ": cannot read image: it is a directory");

  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!file) {
    const int e = errno;
    fail(io_error_code(e), name, ": cannot open image: ", std::strerror(e));
  }

  // Read in chunks up to one byte past the limit, so that special files (pipes, /dev/zero)
  // are bounded too and an over-long file is detected without trusting its reported size.
  std::vector<uint8_t> bytes;
  const uint64_t cap = limits.max_file_bytes;
  uint64_t regular_size = 0;
  if (std::filesystem::is_regular_file(status)) {
    regular_size = std::filesystem::file_size(path, ec);
    if (!ec && regular_size > cap)
      fail(ErrorCode::kResourceLimit, name, ": image file is ", regular_size,
           " bytes, over the limit of ", cap);
    if (!ec) bytes.reserve(static_cast<size_t>(regular_size));
  }
  constexpr size_t kChunk = 1 << 16;
  while (true) {
    const size_t old = bytes.size();
    const uint64_t room = cap + 1 - old;
    const size_t want = room < kChunk ? static_cast<size_t>(room) : kChunk;
    bytes.resize(old + want);
    const size_t got = std::fread(bytes.data() + old, 1, want, file.get());
    bytes.resize(old + got);
    if (got < want) {
      if (std::ferror(file.get()))
        fail(ErrorCode::kIo, name, ": error reading image after ", bytes.size(), " bytes");
      break;
    }
    if (bytes.size() > cap)
      fail(ErrorCode::kResourceLimit, name, ": image file is over the limit of ", cap, " bytes");
  }
  if (bytes.empty()) fail(ErrorCode::kCorruptFile, name, ": image file is empty (0 bytes)");
  return decode_image_memory(bytes.data(), bytes.size(), name, limits);
}

DecodedImage image_from_pixels(int width, int height, int channels, const uint8_t* data,
                               size_t size, const std::string& source_name,
                               const ImageLimits& limits) {
  if (channels != 3 && channels != 4)
    fail(ErrorCode::kInvalidArgument, source_name,
         ": pixels must have 3 (RGB) or 4 (RGBA) channels, got ", channels);
  if (width <= 0 || height <= 0)
    fail(ErrorCode::kInvalidArgument, source_name, ": image size ", width, "x", height,
         " is not positive");
  check_image_dimensions(width, height, source_name, limits);
  const uint64_t expected = static_cast<uint64_t>(width) * height * channels;
  if (data == nullptr || size != expected)
    fail(ErrorCode::kInvalidArgument, source_name, ": pixel buffer holds ", data ? size : 0,
         " bytes, expected ", width, "x", height, "x", channels, " = ", expected);
  DecodedImage image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.pixels.assign(data, data + size);
  return image;
}

DecodedImage composite_over_background(const DecodedImage& image, const uint8_t background[3]) {
  if (image.channels == 3) return image;
  FLAMINGO_CHECK(image.channels == 4);
  const size_t pixels = static_cast<size_t>(image.width) * image.height;
  FLAMINGO_CHECK(image.pixels.size() == pixels * 4);
  DecodedImage out;
  out.width = image.width;
  out.height = image.height;
  out.channels = 3;
  out.pixels.resize(pixels * 3);
  // Pillow's integer "over" operator with an opaque destination: outa = 255², so
  // coef1 = a·255²·128 / 255² = 128·a exactly; the rest is its rounded division by 255 with
  // 7 extra bits of precision.
  constexpr uint32_t kPrecisionBits = 7;
  const uint8_t* src = image.pixels.data();
  uint8_t* dst = out.pixels.data();
  for (size_t i = 0; i < pixels; ++i, src += 4, dst += 3) {
    const uint32_t a = src[3];
    if (a == 0) {
      dst[0] = background[0];
      dst[1] = background[1];
      dst[2] = background[2];
      continue;
    }
    const uint32_t coef1 = a << kPrecisionBits;
    const uint32_t coef2 = (255u << kPrecisionBits) - coef1;
    for (int c = 0; c < 3; ++c) {
      const uint32_t t = src[c] * coef1 + background[c] * coef2 + (0x80u << kPrecisionBits);
      dst[c] = static_cast<uint8_t>((((t >> 8) + t) >> 8) >> kPrecisionBits);
    }
  }
  return out;
}

}  // namespace flamingo
