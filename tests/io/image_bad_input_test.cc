// The bad-image catalogue of docs/reliability-images.md: each hostile or broken input must
// give a flamingo::Error with the stated code and a message naming the file, never a crash,
// an abort, an unbounded allocation or another exception type.
#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

// After <cstdio>: jpeglib.h uses FILE and size_t without including their headers.
#include <jpeglib.h>

#include "flamingo/error.h"
#include "flamingo/image.h"
#include "io/image_builders.h"
#include "io/image_decode.h"
#include "io/image_preprocess.h"
#include "support/test_util.h"

namespace flamingo {
namespace {

namespace fs = std::filesystem;
using image_test::Bytes;

fs::path image_path(const std::string& name) { return testing::test_data_dir() / "images" / name; }
Bytes image_bytes(const std::string& name) { return testing::read_file(image_path(name)); }

DecodedImage decode(const Bytes& b, const std::string& name,
                    const ImageLimits& limits = ImageLimits()) {
  return decode_image_memory(reinterpret_cast<const uint8_t*>(b.data()), b.size(), name, limits);
}

// Runs `f`, which must throw flamingo::Error with `code` and a message that contains `name`
// and `fragment`. Returns the message.
template <typename F>
std::string expect_error(F&& f, ErrorCode code, const std::string& name,
                         const std::string& fragment = "") {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    EXPECT_NE(msg.find(name), std::string::npos) << "message does not name the input: " << msg;
    if (!fragment.empty())
      EXPECT_NE(msg.find(fragment), std::string::npos)
          << "expected '" << fragment << "' in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no error for " << name;
  return "";
}

const char* kPngFiles[] = {"rgb8_37x23.png", "rgba8_interlaced_26x25.png",
                           "palette4_trns_35x27.png", "rgb16_31x19.png", "greyalpha8_29x31.png"};
const char* kJpegFiles[] = {"baseline420_64x48.jpg", "progressive420_57x41.jpg", "cmyk_30x22.jpg",
                            "grey_45x35.jpg", "progressive_cmyk_23x19.jpg"};

TEST(ImageBadInput, EmptyFile) {
  testing::TempDir dir;
  const fs::path p = dir.path() / "empty.png";
  testing::write_file(p, "");
  expect_error([&] { decode_image_file(p); }, ErrorCode::kCorruptFile, p.string(), "empty");
}

TEST(ImageBadInput, EmptyBuffer) {
  expect_error([&] { decode("", "upload-1"); }, ErrorCode::kCorruptFile, "upload-1", "empty");
}

TEST(ImageBadInput, MissingFile) {
  testing::TempDir dir;
  const fs::path p = dir.path() / "nope.jpg";
  expect_error([&] { decode_image_file(p); }, ErrorCode::kIo, p.string(), "no such file");
}

TEST(ImageBadInput, Directory) {
  testing::TempDir dir;
  expect_error([&] { decode_image_file(dir.path()); }, ErrorCode::kIo, dir.path().string(),
               "directory");
}

TEST(ImageBadInput, FileOverSizeLimit) {
  ImageLimits limits;
  limits.max_file_bytes = 100;
  const fs::path p = image_path("rgb8_37x23.png");
  expect_error([&] { decode_image_file(p, limits); }, ErrorCode::kResourceLimit, p.string(),
               "limit");
  expect_error([&] { decode(image_bytes("rgb8_37x23.png"), "mem.png", limits); },
               ErrorCode::kResourceLimit, "mem.png", "limit");
}

TEST(ImageBadInput, TruncatedAtEveryByte) {
  size_t cases = 0;
  std::vector<std::string> files(std::begin(kPngFiles), std::end(kPngFiles));
  files.insert(files.end(), std::begin(kJpegFiles), std::end(kJpegFiles));
  {
    for (const std::string& file : files) {
      const Bytes full = image_bytes(file);
      ASSERT_NO_THROW(decode(full, file));
      for (size_t cut = 0; cut < full.size(); ++cut) {
        SCOPED_TRACE(file + " cut at " + std::to_string(cut));
        const std::string name = file + "[:" + std::to_string(cut) + "]";
        expect_error([&] { decode(full.substr(0, cut), name); }, ErrorCode::kCorruptFile, name);
        ++cases;
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
  std::printf("truncation cases: %zu, all refused with kCorruptFile\n", cases);
}

// libjpeg sees the end of the image in the middle of the scan data; the warning it raises
// ("premature end of data segment") must become an error, not a half-grey picture.
TEST(ImageBadInput, TruncatedJpegScanWithEoi) {
  for (const char* file : kJpegFiles) {
    const Bytes full = image_bytes(file);
    const size_t sos = image_test::find_jpeg_segment(full, 0xDA);
    ASSERT_NE(sos, Bytes::npos);
    for (size_t cut = sos + 20; cut + 40 < full.size(); cut += 37) {
      if (static_cast<unsigned char>(full[cut - 1]) == 0xFF) continue;
      const std::string name = std::string(file) + "+eoi@" + std::to_string(cut);
      expect_error([&] { decode(full.substr(0, cut) + "\xFF\xD9", name); }, ErrorCode::kCorruptFile,
                   name);
    }
  }
}

TEST(ImageBadInput, NonImageBytes) {
  expect_error([&] { decode("hello, this is not an image\n", "notes.txt"); },
               ErrorCode::kUnsupported, "notes.txt", "not a PNG or JPEG");
  std::mt19937 rng(7);
  Bytes noise(1000, '\0');
  for (char& c : noise) c = static_cast<char>(rng() & 0x7F);  // never 0xFF 0xD8 or 0x89 'P'
  expect_error([&] { decode(noise, "noise.bin"); }, ErrorCode::kUnsupported, "noise.bin");
}

TEST(ImageBadInput, OtherFormatsAreNamed) {
  struct Case {
    Bytes bytes;
    const char* format;
  } cases[] = {
      {Bytes("GIF89a\x01\x00\x01\x00\x80\x00\x00", 13), "GIF"},
      {Bytes("GIF87a\x01\x00\x01\x00", 10), "GIF"},
      {Bytes("BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00", 16), "BMP"},
      {Bytes("RIFF\x24\x00\x00\x00WEBPVP8 ", 16), "WebP"},
      {Bytes("II*\x00\x08\x00\x00\x00", 8), "TIFF"},
      {Bytes("\x00\x00\x00\x18"
             "ftypheic\x00\x00\x00\x00",
             16),
       "HEIF"},
      {Bytes("\x00\x00\x00\x1c"
             "ftypavif\x00\x00\x00\x00",
             16),
       "AVIF"},
      {Bytes("qoif\x00\x00\x00\x01", 8), "QOI"},
      {Bytes("P6\n1 1\n255\n\x01\x02\x03", 14), "PNM"},
      {Bytes("8BPS\x00\x01", 6), "PSD"},
      {Bytes("#?RADIANCE\n", 11), "HDR"},
  };
  for (const auto& c : cases)
    expect_error([&] { decode(c.bytes, "file.bin"); }, ErrorCode::kUnsupported, "file.bin",
                 c.format);
}

TEST(ImageBadInput, ZeroSizedPng) {
  const Bytes png = image_test::make_png(0, 0, 8, 0, Bytes(1, '\0'));
  expect_error([&] { decode(png, "zero.png"); }, ErrorCode::kCorruptFile, "zero.png", "0x0");
  const Bytes wide0 = image_test::make_png(5, 0, 8, 0, "");
  expect_error([&] { decode(wide0, "zero-h.png"); }, ErrorCode::kCorruptFile, "zero-h.png");
}

Bytes patch_jpeg_size(Bytes jpg, uint32_t width, uint32_t height) {
  size_t sof = image_test::find_jpeg_segment(jpg, 0xC0);
  if (sof == Bytes::npos) sof = image_test::find_jpeg_segment(jpg, 0xC2);
  EXPECT_NE(sof, Bytes::npos);
  jpg[sof + 5] = static_cast<char>(height >> 8);
  jpg[sof + 6] = static_cast<char>(height);
  jpg[sof + 7] = static_cast<char>(width >> 8);
  jpg[sof + 8] = static_cast<char>(width);
  return jpg;
}

TEST(ImageBadInput, ZeroSizedJpeg) {
  const Bytes jpg = image_bytes("baseline420_64x48.jpg");
  expect_error([&] { decode(patch_jpeg_size(jpg, 0, 48), "w0.jpg"); }, ErrorCode::kCorruptFile,
               "w0.jpg", "0x48");
  // Height 0 means "defined later by a DNL marker", which neither we nor Pillow support.
  expect_error([&] { decode(patch_jpeg_size(jpg, 64, 0), "h0.jpg"); }, ErrorCode::kUnsupported,
               "h0.jpg", "height 0");
}

TEST(ImageBadInput, OneByOne) {
  const Bytes png = image_test::make_png(1, 1, 8, 2, Bytes("\x00\x0a\x80\xf0", 4));
  const DecodedImage img = decode(png, "dot.png");
  ASSERT_EQ(img.width, 1);
  ASSERT_EQ(img.height, 1);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{0x0a, 0x80, 0xf0}));
  for (ResizeMode mode : {ResizeMode::kShortestCrop, ResizeMode::kSquash}) {
    PreprocessParams p;
    p.resize = mode;
    p.size = 224;
    const std::vector<uint8_t> out = resize_and_crop(img, p);
    ASSERT_EQ(out.size(), 224u * 224 * 3);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], img.pixels[i % 3]) << i;
  }
}

// 1×100000 is refused by the side limit (16384 by default; PNG never goes above it because
// stb is compiled with that backstop). Admitted through raised limits as raw pixels, it is
// preprocessed in bounded memory: only the rows the centre crop needs are resampled.
TEST(ImageBadInput, OneBy100000) {
  Bytes raw;
  for (int y = 0; y < 100000; ++y) raw += Bytes("\x00\x7f", 2);
  const Bytes png = image_test::make_png(1, 100000, 8, 0, raw);
  expect_error([&] { decode(png, "needle.png"); }, ErrorCode::kResourceLimit, "needle.png",
               "16384");
  ImageLimits raised;
  raised.max_side = 200000;
  expect_error([&] { decode(png, "needle.png", raised); }, ErrorCode::kResourceLimit, "needle.png",
               "PNG sides above 16384");

  std::vector<uint8_t> pixels(100000 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(40 + i % 3);
  expect_error([&] { image_from_pixels(1, 100000, 3, pixels.data(), pixels.size(), "needle"); },
               ErrorCode::kResourceLimit, "needle");
  const DecodedImage img =
      image_from_pixels(1, 100000, 3, pixels.data(), pixels.size(), "needle", raised);
  // CPU time of this process, so that a loaded machine does not make the bound flaky.
  const std::clock_t start = std::clock();
  for (ResizeMode mode : {ResizeMode::kShortestCrop, ResizeMode::kSquash}) {
    PreprocessParams p;
    p.resize = mode;
    const std::vector<uint8_t> out = resize_and_crop(img, p);
    ASSERT_EQ(out.size(), 224u * 224 * 3);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 40 + i % 3) << i;
  }
  EXPECT_LT(static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC, 10.0);
}

TEST(ImageBadInput, HugeDeclaredDimensionsPng) {
  const Bytes idat = image_test::png_chunk("IDAT", image_test::zlib_stored(Bytes(16, '\0')));
  const Bytes end = image_test::png_chunk("IEND", "");
  const Bytes sig = image_test::png_signature();
  expect_error([&] { decode(sig + image_test::ihdr(100000, 100000, 8, 2) + idat + end, "a.png"); },
               ErrorCode::kResourceLimit, "a.png", "100000x100000");
  // Each side within the side limit, the product over the pixel limit.
  expect_error([&] { decode(sig + image_test::ihdr(16384, 16384, 8, 6) + idat + end, "b.png"); },
               ErrorCode::kResourceLimit, "b.png", "pixels");
  expect_error([&] { decode(sig + image_test::ihdr(0x80000000u, 1, 8, 2) + idat + end, "c.png"); },
               ErrorCode::kCorruptFile, "c.png", "2^31-1");
  // A tighter caller limit is honoured as well.
  ImageLimits small;
  small.max_pixels = 100;
  expect_error([&] { decode(image_bytes("rgb8_37x23.png"), "d.png", small); },
               ErrorCode::kResourceLimit, "d.png", "over the limit of 100");
}

TEST(ImageBadInput, HugeDeclaredDimensionsJpeg) {
  const Bytes jpg = image_bytes("baseline420_64x48.jpg");
  expect_error([&] { decode(patch_jpeg_size(jpg, 65000, 65000), "big.jpg"); },
               ErrorCode::kResourceLimit, "big.jpg", "65000x65000");
  expect_error([&] { decode(patch_jpeg_size(jpg, 10000, 10000), "big2.jpg"); },
               ErrorCode::kResourceLimit, "big2.jpg", "pixels");
}

// The stb_image OOM from docs/reliability-images.md: a tiny PNG whose IDAT claims ~2 GiB.
TEST(ImageBadInput, PngHugeIdatLength) {
  Bytes png = image_test::png_signature() + image_test::ihdr(1, 1, 8, 0);
  png += image_test::be32(0x7FFFFFF0u) + "IDAT" + Bytes(440, '\x5a');
  ASSERT_LT(png.size(), 500u);
  for (bool crc : {true, false}) {
    ImageLimits limits;
    limits.check_png_crc = crc;
    expect_error([&] { decode(png, "idat.png", limits); }, ErrorCode::kCorruptFile, "idat.png",
                 "declares 2147483632 data bytes");
  }
}

// A 1×1 PNG whose IDAT inflates to 8 MiB: the decoder's byte budget stops it.
TEST(ImageBadInput, PngInflationBomb) {
  const Bytes bomb = image_test::zlib_zero_bomb(8u << 20);
  ASSERT_LT(bomb.size(), 60000u);
  const Bytes png = image_test::png_signature() + image_test::ihdr(1, 1, 8, 0) +
                    image_test::png_chunk("IDAT", bomb) + image_test::png_chunk("IEND", "");
  ImageLimits limits;
  limits.max_decode_bytes = 1u << 20;
  expect_error([&] { decode(png, "bomb.png", limits); }, ErrorCode::kResourceLimit, "bomb.png",
               "budget");
  // Within the default budget the surplus data is ignored, as by stb and Pillow.
  const DecodedImage img = decode(png, "bomb.png");
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{0, 0, 0}));
}

