// UTF-8 validation with the exact rules sentencepiece 0.1.97 applies (util.cc DecodeUTF8):
// well-formed Unicode scalar values only, so no overlong forms, no surrogates, nothing
// above U+10FFFF. The tokenizer uses it to reject bad prompts and the streaming decoder to
// reproduce sentencepiece's byte-fallback decoding, so both must agree with the library.
#pragma once

#include <cstddef>
#include <string_view>

namespace flamingo::text {

// Length a sequence starting with lead byte `b` must have: 1 for ASCII, 2..4 for a lead byte
// of the right form, 0 for a byte that cannot start a character (continuation, F8..FF).
size_t utf8_sequence_length(unsigned char b);

// Whether `s` (exactly utf8_sequence_length(s[0]) bytes) encodes one valid character.
bool utf8_sequence_valid(std::string_view s);

// Byte offset of the first invalid sequence in `s`, or std::string_view::npos if valid.
size_t find_invalid_utf8(std::string_view s);

// U+FFFD, what sentencepiece emits for each byte it cannot decode.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace flamingo::text
