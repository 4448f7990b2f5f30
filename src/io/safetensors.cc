#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <system_error>

#include "io/json_strict.h"
#include "io/json_tree.h"
#include "util/check.h"

namespace flamingo::io {
namespace {

using json = nlohmann::json;

// Entries sit at depth 3 (root, entry, shape); anything deeper is hostile.
constexpr int kMaxJsonDepth = 8;

struct DTypeInfo {
  const char* name;
  DType type;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {"F64", DType::kF64, 8},   {"F32", DType::kF32, 4}, {"F16", DType::kF16, 2},
    {"BF16", DType::kBF16, 2}, {"I64", DType::kI64, 8}, {"I32", DType::kI32, 4},
    {"I16", DType::kI16, 2},   {"I8", DType::kI8, 1},   {"U64", DType::kU64, 8},
    {"U32", DType::kU32, 4},   {"U16", DType::kU16, 2}, {"U8", DType::kU8, 1},
    {"BOOL", DType::kBool, 1},
};

// Defined by safetensors, but nothing in this engine computes with them.
constexpr const char* kUnsupportedDTypes[] = {"F8_E5M2",     "F8_E4M3",     "F8_E8M0",
                                              "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3",
                                              "F6_E3M2",     "F4",          "C64"};

bool read_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {  // "-0" parses as a signed zero
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}

size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

DType parse_dtype(std::string_view name, const std::string& where) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  for (const char* u : kUnsupportedDTypes)
    if (name == u) fail(ErrorCode::kUnsupported, where, ": dtype ", name, " is not supported");
  fail(ErrorCode::kCorruptFile, where, ": unknown dtype ", quote_name(name));
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path, MapMode mode) {
  return parse(MappedFile::open(path, mode));
}

SafetensorsFile SafetensorsFile::from_memory(std::string_view bytes, std::string source_name) {
  return parse(MappedFile::copy_of(bytes.data(), bytes.size(), std::move(source_name)));
}

SafetensorsFile SafetensorsFile::parse(MappedFile file) {
  SafetensorsFile st;
  st.file_ = std::move(file);
  const std::string& src = st.file_.name();
  const uint8_t* bytes = st.file_.data();
  const uint64_t size = st.file_.size();

  if (size < 8)
    fail(ErrorCode::kCorruptFile, src, ": file is ", size,
         " bytes, too short for the 8-byte header length");
  const uint64_t n = load_le64(bytes);
  if (n > kMaxHeaderBytes)
    fail(ErrorCode::kCorruptFile, src, ": header length ", n, " exceeds the limit of ",
         kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(ErrorCode::kCorruptFile, src, ": header length ", n, " runs past the end of the file (",
         size - 8, " bytes follow the length field)");
  st.header_bytes_ = n;
  std::string_view header(reinterpret_cast<const char*>(bytes + 8), n);
  if (header.empty() || header.front() != '{')
    fail(ErrorCode::kCorruptFile, src, ": header does not start with '{'");
  // The format allows padding with spaces only; anything else after the object (a newline, a
  // second document) would be ignored by some parsers and read by others.
  const size_t last = header.find_last_not_of(' ');
  if (header[last] != '}')
    fail(ErrorCode::kCorruptFile, src,
         ": header has bytes other than space padding after its closing '}'");
  const JsonTree tree = parse_json_strict(header.substr(0, last + 1), src + ": header",
                                          ErrorCode::kCorruptFile, kMaxJsonDepth);
  const json& root = tree.get();
  if (!root.is_object())
    fail(ErrorCode::kCorruptFile, src, ": header is ", json_kind(root), ", not an object");
  if (root.size() > kMaxTensors + 1)
    fail(ErrorCode::kCorruptFile, src, ": header lists ", root.size(),
         " entries, more than the limit of ", kMaxTensors);

  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;
  const uint8_t* data = bytes + data_start;

  std::vector<TensorView> tensors;
  tensors.reserve(root.size());
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail(ErrorCode::kCorruptFile, src, ": __metadata__ is ", json_kind(entry),
             ", not an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          fail(ErrorCode::kCorruptFile, src, ": __metadata__ value ", quote_name(k), " is ",
               json_kind(v), ", not a string");
        st.metadata_.emplace(k, v.get<std::string>());
      }
      continue;
    }
    const std::string where = src + ": tensor " + quote_name(name);
    if (name.empty()) fail(ErrorCode::kCorruptFile, src, ": a tensor has an empty name");
    if (name.size() > kMaxNameBytes)
      fail(ErrorCode::kCorruptFile, src, ": a tensor name is ", name.size(),
           " bytes, longer than the limit of ", kMaxNameBytes);
    if (!entry.is_object())
      fail(ErrorCode::kCorruptFile, where, ": entry is ", json_kind(entry), ", not an object");
    for (const auto& [k, v] : entry.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        fail(ErrorCode::kCorruptFile, where, ": unexpected field ", quote_name(k));
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(k)) fail(ErrorCode::kCorruptFile, where, ": missing field \"", k, "\"");