// A progressive greyscale JPEG of a smooth ramp, encoded with libjpeg.
Bytes progressive_grey_jpeg(int width, int height) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&c, &out, &out_size);
  c.image_width = static_cast<JDIMENSION>(width);
  c.image_height = static_cast<JDIMENSION>(height);
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<JSAMPLE> row(static_cast<size_t>(width));
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < width; ++x)
      row[static_cast<size_t>(x)] = static_cast<JSAMPLE>((x + c.next_scanline) % 256);
    JSAMPROW rows[1] = {row.data()};
    jpeg_write_scanlines(&c, rows, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  Bytes bytes(reinterpret_cast<const char*>(out), out_size);
  std::free(out);
  return bytes;
}

// A progressive JPEG keeps all its coefficients in memory, which libjpeg bounds by
// max_memory_to_use (our budget), asking beyond it for a backing store this build lacks. That
// is the budget speaking, not a corrupt file ("Backing store not supported" used to come out
// as kCorruptFile). 400 rows: a column of coefficients taller than libjpeg's minimum strip.
TEST(ImageBadInput, ProgressiveJpegOverItsBudget) {
  const Bytes jpg = progressive_grey_jpeg(16, 400);
  const DecodedImage img = decode(jpg, "p.jpg");
  EXPECT_EQ(img.width, 16);
  EXPECT_EQ(img.height, 400);
  ImageLimits limits;
  limits.max_decode_bytes = 4096;
  expect_error([&] { decode(jpg, "p.jpg", limits); }, ErrorCode::kResourceLimit, "p.jpg",
               "budget of 4096 bytes");
}

