#include "text/utf8.h"

#include <cstdint>

namespace flamingo::text {

size_t utf8_sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 0;
}

bool utf8_sequence_valid(std::string_view s) {
  if (s.empty()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = utf8_sequence_length(p[0]);
  if (n == 0 || n != s.size()) return false;
  if (n == 1) return true;
  uint32_t cp = p[0] & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n]) return false;                 // overlong
  if (cp >= 0xD800 && cp < 0xE000) return false;  // surrogate
  return cp <= 0x10FFFF;
}

size_t find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(b);
    if (n == 0 || n > s.size() - i || !utf8_sequence_valid(s.substr(i, n))) return i;
    i += n;
  }
  return std::string_view::npos;
}

}  // namespace flamingo::text