    TensorView t;
    t.name = name;
    t.file = src;
    const json& dt = entry["dtype"];
    if (!dt.is_string())
      fail(ErrorCode::kCorruptFile, where, ": dtype is ", json_kind(dt), ", not a string");
    t.dtype = parse_dtype(dt.get<std::string>(), where);

    const json& shape = entry["shape"];
    if (!shape.is_array())
      fail(ErrorCode::kCorruptFile, where, ": shape is ", json_kind(shape), ", not an array");
    if (shape.size() > kMaxRank)
      fail(ErrorCode::kCorruptFile, where, ": shape has ", shape.size(),
           " dimensions, more than the limit of ", kMaxRank);
    int64_t numel = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      uint64_t d;
      if (!read_u64(shape[i], d))
        fail(ErrorCode::kCorruptFile, where, ": shape[", i, "] is ", shape[i].dump(),
             ", not a non-negative integer");
      if (d > static_cast<uint64_t>(INT64_MAX))
        fail(ErrorCode::kCorruptFile, where, ": shape[", i, "] = ", d, " is too large");
      t.shape.push_back(static_cast<int64_t>(d));
      if (__builtin_mul_overflow(numel, static_cast<int64_t>(d), &numel))
        fail(ErrorCode::kCorruptFile, where, ": shape ", shape.dump(),
             " has an element count that overflows 64 bits");
    }
    t.numel = numel;
    int64_t nbytes;
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(t.dtype)), &nbytes))
      fail(ErrorCode::kCorruptFile, where, ": shape ", shape.dump(), " of ", dt.get<std::string>(),
           " has a byte size that overflows 64 bits");

    const json& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      fail(ErrorCode::kCorruptFile, where, ": data_offsets is ", off.dump(),
           ", not an array of two integers");
    uint64_t begin, end;
    if (!read_u64(off[0], begin) || !read_u64(off[1], end))
      fail(ErrorCode::kCorruptFile, where, ": data_offsets ", off.dump(),
           " are not non-negative integers");
    if (begin > end)
      fail(ErrorCode::kCorruptFile, where, ": data_offsets ", off.dump(), " end before they begin");
    if (end > data_size)
      fail(ErrorCode::kCorruptFile, where, ": data_offsets ", off.dump(),
           " run past the end of the data section (", data_size, " bytes)");
    if (end - begin != static_cast<uint64_t>(nbytes))
      fail(ErrorCode::kCorruptFile, where, ": data_offsets ", off.dump(), " span ", end - begin,
           " bytes but ", dt.get<std::string>(), " ", shape.dump(), " needs ", nbytes);
    if (nbytes > 0 && (data_start + begin) % dtype_size(t.dtype) != 0)
      fail(ErrorCode::kCorruptFile, where, ": data at file offset ", data_start + begin,
           " is not aligned to its ", dtype_size(t.dtype), "-byte ", dt.get<std::string>(),
           " elements (pad the header with spaces to a multiple of 8)");
    t.offset = begin;
    t.nbytes = static_cast<size_t>(nbytes);
    t.data = data + begin;
    tensors.push_back(std::move(t));
  }

  // Tile check: the data section must be exactly the concatenation of the tensors. Holes would
  // let a file carry hidden content (polyglots); overlaps let a small file expand on copy.
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorView& a, const TensorView& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  uint64_t pos = 0;
  const TensorView* prev = nullptr;
  for (const TensorView& t : tensors) {
    if (t.offset < pos)
      fail(ErrorCode::kCorruptFile, src, ": tensor ", quote_name(t.name), " (bytes ", t.offset,
           "..", t.offset + t.nbytes, ") overlaps tensor ", quote_name(prev->name), " (bytes ",
           prev->offset, "..", pos, ")");
    if (t.offset > pos)
      fail(ErrorCode::kCorruptFile, src, ": ", t.offset - pos, " unused bytes before tensor ",
           quote_name(t.name), " (data section offsets ", pos, "..", t.offset, ")");
    pos = t.offset + t.nbytes;
    prev = &t;
  }
  if (pos != data_size)
    fail(ErrorCode::kCorruptFile, src, ": ", data_size - pos,
         " trailing bytes after the last tensor's data");

  st.tensors_ = std::move(tensors);
  for (size_t i = 0; i < st.tensors_.size(); ++i) st.index_.emplace(st.tensors_[i].name, i);
  return st;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