// malloc failing inside a decoder, within the budget, is running out of memory: the public
// Image::from_memory reports kOutOfMemory, not a budget (kResourceLimit) or a corrupt file.
// 1500×1500 pixels: stb inflates 6.75 MB and libjpeg keeps 4.5 MB of coefficients, with room
// for 1 MiB more than the process maps.
TEST(ImageBadInput, DecodersOutOfMemoryAreReportedAsSuch) {
  if (testing::kUnderSanitizer) GTEST_SKIP() << "address-space limits do not work under sanitizers";
  const Bytes png =
      image_test::make_png(1500, 1500, 8, 2, Bytes(size_t{1500} * (1 + 1500 * 3), '\0'));
  const Bytes jpg = progressive_grey_jpeg(1500, 1500);
  for (const auto& [bytes, name] : {std::pair{&png, "big.png"}, std::pair{&jpg, "big.jpg"}}) {
    SCOPED_TRACE(name);
    ErrorCode code = ErrorCode::kInternal;
    std::string message = "no error";
    {
      const testing::AddressSpaceLimit limit(1u << 20);
      try {
        Image::from_memory(bytes->data(), bytes->size(), name);
      } catch (const Error& e) {
        code = e.code();
        message = e.what();
      }
    }
    EXPECT_EQ(code, ErrorCode::kOutOfMemory) << message;
    EXPECT_NE(message.find(name), std::string::npos) << message;
    // Only now: glibc keeps freed memory for reuse, which would let the decode above succeed.
    EXPECT_EQ(Image::from_memory(bytes->data(), bytes->size(), name).width(), 1500);
  }
}

