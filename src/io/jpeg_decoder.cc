// JPEG decoding with Debian's libjpeg-turbo, which (unlike Debian's stb_image) carries the
// security fixes for hostile JPEGs. Our marker pre-walk refuses malformed headers, oversized
// images and scan floods before libjpeg allocates anything; libjpeg's fatal errors come back
// through setjmp/longjmp into small frames that hold no C++ objects, and the warnings that
// mean corrupt data are promoted to errors (a truncated photo must not turn into a grey one).
#include <climits>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// jpeglib.h must come first: jerror.h's message list depends on its version macros.
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include "io/image_decode.h"
#include "util/check.h"

namespace flamingo {
namespace {

uint32_t read_be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }

struct JpegLayout {
  int width = 0, height = 0, components = 0;
  int scans = 0;
};

bool is_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

// Walks the marker segments from SOI to EOI, skipping entropy-coded data, and checks what
// Debian's stb and older libjpegs got wrong: segment lengths inside the buffer, Huffman tables
// with at most 256 symbols (CVE-2022-28042), a sane frame header, a bounded number of scans.
JpegLayout walk_jpeg(const uint8_t* b, size_t size, const std::string& name,
                     const ImageLimits& limits) {
  JpegLayout jpg;
  size_t pos = 2;  // after SOI
  bool seen_sof = false;
  while (true) {
    // Find the next marker: 0xFF followed by a byte that is not 0x00 (stuffing), 0xFF (fill)
    // or RSTn. Outside entropy-coded data nothing but fill bytes may precede it; inside, the
    // bytes are scan data.
    while (pos < size && b[pos] != 0xFF) {
      if (jpg.scans == 0)
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: expected a marker at offset ", pos,
             ", found byte 0x", std::hex, int{b[pos]});
      ++pos;
    }
    while (pos + 1 < size && b[pos + 1] == 0xFF) ++pos;
    if (pos + 1 >= size)
      fail(ErrorCode::kCorruptFile, name, ": truncated JPEG: ", size,
           " bytes end before the EOI marker");
    const uint8_t m = b[pos + 1];
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7)) {
      if (jpg.scans == 0)
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: stray 0xFF", std::hex, int{m},
             " before the first scan at offset ", std::dec, pos);
      pos += 2;
      continue;
    }
    if (m == 0xD9) break;  // EOI
    if (m == 0xD8 || m == 0x01)
      fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: unexpected marker 0xFF", std::hex,
           int{m}, " at offset ", std::dec, pos);
    if (size - pos < 4)
      fail(ErrorCode::kCorruptFile, name, ": truncated JPEG: marker segment at offset ", pos,
           " is cut off");
    const size_t length = read_be16(b + pos + 2);
    if (length < 2 || length > size - pos - 2)
      fail(ErrorCode::kCorruptFile, name, ": corrupt or truncated JPEG: segment 0xFF", std::hex,
           int{m}, std::dec, " at offset ", pos, " declares ", length, " bytes but ",
           size - pos - 2, " remain");
    const uint8_t* seg = b + pos + 4;
    const size_t seg_len = length - 2;
    if (m == 0xC4) {  // DHT: one or more tables
      size_t off = 0;
      while (off < seg_len) {
        if (seg_len - off < 17)
          fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: short Huffman table at offset ",
               pos);
        const uint8_t tc_th = seg[off];
        if ((tc_th >> 4) > 1 || (tc_th & 15) > 3)
          fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: Huffman table class/id 0x", std::hex,
               int{tc_th}, std::dec, " at offset ", pos);
        size_t symbols = 0;
        for (int i = 1; i <= 16; ++i) symbols += seg[off + i];
        if (symbols > 256)
          fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: Huffman table at offset ", pos,
               " has ", symbols, " symbols (at most 256 are possible)");
        if (symbols > seg_len - off - 17)
          fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: Huffman table at offset ", pos,
               " runs past its segment");
        off += 17 + symbols;
      }
    } else if (is_sof(m)) {
      if (seen_sof)
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: second frame header at offset ", pos);
      seen_sof = true;
      if (m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF || m == 0xC5 || m == 0xC6 || m == 0xCD ||
          m == 0xCE)
        fail(ErrorCode::kUnsupported, name,
             ": lossless and hierarchical JPEGs are not supported (SOF marker 0xFF", std::hex,
             int{m}, ")");
      if (seg_len < 6)
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: frame header of ", seg_len, " bytes");
      const int precision = seg[0];
      jpg.height = static_cast<int>(read_be16(seg + 1));
      jpg.width = static_cast<int>(read_be16(seg + 3));
      jpg.components = seg[5];
      if (precision != 8)
        fail(ErrorCode::kUnsupported, name, ": ", precision,
             "-bit JPEGs are not supported (only 8-bit samples)");
      if (jpg.height == 0)
        fail(ErrorCode::kUnsupported, name,
             ": JPEG declares height 0 (DNL-defined height is not supported)");
      check_image_dimensions(jpg.width, jpg.height, name, limits);
      if (jpg.components != 1 && jpg.components != 3 && jpg.components != 4)
        fail(ErrorCode::kUnsupported, name, ": JPEG with ", jpg.components,
             " components is not supported (1 = grey, 3 = YCbCr/RGB, 4 = CMYK/YCCK)");
      if (seg_len != 6 + 3 * static_cast<size_t>(jpg.components))
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: frame header length ", seg_len,
             " does not match ", jpg.components, " components");
      for (int c = 0; c < jpg.components; ++c) {
        const int h = seg[6 + 3 * c + 1] >> 4, v = seg[6 + 3 * c + 1] & 15;
        if (h < 1 || h > 4 || v < 1 || v > 4)
          fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: component ", c,
               " has sampling factors ", h, "x", v, " (must be 1..4)");
      }
    } else if (m == 0xDA) {  // SOS; entropy-coded data follows the header
      if (!seen_sof)
        fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: scan before the frame header");
      if (++jpg.scans > limits.max_jpeg_scans)
        fail(ErrorCode::kResourceLimit, name, ": JPEG has more than ", limits.max_jpeg_scans,
             " scans");
    }
    pos += 2 + length;
  }
  if (!seen_sof || jpg.scans == 0)
    fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: no ", seen_sof ? "scan" : "frame header");
  return jpg;
}

