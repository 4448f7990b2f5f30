// PNG decoding: our own chunk pre-walk, then stb_image behind a byte budget.
//
// This is the only translation unit that compiles stb_image, with the PNG decoder alone and
// static linkage (Debian's libstb is built with every decoder and must never be linked; see
// docs/reliability-images.md). Debian's stb_image (v2.27) trusts IDAT lengths when sizing
// its buffer (a 479-byte file asks for 2 GiB) and grows its inflate buffer without bound, so
// the pre-walk checks every chunk against the real input and the allocator hooks refuse any
// allocation over the budget; stb turns a NULL into a clean "outofmem" failure.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/image_decode.h"
#include "util/check.h"

namespace flamingo {
namespace {

// Per-thread byte budget for stb's heap. Every block carries a header with its size so that
// realloc and free can account for it.
struct StbBudget {
  uint64_t limit = 0;
  uint64_t used = 0;
  uint64_t outstanding_blocks = 0;
  bool refused = false;        // an allocation was refused: stb's "outofmem" means over budget
  bool out_of_memory = false;  // malloc itself failed, within the budget
};
thread_local StbBudget* t_budget = nullptr;

constexpr size_t kHeader = 16;  // keeps the payload 16-byte aligned like malloc's

void* budget_malloc(size_t size) {
  StbBudget* b = t_budget;
  if (b == nullptr || size > b->limit - b->used || size > SIZE_MAX - kHeader) {
    if (b) b->refused = true;
    return nullptr;
  }
  auto* raw = static_cast<unsigned char*>(std::malloc(size + kHeader));
  if (raw == nullptr) {
    b->out_of_memory = true;
    return nullptr;
  }
  std::memcpy(raw, &size, sizeof(size));
  b->used += size;
  ++b->outstanding_blocks;
  return raw + kHeader;
}

void budget_free(void* p) {
  if (p == nullptr) return;
  auto* raw = static_cast<unsigned char*>(p) - kHeader;
  size_t size;
  std::memcpy(&size, raw, sizeof(size));
  if (StbBudget* b = t_budget) {
    b->used -= size;
    --b->outstanding_blocks;
  }
  std::free(raw);
}

void* budget_realloc(void* p, size_t size) {
  if (p == nullptr) return budget_malloc(size);
  StbBudget* b = t_budget;
  auto* raw = static_cast<unsigned char*>(p) - kHeader;
  size_t old;
  std::memcpy(&old, raw, sizeof(old));
  if (b == nullptr || size > SIZE_MAX - kHeader ||
      (size > old && size - old > b->limit - b->used)) {
    if (b) b->refused = true;
    return nullptr;  // the old block stays valid and stb frees it on its error path
  }
  auto* grown = static_cast<unsigned char*>(std::realloc(raw, size + kHeader));
  if (grown == nullptr) {
    b->out_of_memory = true;
    return nullptr;
  }
  std::memcpy(grown, &size, sizeof(size));
  b->used = b->used - old + size;
  return grown + kHeader;
}

}  // namespace
}  // namespace flamingo

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_NO_GIF
#define STBI_MAX_DIMENSIONS 16384
#define STBI_ASSERT(x) ((void)0)
#define STBI_MALLOC(sz) ::flamingo::budget_malloc(sz)
#define STBI_REALLOC(p, sz) ::flamingo::budget_realloc(p, sz)
#define STBI_FREE(p) ::flamingo::budget_free(p)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace flamingo {
namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void write_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

struct Crc32Table {
  uint32_t entries[256];
  Crc32Table() {
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      entries[n] = c;
    }
  }
};

