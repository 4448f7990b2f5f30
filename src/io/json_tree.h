// A parsed or built nlohmann::json tree that is destroyed without allocating.
//
// nlohmann::json's destructor moves the children of a non-empty array or object into a
// std::vector before freeing them (so that a deep tree does not recurse), inside a noexcept
// function: when that allocation fails, the process ends in std::terminate. Out of memory
// while a model loads must come out as Error(kOutOfMemory) instead, and every local tree is
// destroyed on that path. Emptying the containers bottom-up first leaves the destructor only
// leaves and empty containers, which it frees without allocating.
#pragma once

#include <nlohmann/json.hpp>
#include <utility>

namespace flamingo::io {

// Empties every array and object in j, deepest first, without allocating. Recurses once per
// level: for trees from parse_json_strict, whose depth is capped.
template <typename Json>
void dismantle(Json& j) noexcept {
  if (j.is_array()) {
    auto& items = *j.template get_ptr<typename Json::array_t*>();
    for (Json& item : items) dismantle(item);
    items.clear();
  } else if (j.is_object()) {
    auto& members = *j.template get_ptr<typename Json::object_t*>();
    for (auto& member : members) dismantle(member.second);
    members.clear();
  }
}

// Owns a tree and dismantles it when destroyed. Moving leaves the source null.
class JsonTree {
 public:
  JsonTree() = default;
  explicit JsonTree(nlohmann::json value) noexcept : value_(std::move(value)) {}
  JsonTree(JsonTree&& other) noexcept = default;
  JsonTree(const JsonTree&) = delete;
  JsonTree& operator=(const JsonTree&) = delete;
  JsonTree& operator=(JsonTree&&) = delete;
  ~JsonTree() { dismantle(value_); }

  nlohmann::json& get() { return value_; }
  const nlohmann::json& get() const { return value_; }

 private:
  nlohmann::json value_;
};

}  // namespace flamingo::io
