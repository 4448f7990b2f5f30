// Byte-level builders for crafted PNG and JPEG inputs used by the image tests: chunks with
// correct CRCs, zlib streams (stored blocks, or a fixed-Huffman run of zeros for inflation
// bombs), and helpers to find JPEG marker segments.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace flamingo::image_test {

using Bytes = std::string;

inline uint32_t crc32_of(const Bytes& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

inline Bytes be32(uint32_t v) {
  return Bytes{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
}

inline Bytes png_chunk(const Bytes& type, const Bytes& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(crc32_of(type + data));
}

inline Bytes png_signature() { return Bytes("\x89PNG\r\n\x1a\n", 8); }

inline Bytes ihdr(uint32_t w, uint32_t h, int depth, int color_type, int interlace = 0) {
  return png_chunk("IHDR", be32(w) + be32(h) +
                               Bytes{static_cast<char>(depth), static_cast<char>(color_type), 0, 0,
                                     static_cast<char>(interlace)});
}

inline uint32_t adler32(const Bytes& data) {
  uint32_t a = 1, b = 0;
  for (unsigned char c : data) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

// A zlib stream of stored (uncompressed) deflate blocks.
inline Bytes zlib_stored(const Bytes& raw) {
  Bytes out("\x78\x01", 2);
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    out += static_cast<char>(last ? 1 : 0);
    out += static_cast<char>(n & 0xFF);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(~n & 0xFF);
    out += static_cast<char>((~n >> 8) & 0xFF);
    out += raw.substr(pos, n);
    pos += n;
  } while (pos < raw.size());
  return out + be32(adler32(raw));
}

// A zlib stream that inflates to `zeros` zero bytes (a multiple of 258 plus one literal) in
// about 13 bits per 258 bytes: one fixed-Huffman block of "literal 0" then copies of length
// 258 at distance 1.
inline Bytes zlib_zero_bomb(uint64_t zeros) {
  Bytes out("\x78\x01", 2);
  uint32_t acc = 0;
  int bits = 0;
  auto put = [&](uint32_t value, int n) {  // LSB-first bit packing
    acc |= value << bits;
    bits += n;
    while (bits >= 8) {
      out += static_cast<char>(acc & 0xFF);
      acc >>= 8;
      bits -= 8;
    }
  };
  auto put_code = [&](uint32_t code, int n) {  // Huffman codes go MSB first
    for (int i = n - 1; i >= 0; --i) put((code >> i) & 1, 1);
  };
  put(1, 1);          // BFINAL
  put(1, 2);          // fixed Huffman
  put_code(0x30, 8);  // literal 0
  for (uint64_t done = 1; done + 258 <= zeros; done += 258) {
    put_code(0xC5, 8);  // length symbol 285 = 258
    put_code(0, 5);     // distance code 0 = 1
  }
  put_code(0, 7);  // end of block
  if (bits > 0) put(0, 8 - bits);
  return out + be32(1);  // adler32 is not checked by stb; the value is irrelevant
}

// A complete PNG with the given raw (already filtered) scanline bytes.
inline Bytes make_png(uint32_t w, uint32_t h, int depth, int color_type, const Bytes& raw,
                      const Bytes& extra_chunks = "") {
  return png_signature() + ihdr(w, h, depth, color_type) + extra_chunks +
         png_chunk("IDAT", zlib_stored(raw)) + png_chunk("IEND", "");
}

// Offset of the first JPEG marker 0xFF `marker` outside entropy-coded data, or npos.
inline size_t find_jpeg_segment(const Bytes& jpg, unsigned char marker) {
  size_t pos = 2;
  while (pos + 4 <= jpg.size() && static_cast<unsigned char>(jpg[pos]) == 0xFF) {
    const unsigned char m = static_cast<unsigned char>(jpg[pos + 1]);
    if (m == marker) return pos;
    if (m == 0xDA) break;
    const size_t len =
        (static_cast<unsigned char>(jpg[pos + 2]) << 8) | static_cast<unsigned char>(jpg[pos + 3]);
    pos += 2 + len;
  }
  return Bytes::npos;
}

}  // namespace flamingo::image_test
