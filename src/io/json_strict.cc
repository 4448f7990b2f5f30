#include "io/json_strict.h"

#include <set>
#include <vector>

#include "util/check.h"

namespace flamingo::io {

nlohmann::json parse_json_strict(std::string_view text, const std::string& source, ErrorCode code,
                                 int max_depth) {
  using json = nlohmann::json;
  struct Level {
    bool is_object;
    std::string key;  // the key this container sits under, for messages
    std::set<std::string> keys;
  };
  std::vector<Level> stack;
  std::string last_key;
  auto path = [&stack]() {
    std::string p;
    for (size_t i = 1; i < stack.size(); ++i) {
      if (!p.empty()) p += '.';
      p += stack[i].key;
    }
    return p.empty() ? std::string("top level") : p;
  };
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (static_cast<int>(stack.size()) >= max_depth)
          fail(code, source, ": JSON nested deeper than ", max_depth, " levels");
        stack.push_back({event == json::parse_event_t::object_start,
                         (!stack.empty() && stack.back().is_object) ? last_key : std::string("[]"),
                         {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        last_key = parsed.get<std::string>();
        if (!stack.empty() && !stack.back().keys.insert(last_key).second)
          fail(code, source, ": duplicate key ", quote_name(last_key), " in ", path());
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 7: ...".
    std::string what = e.what();
    const size_t close = what.find("] ");
    if (close != std::string::npos) what = what.substr(close + 2);
    // nlohmann quotes the offending bytes, which may be invalid UTF-8 or control characters.
    std::string clean;
    for (char ch : what) {
      const auto u = static_cast<unsigned char>(ch);
      clean += (u < 0x20 || u >= 0x7f) ? '?' : ch;
    }
    fail(code, source, ": invalid JSON: ", clean);
  }
}

std::string quote_name(std::string_view s) { return str_cat('"', printable(s), '"'); }

std::string printable(std::string_view s) {
  constexpr size_t kMax = 200;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

const char* json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a non-integer number";
    case nlohmann::json::value_t::binary:
      return "binary data";
    case nlohmann::json::value_t::discarded:
      return "a discarded value";
  }
  return "an unknown JSON value";
}

}  // namespace flamingo::io