// Everything libjpeg's callbacks touch; plain data only, since error_exit longjmps over it.
struct JpegContext {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int max_scans;
  bool created;
};

extern "C" void jpeg_on_error(j_common_ptr cinfo) {
  auto* ctx = reinterpret_cast<JpegContext*>(cinfo->client_data);
  (*cinfo->err->format_message)(cinfo, ctx->message);
  std::longjmp(ctx->jump, 1);
}

// Warnings that mean the data is damaged are fatal; harmless ones (an unknown JFIF revision,
// extraneous bytes between markers, a bad ICC marker we do not use) are ignored, as Pillow does.
extern "C" void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
#if JPEG_LIB_VERSION >= 70 || defined(D_ARITH_CODING_SUPPORTED)
    case JWRN_ARITH_BAD_CODE:
#endif
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_TOO_MUCH_DATA:
      jpeg_on_error(cinfo);
      break;
    default:
      break;
  }
}

extern "C" void jpeg_on_output(j_common_ptr) {}

extern "C" void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  auto* ctx = reinterpret_cast<JpegContext*>(cinfo->client_data);
  if (d->input_scan_number > ctx->max_scans) {
    std::snprintf(ctx->message, sizeof(ctx->message), "more than %d scans", ctx->max_scans);
    std::longjmp(ctx->jump, 1);
  }
}

// The three steps below each set their own jump target and keep only plain locals, so a
// longjmp out of libjpeg never skips a C++ destructor.
bool jpeg_begin(JpegContext* ctx, const uint8_t* data, size_t size, long max_memory) {
  if (setjmp(ctx->jump)) return false;
  jpeg_create_decompress(&ctx->cinfo);
  ctx->created = true;
  ctx->cinfo.client_data = ctx;
  ctx->cinfo.mem->max_memory_to_use = max_memory;
  ctx->progress.progress_monitor = jpeg_on_progress;
  ctx->cinfo.progress = &ctx->progress;
  jpeg_mem_src(&ctx->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&ctx->cinfo, TRUE);
  return true;
}

bool jpeg_start(JpegContext* ctx, J_COLOR_SPACE out_space) {
  if (setjmp(ctx->jump)) return false;
  ctx->cinfo.out_color_space = out_space;
  jpeg_start_decompress(&ctx->cinfo);
  return true;
}

bool jpeg_read_all(JpegContext* ctx, uint8_t* out, size_t row_bytes) {
  if (setjmp(ctx->jump)) return false;
  while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(ctx->cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&ctx->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&ctx->cinfo);
  return true;
}

struct ContextOwner {
  JpegContext* ctx;
  ~ContextOwner() {
    if (ctx->created) jpeg_destroy_decompress(&ctx->cinfo);
    delete ctx;
  }
};

}  // namespace