TEST(ImageBadInput, JpegHuffmanTableOver256Symbols) {
  Bytes jpg = image_bytes("baseline420_64x48.jpg");
  const size_t dht = image_test::find_jpeg_segment(jpg, 0xC4);
  ASSERT_NE(dht, Bytes::npos);
  // Counts for code lengths 1..16 follow the class/id byte. Claim 263 symbols, the count of
  // the fuzz-found CVE-2022-28042 crasher; the segment length is left as it is.
  for (int i = 0; i < 16; ++i) jpg[dht + 5 + i] = 0;
  jpg[dht + 5 + 15] = static_cast<char>(255);
  jpg[dht + 5 + 14] = 8;
  expect_error([&] { decode(jpg, "dht.jpg"); }, ErrorCode::kCorruptFile, "dht.jpg", "263 symbols");
}

TEST(ImageBadInput, JpegTooManyScans) {
  ImageLimits limits;
  limits.max_jpeg_scans = 3;
  expect_error([&] { decode(image_bytes("progressive420_57x41.jpg"), "prog.jpg", limits); },
               ErrorCode::kResourceLimit, "prog.jpg", "scans");
}

TEST(ImageBadInput, JpegUnsupportedVariants) {
  Bytes jpg = image_bytes("baseline420_64x48.jpg");
  const size_t sof = image_test::find_jpeg_segment(jpg, 0xC0);
  Bytes twelve = jpg;
  twelve[sof + 4] = 12;
  expect_error([&] { decode(twelve, "12bit.jpg"); }, ErrorCode::kUnsupported, "12bit.jpg",
               "12-bit");
  Bytes lossless = jpg;
  lossless[sof + 1] = static_cast<char>(0xC3);
  expect_error([&] { decode(lossless, "lossless.jpg"); }, ErrorCode::kUnsupported, "lossless.jpg",
               "lossless");
  Bytes two = jpg;
  two[sof + 9] = 2;
  expect_error([&] { decode(two, "2comp.jpg"); }, ErrorCode::kUnsupported, "2comp.jpg",
               "2 components");
}

