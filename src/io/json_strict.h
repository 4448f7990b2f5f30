// A JSON parse for untrusted text that rejects what nlohmann::json lets through silently.
//
// nlohmann::json keeps the last of two equal keys; a second parser reading the same bytes may
// keep the first (the safetensors audit's TOB-SFTN-7 parser differential). Nesting depth is
// capped so that a header of 10^8 '[' cannot build a 10^8-deep tree.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "flamingo/error.h"
#include "io/json_tree.h"

namespace flamingo::io {

// Throws Error(code, "<source>: ...") on a syntax error, a duplicate key in any object (naming
// the key and its parent path), or nesting deeper than max_depth. The tree is built straight
// into a JsonTree, so that running out of memory halfway through is std::bad_alloc, not
// std::terminate.
JsonTree parse_json_strict(std::string_view text, const std::string& source, ErrorCode code,
                           int max_depth);

// `s` in double quotes for an error message: control bytes and bytes ≥ 0x7f become \xNN (so a
// hostile name cannot inject terminal escapes or invalid UTF-8 into logs), and anything past
// 200 bytes is cut with "...".
std::string quote_name(std::string_view s);
std::string printable(std::string_view s);  // the same without the quotes

// "an integer", "a string", ... for messages such as "expected an array, got a string".
const char* json_kind(const nlohmann::json& j);

}  // namespace flamingo::io