DecodedImage decode_jpeg(const uint8_t* bytes, size_t size, const std::string& name,
                         const ImageLimits& limits) {
  const JpegLayout layout = walk_jpeg(bytes, size, name, limits);
  const uint64_t pixels = static_cast<uint64_t>(layout.width) * layout.height;

  auto* ctx = new JpegContext();
  ContextOwner owner{ctx};
  ctx->cinfo.err = jpeg_std_error(&ctx->err);
  ctx->err.error_exit = jpeg_on_error;
  ctx->err.emit_message = jpeg_on_message;
  ctx->err.output_message = jpeg_on_output;
  ctx->cinfo.client_data = ctx;
  ctx->max_scans = limits.max_jpeg_scans;
  const uint64_t budget = decode_budget_bytes(pixels, limits);
  const long max_memory =
      budget > static_cast<uint64_t>(LONG_MAX) ? LONG_MAX : static_cast<long>(budget);

  auto fail_decode = [&](const char* stage) {
    // libjpeg keeps a progressive JPEG's coefficients in memory up to max_memory_to_use and
    // asks for a backing store beyond it (which this build does not have): that is our budget.
    if (ctx->err.msg_code == JERR_NO_BACKING_STORE)
      fail(ErrorCode::kResourceLimit, name, ": decoding the JPEG needs more than its budget of ",
           max_memory, " bytes");
    if (ctx->err.msg_code == JERR_OUT_OF_MEMORY)
      fail(ErrorCode::kOutOfMemory, name, ": out of memory while decoding the JPEG (", stage,
           "): ", ctx->message);
    fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG (", stage, "): ", ctx->message);
  };
  if (!jpeg_begin(ctx, bytes, size, max_memory)) fail_decode("header");

  jpeg_decompress_struct& cinfo = ctx->cinfo;
  if (static_cast<int>(cinfo.image_width) != layout.width ||
      static_cast<int>(cinfo.image_height) != layout.height)
    fail(ErrorCode::kCorruptFile, name, ": corrupt JPEG: frame header says ", layout.width, "x",
         layout.height, " but the decoder read ", cinfo.image_width, "x", cinfo.image_height);

  // Pillow opens 1 component as "L", 3 as "RGB" and 4 as "CMYK" with raw mode "CMYK;I",
  // i.e. it always assumes Adobe's inverted CMYK; libjpeg turns YCCK into that CMYK for us.
  J_COLOR_SPACE out_space;
  int out_components;
  switch (cinfo.num_components) {
    case 1:
      out_space = JCS_GRAYSCALE, out_components = 1;
      break;
    case 3:
      out_space = JCS_RGB, out_components = 3;
      break;
    case 4:
      if (cinfo.jpeg_color_space != JCS_CMYK && cinfo.jpeg_color_space != JCS_YCCK)
        fail(ErrorCode::kUnsupported, name, ": 4-component JPEG that is neither CMYK nor YCCK");
      out_space = JCS_CMYK, out_components = 4;
      break;
    default:
      fail(ErrorCode::kUnsupported, name, ": JPEG with ", cinfo.num_components,
           " components is not supported");
  }
  if (!jpeg_start(ctx, out_space)) fail_decode("start");
  if (static_cast<int>(cinfo.output_width) != layout.width ||
      static_cast<int>(cinfo.output_height) != layout.height ||
      cinfo.output_components != out_components)
    fail(ErrorCode::kInternal, name, ": libjpeg output geometry differs from the header");

  const size_t row_bytes = static_cast<size_t>(layout.width) * out_components;
  std::vector<uint8_t> raw(row_bytes * layout.height);
  if (!jpeg_read_all(ctx, raw.data(), row_bytes)) fail_decode("data");

  DecodedImage image;
  image.width = layout.width;
  image.height = layout.height;
  image.channels = 3;
  if (out_components == 3) {
    image.pixels = std::move(raw);
    return image;
  }
  image.pixels.resize(pixels * 3);
  uint8_t* dst = image.pixels.data();
  if (out_components == 1) {
    for (uint64_t i = 0; i < pixels; ++i) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = raw[i];
    return image;
  }
  // Pillow's CMYK → RGB: with inverted storage c = 255 - stored, and
  // rgb = clip(nk - c·nk/255) where nk = 255 - k and the division is its rounded /255.
  for (uint64_t i = 0; i < pixels; ++i) {
    const uint8_t* s = &raw[4 * i];
    const int nk = s[3];  // 255 - k, since k itself is stored inverted
    for (int c = 0; c < 3; ++c) {
      const int cyan = 255 - s[c];
      const int t = cyan * nk + 128;
      const int v = nk - (((t >> 8) + t) >> 8);
      dst[3 * i + c] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
  return image;
}

}  // namespace flamingo