uint32_t crc32(const uint8_t* data, size_t size) {
  static const Crc32Table table;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table.entries[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

struct PngLayout {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  bool has_trns = false;
  size_t plte_chunk = 0;  // offset of the PLTE chunk's length field, 0 if none
  uint32_t plte_entries = 0;
  bool has_empty_idat = false;
};

bool is_chunk_letter(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

std::string chunk_name(const uint8_t* type) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = type[i];
    if (is_chunk_letter(c)) {
      s += static_cast<char>(c);
    } else {
      s += str_cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    }
  }
  return s;
}

bool valid_depth(int color_type, int depth) {
  switch (color_type) {
    case 0:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

// Walks every chunk from the signature to IEND, checking each against the real buffer before
// stb sees any of it.
PngLayout walk_png(const uint8_t* bytes, size_t size, const std::string& name,
                   const ImageLimits& limits) {
  PngLayout png;
  size_t pos = 8;
  bool seen_ihdr = false, seen_idat = false, seen_iend = false;
  uint64_t idat_total = 0;
  while (!seen_iend) {
    if (size - pos < 12)
      fail(ErrorCode::kCorruptFile, name, ": truncated PNG: ", size - pos, " bytes left at offset ",
           pos, " where a chunk (12+ bytes) or IEND was expected");
    const uint32_t length = read_be32(bytes + pos);
    const uint8_t* type = bytes + pos + 4;
    const std::string tname = chunk_name(type);
    if (!is_chunk_letter(type[0]) || !is_chunk_letter(type[1]) || !is_chunk_letter(type[2]) ||
        !is_chunk_letter(type[3]))
      fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: invalid chunk type '", tname,
           "' at offset ", pos);
    if (length > 0x7FFFFFFFu || length > size - pos - 12)
      fail(ErrorCode::kCorruptFile, name, ": corrupt or truncated PNG: chunk '", tname,
           "' at offset ", pos, " declares ", length, " data bytes but only ", size - pos - 12,
           " remain");
    const uint8_t* data = bytes + pos + 8;
    if (limits.check_png_crc && crc32(type, length + 4) != read_be32(data + length))
      fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: CRC mismatch in chunk '", tname,
           "' at offset ", pos);
    if (!seen_ihdr && tname != "IHDR")
      fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: first chunk is '", tname,
           "', expected IHDR");
    if (tname == "IHDR") {
      if (seen_ihdr) fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: second IHDR chunk");
      if (length != 13)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: IHDR has ", length,
             " bytes, expected 13");
      seen_ihdr = true;
      png.width = read_be32(data);
      png.height = read_be32(data + 4);
      png.bit_depth = data[8];
      png.color_type = data[9];
      png.interlace = data[12];
      if (png.width > 0x7FFFFFFFu || png.height > 0x7FFFFFFFu)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: IHDR size ", png.width, "x", png.height,
             " exceeds 2^31-1");
      check_image_dimensions(png.width, png.height, name, limits);
      if (!valid_depth(png.color_type, png.bit_depth))
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: colour type ", png.color_type,
             " with bit depth ", png.bit_depth, " is not a valid combination");
      if (data[10] != 0 || data[11] != 0 || png.interlace > 1)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: unknown compression (", int{data[10]},
             "), filter (", int{data[11]}, ") or interlace (", png.interlace, ") method");
    } else if (tname == "PLTE") {
      if (seen_idat) fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: PLTE after IDAT");
      if (png.plte_chunk != 0) fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: second PLTE");
      if (png.color_type == 0 || png.color_type == 4)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: PLTE in a greyscale image");
      if (length == 0 || length % 3 != 0 || length > 768)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: PLTE has ", length,
             " bytes (must be 3..768 and a multiple of 3)");
      png.plte_chunk = pos;
      png.plte_entries = length / 3;
    } else if (tname == "tRNS") {
      if (seen_idat) fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: tRNS after IDAT");
      const bool ok = png.color_type == 3   ? png.plte_chunk != 0 && length <= png.plte_entries
                      : png.color_type == 0 ? length == 2
                      : png.color_type == 2 ? length == 6
                                            : false;
      if (!ok)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: tRNS of ", length,
             " bytes does not fit colour type ", png.color_type);
      png.has_trns = true;
    } else if (tname == "IDAT") {
      if (png.color_type == 3 && png.plte_chunk == 0)
        fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: palette image without PLTE");
      seen_idat = true;
      idat_total += length;
      if (length == 0) png.has_empty_idat = true;
    } else if (tname == "IEND") {
      seen_iend = true;
    } else if (tname == "CgBI") {
      fail(ErrorCode::kUnsupported, name,
           ": Apple CgBI ('iPhone-optimised') PNGs are not supported");
    } else if (type[0] >= 'A' && type[0] <= 'Z') {
      fail(ErrorCode::kUnsupported, name, ": PNG has an unknown critical chunk '", tname, "'");
    }
    pos += 12 + static_cast<size_t>(length);
  }
  if (!seen_idat) fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: no IDAT chunk");
  // Each chunk lies inside the buffer, so this holds by construction; it is the invariant
  // that keeps stb from sizing a buffer by an untrusted length.
  FLAMINGO_CHECK(idat_total <= size);
  return png;
}