ModelWeights ModelWeights::open_directory(const std::filesystem::path& dir, MapMode mode) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (ec || !fs::exists(status)) fail(ErrorCode::kIo, dir.string(), ": no such directory");
  if (!fs::is_directory(status)) fail(ErrorCode::kIo, dir.string(), ": not a directory");
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() == ".safetensors") paths.push_back(p);
  }
  if (ec) fail(io_error_code(ec), dir.string(), ": cannot list directory: ", ec.message());
  if (paths.empty()) fail(ErrorCode::kIo, dir.string(), ": no *.safetensors file");
  std::sort(paths.begin(), paths.end());
  std::vector<SafetensorsFile> files;
  for (const auto& p : paths) files.push_back(SafetensorsFile::open(p, mode));
  ModelWeights w = from_files(std::move(files));
  w.source_ = dir.string();
  return w;
}

ModelWeights ModelWeights::from_files(std::vector<SafetensorsFile> files) {
  ModelWeights w;
  w.files_ = std::move(files);
  if (w.files_.size() == 1) w.source_ = w.files_[0].source();
  for (size_t f = 0; f < w.files_.size(); ++f) {
    const auto& tensors = w.files_[f].tensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto [it, inserted] = w.index_.emplace(tensors[i].name, std::make_pair(f, i));
      if (!inserted)
        fail(ErrorCode::kCorruptFile, "tensor ", quote_name(tensors[i].name), " is in both ",
             w.files_[it->second.first].source(), " and ", w.files_[f].source());
    }
  }
  return w;
}

const TensorView* ModelWeights::find(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  return &files_[it->second.first].tensors()[it->second.second];
}

const TensorView& ModelWeights::get(std::string_view name) const {
  const TensorView* t = find(name);
  if (t == nullptr)
    fail(ErrorCode::kModelMismatch, source_, ": tensor ", quote_name(name), " is missing");
  return *t;
}

std::vector<std::string> ModelWeights::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, loc] : index_) out.push_back(name);
  return out;
}

void ModelWeights::release(const TensorView& t) const {
  for (const auto& f : files_) {
    const uint8_t* base = f.bytes().data();
    if (t.data >= base && t.data <= base + f.bytes().size()) {
      f.bytes().release(t.data, t.nbytes);
      return;
    }
  }
  fail(ErrorCode::kInvalidArgument, "release(): tensor ", quote_name(t.name), " is not from ",
       source_);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // Inf / NaN keep their payload
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: shift the mantissa up until its leading 1 becomes the implicit bit.
    int e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float bfloat16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void read_f32_into(const TensorView& t, float* out, size_t out_len, bool check_finite) {
  const std::string where = t.file + ": tensor " + quote_name(t.name);
  if (static_cast<uint64_t>(t.numel) != out_len)
    fail(ErrorCode::kInvalidArgument, where, ": has ", t.numel, " elements, caller expects ",
         out_len);
  const uint8_t* p = t.data;
  const size_t n = out_len;
  switch (t.dtype) {
    case DType::kF32:
      if (n) std::memcpy(out, p, n * 4);
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bfloat16_to_float(h);
      }
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        // A finite double beyond float range would be UB to convert; make it Inf so the
        // finiteness check names it.
        out[i] = std::fabs(d) > 3.4028234663852886e38 && std::isfinite(d)
                     ? (d > 0 ? INFINITY : -INFINITY)
                     : static_cast<float>(d);
      }
      break;
    default:
      fail(ErrorCode::kModelMismatch, where, ": dtype ", dtype_name(t.dtype),
           " cannot be read as floating point (expected F32, F16, BF16 or F64)");
  }
  if (check_finite)
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(out[i]))
        fail(ErrorCode::kCorruptFile, where, ": element ", i, " is ", out[i]);
}

std::vector<float> read_f32(const TensorView& t, bool check_finite) {
  std::vector<float> out(static_cast<size_t>(t.numel));
  read_f32_into(t, out.data(), out.size(), check_finite);
  return out;
}

std::optional<int64_t> find_non_finite(const TensorView& t) {
  const uint8_t* p = t.data;
  const int64_t n = t.numel;
  switch (t.dtype) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, p + 4 * i, 4);
        if ((b & 0x7f800000u) == 0x7f800000u) return i;
      }
      return std::nullopt;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        if ((b & 0x7c00u) == 0x7c00u) return i;
      }
      return std::nullopt;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, p + 2 * i, 2);
        if ((b & 0x7f80u) == 0x7f80u) return i;
      }
      return std::nullopt;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        if (!std::isfinite(d)) return i;
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace flamingo::io
