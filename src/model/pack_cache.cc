#include "model/pack_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "flamingo/error.h"
#include "io/json_strict.h"
#include "io/json_tree.h"
#include "io/mapped_file.h"
#include "util/check.h"

namespace flamingo::model {
namespace {

constexpr char kMagic[8] = {'F', 'L', 'M', 'P', 'A', 'C', 'K', '1'};
constexpr uint64_t kAlign = 4096;
constexpr int kFormat = 1;

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

kernels::WeightType type_from_name(const std::string& s) {
  for (kernels::WeightType t :
       {kernels::WeightType::kF32, kernels::WeightType::kF16, kernels::WeightType::kBF16,
        kernels::WeightType::kQ8_0, kernels::WeightType::kQ4_0})
    if (s == kernels::weight_type_name(t)) return t;
  fail(ErrorCode::kCorruptFile, "unknown weight type \"", io::printable(s), "\"");
}

nlohmann::json params_json(const kernels::Conv2dParams& p) {
  return {p.in_h, p.in_w, p.in_c, p.out_c, p.kernel, p.stride, p.groups};
}

bool same_params(const kernels::Conv2dParams& a, const kernels::Conv2dParams& b) {
  return a.in_h == b.in_h && a.in_w == b.in_w && a.in_c == b.in_c && a.out_c == b.out_c &&
         a.kernel == b.kernel && a.stride == b.stride && a.groups == b.groups;
}

// Writes all of [p, p+n) at offset off, or throws.
void write_at(int fd, const void* p, size_t n, uint64_t off, const std::string& path) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, b, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(ErrorCode::kIo, path, ": write failed: ", std::strerror(errno));
    b += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

PackCache::PackCache(std::filesystem::path dir, uint64_t key)
    : dir_(std::move(dir)), file_(dir_ / (hex(key) + ".fpack")), key_(key) {
  open_existing();
}

PackCache::~PackCache() = default;

void PackCache::open_existing() {
  std::error_code ec;
  if (!std::filesystem::exists(file_, ec)) {
    status_ = "no cache file yet";
    return;
  }
  try {
    auto f =
        std::make_shared<io::MappedFile>(io::MappedFile::open(file_, io::MapMode::kMmapPopulate));
    const uint8_t* base = f->data();
    const uint64_t size = f->size();
    if (size < 16 || std::memcmp(base + size - 8, kMagic, 8) != 0)
      fail(ErrorCode::kCorruptFile, "no FLMPACK1 trailer");
    uint64_t index_len = 0;
    std::memcpy(&index_len, base + size - 16, 8);
    if (index_len > size - 16) fail(ErrorCode::kCorruptFile, "index length ", index_len);
    const uint64_t index_at = size - 16 - index_len;
    const io::JsonTree tree = io::parse_json_strict(
        std::string_view(reinterpret_cast<const char*>(base + index_at), index_len), file_.string(),
        ErrorCode::kCorruptFile, 8);
    const nlohmann::json& j = tree.get();
    if (!j.is_object() || j.value("format", 0) != kFormat || j.value("key", "") != hex(key_))
      fail(ErrorCode::kCorruptFile, "another format or key");
    for (const auto& [name, e] : j.at("entries").items()) {
      Entry entry;
      entry.type = type_from_name(e.at("type").get<std::string>());
      entry.conv = e.contains("conv");
      if (entry.conv) {
        const auto v = e.at("conv").get<std::vector<int64_t>>();
        if (v.size() != 7) fail(ErrorCode::kCorruptFile, name, ": conv params");
        entry.params = {v[0],
                        v[1],
                        v[2],
                        v[3],
                        static_cast<int>(v[4]),
                        static_cast<int>(v[5]),
                        static_cast<int>(v[6])};
      }
      for (const auto& p : e.at("parts")) {
        const auto v = p.get<std::vector<uint64_t>>();
        if (v.size() != 4) fail(ErrorCode::kCorruptFile, name, ": part");
        Part part{static_cast<int64_t>(v[0]), static_cast<int64_t>(v[1]), v[2], v[3]};
        // Inside the data section, and aligned as the kernels need.
        if (part.offset % kAlign != 0 || part.offset > index_at ||
            part.bytes > index_at - part.offset)
          fail(ErrorCode::kCorruptFile, name, ": part at ", part.offset, " of ", part.bytes,
               " bytes lies outside the data");
        entry.parts.push_back(part);
      }
      found_.emplace(name, std::move(entry));
    }
    mapped_ = std::move(f);
    status_ = "hit";
  } catch (const std::exception& e) {
    found_.clear();
    unreadable_ = std::string("the file was unreadable: ") + e.what();
    status_ = "ignored (" + unreadable_ + ")";
  }
}

// Throws flamingo::Error when the part does not fit its shape (the caller packs afresh).
kernels::PackedMatrix PackCache::adopt(const Entry& e, const Part& part) const {
  return kernels::adopt_packed_matrix(e.type, part.n, part.k, mapped_->data() + part.offset,
                                      part.bytes, mapped_);
}

kernels::PackedMatrix PackCache::find(const std::string& name, kernels::WeightType type, int64_t n,
                                      int64_t k) {
  const auto it = found_.find(name);
  if (it != found_.end()) {
    const Entry& e = it->second;
    if (!e.conv && e.type == type && e.parts.size() == 1 && e.parts[0].n == n &&
        e.parts[0].k == k) {
      try {
        kernels::PackedMatrix m = adopt(e, e.parts[0]);
        ++hits_;
        return m;
      } catch (const Error&) {  // a miss: packed afresh
      }
    }
  }
  ++misses_;
  return {};
}

kernels::PackedConv2d PackCache::find_conv(const std::string& name, const kernels::Conv2dParams& p,
                                           kernels::WeightType type) {
  const auto it = found_.find(name);
  if (it != found_.end()) {
    const Entry& e = it->second;
    if (e.conv && e.type == type && same_params(e.params, p)) {
      try {
        std::vector<kernels::PackedMatrix> groups;
        for (const Part& part : e.parts) groups.push_back(adopt(e, part));
        kernels::PackedConv2d c = kernels::adopt_packed_conv2d(p, std::move(groups));
        ++hits_;
        return c;
      } catch (const Error&) {  // a miss: packed afresh
      }
    }
  }
  ++misses_;
  return {};
}

void PackCache::record(const std::string& name, const kernels::PackedMatrix& m) {
  Entry e;
  e.type = m.type();
  e.parts.push_back({m.n(), m.k(), 0, m.bytes(), m.packed_data()});
  recorded_.emplace_back(name, std::move(e));
}

void PackCache::record_conv(const std::string& name, const kernels::PackedConv2d& c) {
  Entry e;
  e.conv = true;
  e.params = c.params();
  e.type = c.group(0).type();
  for (int64_t g = 0; g < c.num_groups(); ++g) {
    const kernels::PackedMatrix& m = c.group(g);
    e.parts.push_back({m.n(), m.k(), 0, m.bytes(), m.packed_data()});
  }
  recorded_.emplace_back(name, std::move(e));
}

void PackCache::commit() {
  if (recorded_.empty() || (mapped_ && misses_ == 0)) return;
  // A file that lacked matrices, or could not be read, is replaced by one with this load's.
  std::string why = unreadable_;
  if (mapped_)
    why = "the file lacked " + std::to_string(misses_) + " of " + std::to_string(hits_ + misses_) +
          " matrices";
  try {
    write_file();
    status_ = why.empty() ? "written" : "rewritten (" + why + ")";
  } catch (const std::exception& e) {
    status_ = std::string("not written (") + e.what() + ")" + (why.empty() ? "" : "; " + why);
  }
}

void PackCache::write_file() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) fail(ErrorCode::kIo, dir_.string(), ": cannot create the directory: ", ec.message());
  std::string tmp = (dir_ / ("." + hex(key_) + ".fpack.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) fail(ErrorCode::kIo, tmp, ": cannot create: ", std::strerror(errno));
  try {
    // Built in place under one JsonTree, with no temporary arrays or objects: a tree that is
    // destroyed with members in it allocates (io/json_tree.h).
    io::JsonTree tree(nlohmann::json::object());
    nlohmann::json& root = tree.get();
    root["format"] = kFormat;
    root["key"] = hex(key_);
    nlohmann::json& entries = root["entries"] = nlohmann::json::object();
    uint64_t off = 0;
    for (auto& [name, e] : recorded_) {
      nlohmann::json& entry = entries[name] = nlohmann::json::object();
      entry["type"] = kernels::weight_type_name(e.type);
      nlohmann::json& parts = entry["parts"] = nlohmann::json::array();
      for (Part& part : e.parts) {
        part.offset = off;
        write_at(fd, part.data, part.bytes, off, tmp);
        nlohmann::json& fields = parts.emplace_back(nlohmann::json::array());
        fields.push_back(part.n);
        fields.push_back(part.k);
        fields.push_back(part.offset);
        fields.push_back(part.bytes);
        off = (off + part.bytes + kAlign - 1) / kAlign * kAlign;
      }
      if (e.conv) entry["conv"] = params_json(e.params);
    }
    const std::string index = root.dump();
    write_at(fd, index.data(), index.size(), off, tmp);
    const uint64_t len = index.size();
    write_at(fd, &len, 8, off + len, tmp);
    write_at(fd, kMagic, 8, off + len + 8, tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorCode::kIo, tmp, ": close failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), file_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorCode::kIo, file_.string(), ": cannot rename into place: ", std::strerror(err));
  }
}

}  // namespace flamingo::model