TEST(ImageBadInput, PngCrcMismatch) {
  Bytes png = image_bytes("rgb8_37x23.png");
  png[png.find("IDAT") + 40] ^= 0x01;  // inside the first IDAT's data
  expect_error([&] { decode(png, "crc.png"); }, ErrorCode::kCorruptFile, "crc.png", "CRC");
  ImageLimits no_crc;
  no_crc.check_png_crc = false;
  try {
    decode(png, "crc.png", no_crc);  // may decode or fail in inflate; must not crash
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
  }
}

TEST(ImageBadInput, PngUnsupportedChunks) {
  const Bytes raw("\x00\x10", 2);
  const Bytes cgbi = image_test::png_signature() + image_test::png_chunk("CgBI", Bytes(4, '\0')) +
                     image_test::ihdr(1, 1, 8, 0) +
                     image_test::png_chunk("IDAT", image_test::zlib_stored(raw)) +
                     image_test::png_chunk("IEND", "");
  // CgBI comes before IHDR in Apple's files, which is already a violation of the format.
  expect_error([&] { decode(cgbi, "apple.png"); }, ErrorCode::kCorruptFile, "apple.png", "IHDR");
  const Bytes cgbi_after = image_test::make_png(1, 1, 8, 0, raw, image_test::png_chunk("CgBI", ""));
  expect_error([&] { decode(cgbi_after, "apple2.png"); }, ErrorCode::kUnsupported, "apple2.png",
               "CgBI");
  const Bytes critical = image_test::make_png(1, 1, 8, 0, raw, image_test::png_chunk("ABCD", ""));
  expect_error([&] { decode(critical, "crit.png"); }, ErrorCode::kUnsupported, "crit.png", "ABCD");
  // Unknown ancillary chunks are skipped.
  const Bytes ancillary = image_test::make_png(1, 1, 8, 0, raw, image_test::png_chunk("abCD", "x"));
  EXPECT_EQ(decode(ancillary, "anc.png").pixels, (std::vector<uint8_t>{0x10, 0x10, 0x10}));
}