// Debian's stb reads palette entries past the PLTE's length from an uninitialised stack
// array, so an out-of-range index would give nondeterministic pixels. A short palette is
// therefore extended with opaque black entries to 2^depth before stb sees the image.
std::vector<uint8_t> with_full_palette(const uint8_t* bytes, size_t size, const PngLayout& png) {
  const uint32_t entries = 1u << png.bit_depth;
  const size_t old_length = png.plte_entries * 3;
  const size_t new_length = entries * 3;
  std::vector<uint8_t> out;
  out.reserve(size + new_length - old_length);
  out.insert(out.end(), bytes, bytes + png.plte_chunk);
  const size_t chunk_start = out.size();
  out.resize(chunk_start + 8 + new_length + 4, 0);
  uint8_t* chunk = out.data() + chunk_start;
  write_be32(chunk, static_cast<uint32_t>(new_length));
  std::memcpy(chunk + 4, "PLTE", 4);
  std::memcpy(chunk + 8, bytes + png.plte_chunk + 8, old_length);
  write_be32(chunk + 8 + new_length, crc32(chunk + 4, new_length + 4));
  const size_t rest = png.plte_chunk + 12 + old_length;
  out.insert(out.end(), bytes + rest, bytes + size);
  return out;
}

// Debian's stb copies a zero-length IDAT that comes first with memcpy from a null buffer (UB
// that UBSan reports; found by image_fuzzer). Such chunks carry no data and are legal, so they
// are dropped before stb sees the file. Chunks were validated by walk_png; whatever follows IEND
// is kept as it is.
std::vector<uint8_t> without_empty_idats(const uint8_t* bytes, size_t size) {
  std::vector<uint8_t> out(bytes, bytes + 8);
  out.reserve(size);
  size_t pos = 8;
  while (pos + 12 <= size) {
    const uint32_t length = read_be32(bytes + pos);
    const size_t end = pos + 12 + length;
    const bool iend = std::memcmp(bytes + pos + 4, "IEND", 4) == 0;
    if (length != 0 || std::memcmp(bytes + pos + 4, "IDAT", 4) != 0)
      out.insert(out.end(), bytes + pos, bytes + end);
    pos = end;
    if (iend) break;
  }
  out.insert(out.end(), bytes + pos, bytes + size);
  return out;
}

struct BudgetScope {
  StbBudget budget;
  explicit BudgetScope(uint64_t limit) {
    budget.limit = limit;
    t_budget = &budget;
  }
  ~BudgetScope() { t_budget = nullptr; }
};

}  // namespace

DecodedImage decode_png(const uint8_t* bytes, size_t size, const std::string& name,
                        const ImageLimits& limits) {
  const PngLayout png = walk_png(bytes, size, name, limits);
  if (png.width > STBI_MAX_DIMENSIONS || png.height > STBI_MAX_DIMENSIONS)
    fail(ErrorCode::kResourceLimit, name, ": PNG is ", png.width, "x", png.height,
         "; PNG sides above ", STBI_MAX_DIMENSIONS, " pixels are not supported");
  std::vector<uint8_t> patched;
  if (png.color_type == 3 && png.plte_entries < (1u << png.bit_depth)) {
    patched = with_full_palette(bytes, size, png);
    bytes = patched.data();
    size = patched.size();
  }
  if (png.has_empty_idat) {
    patched = without_empty_idats(bytes, size);
    bytes = patched.data();
    size = patched.size();
  }
  if (size > static_cast<size_t>(INT32_MAX))
    fail(ErrorCode::kResourceLimit, name, ": PNG of ", size, " bytes is too large to decode");

  const bool alpha = png.color_type == 4 || png.color_type == 6 || png.has_trns;
  const int channels = alpha ? 4 : 3;
  const uint64_t pixels = uint64_t{png.width} * png.height;

  DecodedImage image;
  {
    BudgetScope scope(decode_budget_bytes(pixels, limits));
    int w = 0, h = 0, file_channels = 0;
    stbi_uc* data =
        stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &file_channels, channels);
    if (data == nullptr) {
      const char* reason = stbi_failure_reason();
      if (scope.budget.out_of_memory)
        fail(ErrorCode::kOutOfMemory, name, ": out of memory while decoding the PNG (",
             scope.budget.used, " bytes in use)");
      if (scope.budget.refused)
        fail(ErrorCode::kResourceLimit, name, ": decoding the PNG needs more than its budget of ",
             scope.budget.limit, " bytes (decompression bomb?)");
      fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: ", reason ? reason : "decoder failed");
    }
    struct Freer {
      stbi_uc* p;
      ~Freer() { stbi_image_free(p); }
    } freer{data};
    if (static_cast<uint32_t>(w) != png.width || static_cast<uint32_t>(h) != png.height)
      fail(ErrorCode::kCorruptFile, name, ": corrupt PNG: decoder returned ", w, "x", h,
           " for an image declared as ", png.width, "x", png.height);
    image.width = w;
    image.height = h;
    image.channels = channels;
    image.pixels.assign(data, data + pixels * channels);
  }
  return image;
}

}  // namespace flamingo
