// Images and short clips fed to the model.
//
// An Image holds decoded 8-bit RGB pixels. Copies are cheap and share the pixels; a Session
// recognises a copy of an image it has already encoded and reuses its visual features.
// Decoding accepts PNG and JPEG; other formats, and images over the pixel budget, are refused
// with flamingo::Error before any large allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flamingo/error.h"

namespace flamingo {

// Budgets for one decode. The defaults admit any reasonable photo and refuse decompression
// bombs; callers may tighten them or loosen them.
struct ImageLimits {
  uint64_t max_file_bytes = 64ull << 20;  // encoded size
  int max_side = 16384;                   // width and height each
  uint64_t max_pixels = 40'000'000;       // width × height
  // Bytes the decoder itself may allocate; the budget granted is
  // min(this, 64 MiB + 32 bytes per declared pixel).
  uint64_t max_decode_bytes = 1536ull << 20;
  int max_jpeg_scans = 1000;  // progressive JPEGs with more scans are refused (CPU DoS)
  bool check_png_crc = true;  // verify every PNG chunk's CRC
};

class Image {
 public:
  static Image from_file(const std::string& path, const ImageLimits& limits = {});
  static Image from_memory(const void* data, size_t size, const std::string& name = "<memory>",
                           const ImageLimits& limits = {});
  // Copies width×height RGB pixels; row_stride in bytes (0 = 3·width).
  static Image from_rgb(int width, int height, const uint8_t* rgb, size_t row_stride = 0);

  int width() const;
  int height() const;
  const uint8_t* rgb() const;       // height rows of 3·width bytes
  const std::string& name() const;  // file name or the name given

  struct Impl;
  const std::shared_ptr<const Impl>& impl() const { return impl_; }

 private:
  explicit Image(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// A media item: one image, or the frames of a clip (frames share one <image> marker).
struct Media {
  std::vector<Image> frames;
  Media(Image image) : frames{std::move(image)} {}  // NOLINT(google-explicit-constructor)
  explicit Media(std::vector<Image> clip) : frames(std::move(clip)) {}
};

}  // namespace flamingo