// Zero-length IDAT chunks are legal and carry nothing; Debian's stb copied the first one from
// a null pointer (UBSan, found by image_fuzzer with the 57-byte file below). They are dropped
// before stb sees the file, so the pixels are those of the same image without them.
TEST(ImageBadInput, PngEmptyIdatChunks) {
  const Bytes raw("\x00\x10\x00\x80", 4);  // 1x2 grey, filter 0
  const Bytes plain = image_test::make_png(1, 2, 8, 0, raw);
  const std::vector<uint8_t> want = decode(plain, "plain.png").pixels;
  const Bytes empty = image_test::png_chunk("IDAT", "");
  const Bytes idat = image_test::png_chunk("IDAT", image_test::zlib_stored(raw));
  const Bytes head = image_test::png_signature() + image_test::ihdr(1, 2, 8, 0);
  const Bytes end = image_test::png_chunk("IEND", "");
  EXPECT_EQ(decode(head + empty + idat + end, "first.png").pixels, want);
  EXPECT_EQ(decode(head + empty + empty + idat + empty + end, "many.png").pixels, want);
  // Split data around an empty chunk: IDAT contents concatenate.
  const Bytes z = image_test::zlib_stored(raw);
  EXPECT_EQ(decode(head + image_test::png_chunk("IDAT", z.substr(0, 5)) + empty +
                       image_test::png_chunk("IDAT", z.substr(5)) + end,
                   "split.png")
                .pixels,
            want);
  // A palette image with a short PLTE (patched too) and an empty first IDAT.
  const Bytes pal_raw("\x00\x00\x00\x01", 4);
  const Bytes pal_head = image_test::png_signature() + image_test::ihdr(1, 2, 8, 3) +
                         image_test::png_chunk("PLTE", Bytes("\x10\x20\x30\x40\x50\x60", 6));
  const DecodedImage pal = decode(
      pal_head + empty + image_test::png_chunk("IDAT", image_test::zlib_stored(pal_raw)) + end,
      "pal.png");
  EXPECT_EQ(pal.pixels, (std::vector<uint8_t>{0x10, 0x20, 0x30, 0x40, 0x50, 0x60}));
  // Only empty IDATs: no image data at all.
  expect_error([&] { decode(head + empty + end, "nodata.png"); }, ErrorCode::kCorruptFile,
               "nodata.png");
  // The shape of the fuzzer's file: an IHDR with a zeroed CRC, then an empty IDAT; with CRC
  // checks off (as the fuzzer runs half its inputs) it reaches stb. (Written as "\xae" "B": in
  // one literal "\xaeB" is a single out-of-range escape, which clang rejects.)
  const Bytes found(
      "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x05\x00\x00\x00\x01\x08\x04\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00IDATrhg\xcf\x00\x00\x00\x00IEND\xae"
      "B`\x82",
      58);
  ImageLimits no_crc;
  no_crc.check_png_crc = false;
  for (const ImageLimits& limits : {ImageLimits{}, no_crc}) {
    try {
      decode(found, "fuzz.png", limits);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    }
  }
}

TEST(ImageBadInput, PngBadHeaderFields) {
  const Bytes raw("\x00\x10", 2);
  expect_error([&] { decode(image_test::make_png(1, 1, 3, 2, raw), "depth.png"); },
               ErrorCode::kCorruptFile, "depth.png", "bit depth 3");
  expect_error([&] { decode(image_test::make_png(1, 1, 8, 5, raw), "ct.png"); },
               ErrorCode::kCorruptFile, "ct.png", "colour type 5");
  expect_error([&] { decode(image_test::make_png(1, 1, 8, 3, raw), "nopal.png"); },
               ErrorCode::kCorruptFile, "nopal.png", "without PLTE");
  // Too few pixels in the stream: stb's own check, reported as corrupt.
  expect_error([&] { decode(image_test::make_png(4, 4, 8, 2, raw), "short.png"); },
               ErrorCode::kCorruptFile, "short.png");
}

