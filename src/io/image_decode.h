// Decoding untrusted PNG and JPEG bytes into 8-bit pixels.
//
// Images come from strangers, so every decode is bounded: the file size is capped before it is
// read, the format is sniffed by us (PNG signature or JPEG SOI only), the container is
// pre-walked (PNG chunks, JPEG markers) and the declared dimensions are checked against a pixel
// budget before the decoder allocates anything, and the decoder's own allocations are capped.
// PNG goes through stb_image compiled privately into one translation unit
// (png_decoder_stb.cc); JPEG goes through Debian's libjpeg-turbo (jpeg_decoder.cc). See
// docs/reliability-images.md for the catalogue of bad inputs and the tests that cover them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flamingo/image.h"

namespace flamingo {

// ImageLimits (the decode budgets) is part of the public API: flamingo/image.h.

enum class ImageFormat {
  kUnknown,
  kPng,
  kJpeg,
  kGif,
  kBmp,
  kWebp,
  kTiff,
  kIco,
  kQoi,
  kHeif,
  kAvif,
  kJpeg2000,
  kJpegXl,
  kPnm,
  kPsd,
  kHdr
};

// Identifies the container from its first bytes. Only kPng and kJpeg are decodable; the rest
// are recognised so that the error can name them.
ImageFormat sniff_image_format(const uint8_t* bytes, size_t size);
const char* image_format_name(ImageFormat format);

// Interleaved 8-bit pixels, row-major, channels = 3 (RGB) or 4 (RGBA, straight alpha).
// RGBA is kept only until composite_over_background() flattens it.
struct DecodedImage {
  int width = 0;
  int height = 0;
  int channels = 3;
  std::vector<uint8_t> pixels;
};

// Reads at most limits.max_file_bytes from `path` and decodes it. Errors (all name the path):
// kIo for a missing/unreadable file or a directory, kCorruptFile for empty, truncated or
// malformed data, kUnsupported for other formats and unsupported PNG/JPEG variants,
// kResourceLimit for files or images over the limits.
DecodedImage decode_image_file(const std::filesystem::path& path,
                               const ImageLimits& limits = ImageLimits());

// Decodes bytes already in memory; `source_name` names them in error messages.
DecodedImage decode_image_memory(const uint8_t* bytes, size_t size, const std::string& source_name,
                                 const ImageLimits& limits = ImageLimits());

// Wraps caller-supplied interleaved pixels (3 or 4 channels) after checking the dimensions
// against `limits` and the buffer size against width × height × channels.
DecodedImage image_from_pixels(int width, int height, int channels, const uint8_t* data,
                               size_t size, const std::string& source_name,
                               const ImageLimits& limits = ImageLimits());

// Flattens RGBA onto an opaque background colour exactly as Pillow's
// Image.alpha_composite(background, image).convert("RGB") does (IDEFICS' convert_to_rgb).
// RGB input is returned unchanged.
DecodedImage composite_over_background(const DecodedImage& image, const uint8_t background[3]);

// Internal: the format-specific decoders. `bytes` has already been sniffed as their format.
DecodedImage decode_png(const uint8_t* bytes, size_t size, const std::string& source_name,
                        const ImageLimits& limits);
DecodedImage decode_jpeg(const uint8_t* bytes, size_t size, const std::string& source_name,
                         const ImageLimits& limits);

// Internal: checks declared dimensions against the limits (kCorruptFile for non-positive
// sizes, kResourceLimit for too large), before anything is allocated for them.
void check_image_dimensions(int64_t width, int64_t height, const std::string& source_name,
                            const ImageLimits& limits);
// Internal: the decoder allocation budget for an image of this many pixels.
uint64_t decode_budget_bytes(uint64_t pixels, const ImageLimits& limits);

}  // namespace flamingo
