#include "io/json_strict.h"

#include <set>
#include <vector>

#include "util/check.h"

namespace flamingo::io {

namespace {

using json = nlohmann::json;

// e.what() is "[json.exception.parse_error.101] parse error at line 1, column 7: ...";
// nlohmann quotes the offending bytes, which may be invalid UTF-8 or control characters.
std::string parse_error_text(const nlohmann::detail::exception& e) {
  std::string what = e.what();
  const size_t close = what.find("] ");
  if (close != std::string::npos) what = what.substr(close + 2);
  std::string clean;
  for (char ch : what) {
    const auto u = static_cast<unsigned char>(ch);
    clean += (u < 0x20 || u >= 0x7f) ? '?' : ch;
  }
  return clean;
}

// A first pass over the text that keeps no values: syntax, depth and duplicate keys. The DOM
// is then built by a plain parse. (A parser callback would do both at once, but nlohmann's
// callback parser rescans an object's members each time one of them ends, quadratic in the
// members: 20 ms on the 2 400-tensor header of a Flamingo-3B model.)
class StrictChecker final : public nlohmann::json_sax<json> {
 public:
  StrictChecker(const std::string& source, ErrorCode code, int max_depth)
      : source_(source), code_(code), max_depth_(max_depth) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    last_key_ = k;
    if (!stack_.empty() && !stack_.back().keys.insert(k).second)
      fail(code_, source_, ": duplicate key ", quote_name(k), " in ", path());
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail(code_, source_, ": invalid JSON: ", parse_error_text(e));
  }

 private:
  struct Level {
    bool is_object;
    std::string key;  // the key this container sits under, for messages
    std::set<std::string> keys;
  };

  bool open(bool is_object) {
    if (static_cast<int>(stack_.size()) >= max_depth_)
      fail(code_, source_, ": JSON nested deeper than ", max_depth_, " levels");
    stack_.push_back({is_object,
                      (!stack_.empty() && stack_.back().is_object) ? last_key_ : std::string("[]"),
                      {}});
    return true;
  }
  bool close() {
    if (!stack_.empty()) stack_.pop_back();
    return true;
  }
  std::string path() const {
    std::string p;
    for (size_t i = 1; i < stack_.size(); ++i) {
      if (!p.empty()) p += '.';
      p += stack_[i].key;
    }
    return p.empty() ? std::string("top level") : p;
  }

  const std::string& source_;
  ErrorCode code_;
  int max_depth_;
  std::vector<Level> stack_;
  std::string last_key_;
};

}  // namespace

JsonTree parse_json_strict(std::string_view text, const std::string& source, ErrorCode code,
                           int max_depth) {
  StrictChecker checker(source, code, max_depth);
  json::sax_parse(text.begin(), text.end(), &checker, nlohmann::detail::input_format_t::json,
                  /*strict=*/true, /*ignore_comments=*/false);
  // json::parse would build its result in a local of its own, destroyed (allocating) if an
  // allocation fails on the way; here every value goes into `tree` as it is read.
  JsonTree tree;
  nlohmann::detail::json_sax_dom_parser<json> builder(tree.get(), /*allow_exceptions_=*/true);
  try {
    json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                    /*strict=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    // The checker has seen the same text parse; nothing should get here.
    fail(code, source, ": invalid JSON: ", parse_error_text(e));
  }
  return tree;
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