// Indices beyond a short palette read black instead of stb's uninitialised stack memory.
TEST(ImageBadInput, PngShortPaletteIsDeterministic) {
  Bytes raw;
  raw += '\0';
  for (int i = 0; i < 8; ++i) raw += static_cast<char>(i * 37);
  const Bytes png = image_test::make_png(
      8, 1, 8, 3, raw, image_test::png_chunk("PLTE", Bytes("\x10\x20\x30\x40\x50\x60", 6)));
  const DecodedImage a = decode(png, "pal.png");
  const DecodedImage b = decode(png, "pal.png");
  EXPECT_EQ(a.pixels, b.pixels);
  ASSERT_EQ(a.channels, 3);
  EXPECT_EQ(a.pixels[0], 0x10);
  for (int x = 1; x < 8; ++x)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(a.pixels[x * 3 + c], 0) << x;
}

// Random byte edits of every test image (PNG CRC checking off, so that the edits reach the
// decoder): each must decode, and then preprocess, or fail with a flamingo::Error.
TEST(ImageBadInput, RandomMutationsNeverCrash) {
  std::mt19937 rng(1234);
  ImageLimits limits;
  limits.check_png_crc = false;
  limits.max_decode_bytes = 64u << 20;
  size_t decoded = 0, refused = 0;
  for (const auto& entry : fs::directory_iterator(testing::test_data_dir() / "images")) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".png" && ext != ".jpg") continue;
    const Bytes original = testing::read_file(entry.path());
    for (int trial = 0; trial < 150; ++trial) {
      Bytes b = original;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % b.size();
        switch (rng() % 4) {
          case 0:
            b[at] = static_cast<char>(rng());
            break;
          case 1:
            b[at] ^= static_cast<char>(1u << (rng() % 8));
            break;
          case 2:
            b.erase(at, 1 + rng() % 8);
            break;
          default:
            b.insert(at, Bytes(1 + rng() % 8, static_cast<char>(rng())));
            break;
        }
        if (b.empty()) b = "x";
      }
      try {
        const DecodedImage img = decode(b, "mutant", limits);
        PreprocessParams p;
        p.size = 16;
        ASSERT_EQ(preprocess(img, p).size(), 16u * 16 * 3);
        ++decoded;
      } catch (const Error& e) {
        ASSERT_NE(e.code(), ErrorCode::kInternal) << e.what();
        ++refused;
      }
    }
  }
  std::printf("mutations: %zu decoded, %zu refused with an Error\n", decoded, refused);
  EXPECT_GT(refused, 0u);
}

TEST(ImageBadInput, ImageFromPixelsValidation) {
  const std::vector<uint8_t> px(12, 7);
  expect_error([&] { image_from_pixels(2, 2, 2, px.data(), px.size(), "buf"); },
               ErrorCode::kInvalidArgument, "buf", "channels");
  expect_error([&] { image_from_pixels(2, 2, 3, px.data(), 11, "buf"); },
               ErrorCode::kInvalidArgument, "buf", "expected");
  expect_error([&] { image_from_pixels(0, 2, 3, px.data(), 0, "buf"); },
               ErrorCode::kInvalidArgument, "buf");
  expect_error([&] { image_from_pixels(2, 2, 3, nullptr, 12, "buf"); }, ErrorCode::kInvalidArgument,
               "buf");
  EXPECT_EQ(image_from_pixels(2, 2, 3, px.data(), px.size(), "buf").pixels, px);
}

TEST(ImageBadInput, ConcurrentDecodesAgree) {
  std::vector<Bytes> files;
  for (const char* f : kPngFiles) files.push_back(image_bytes(f));
  for (const char* f : kJpegFiles) files.push_back(image_bytes(f));
  std::vector<std::vector<float>> expected;
  PreprocessParams p;
  p.size = 20;
  for (const Bytes& b : files) expected.push_back(preprocess(decode(b, "x"), p));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (size_t i = 0; i < files.size(); ++i)
          if (preprocess(decode(files[i], "x"), p) != expected[i]) ++mismatches[t];
    });
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
}  // namespace flamingo
