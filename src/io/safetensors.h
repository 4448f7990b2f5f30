// Our own safetensors reader: zero-copy tensor views into an mmap'ed (or read) file, after
// validating everything the format lets go wrong.
//
// Layout: u64 little-endian N, N bytes of JSON header, then the data section. The header maps
// tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data
// section) plus an optional "__metadata__" object of strings.
//
// Checks (each failure throws Error(kCorruptFile) naming the file and, where there is one, the
// tensor; docs/reliability-loader.md maps each rule to its test):
//   * the file holds the 8-byte length; N ≤ 100,000,000 and 8 + N ≤ file size;
//   * the header starts with '{', is valid UTF-8 JSON, has only spaces after the closing '}',
//     no duplicate keys at any level, nesting ≤ 8 levels;
//   * "__metadata__" is an object whose values are all strings;
//   * every entry is an object with exactly "dtype", "shape", "data_offsets"; names non-empty
//     and ≤ 1024 bytes; at most 1,000,000 tensors;
//   * dtype is a safetensors dtype (the sub-byte and 8-bit float ones throw kUnsupported);
//   * shape: ≤ 8 non-negative integers; element count and byte size computed with checked
//     64-bit arithmetic (a product that overflows is an error even if a later dim is 0);
//   * data_offsets: two non-negative integers, begin ≤ end ≤ data section size,
//     end − begin == element count × dtype size;
//   * sorted by offset, the tensors tile the data section exactly: the first starts at 0, each
//     starts where the previous ended (no holes, no overlap), the last ends at the end of the
//     file (no trailing bytes);
//   * each non-empty tensor starts at a file offset that is a multiple of its dtype size, so the
//     pointer handed out is aligned (the reference writer pads the header with spaces for this).
// Values are not checked (NaN and Inf are legal in the format); see find_non_finite().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/mapped_file.h"

namespace flamingo::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool };

const char* dtype_name(DType t);  // the safetensors spelling: "F32", "BF16", ...
size_t dtype_size(DType t);       // bytes per element
// Throws Error(kCorruptFile) for a name safetensors does not define and Error(kUnsupported)
// for one it defines that we do not read (F8_*, F4, F6_*, C64); `where` prefixes the message.
DType parse_dtype(std::string_view name, const std::string& where);

inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr size_t kMaxRank = 8;
inline constexpr size_t kMaxTensors = 1'000'000;
inline constexpr size_t kMaxNameBytes = 1024;

// A tensor inside a SafetensorsFile. `data` points into the file's bytes and lives as long as
// the file object; it is aligned to dtype_size(dtype).
struct TensorView {
  std::string name;
  std::string file;  // the file it came from, for messages
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  uint64_t offset = 0;  // begin, relative to the data section

  std::string shape_string() const;  // "[2, 3]"
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path, MapMode mode = MapMode::kMmap);
  // Parses a copy of `bytes`; `source_name` stands in for the path in messages (fuzzers, tests).
  static SafetensorsFile from_memory(std::string_view bytes, std::string source_name);
  // Takes ownership of an already mapped file.
  static SafetensorsFile parse(MappedFile file);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::string& source() const { return file_.name(); }
  // In data-section order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t header_bytes() const { return header_bytes_; }
  const MappedFile& bytes() const { return file_; }

 private:
  SafetensorsFile() = default;
  MappedFile file_;
  uint64_t header_bytes_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// All *.safetensors files of a model directory (or an explicit list), as one name → tensor map.
// A name present in two files is an error (kCorruptFile) naming both files.
class ModelWeights {
 public:
  // Throws Error(kIo) when `dir` is not a directory or holds no *.safetensors file.
  static ModelWeights open_directory(const std::filesystem::path& dir,
                                     MapMode mode = MapMode::kMmap);
  static ModelWeights from_files(std::vector<SafetensorsFile> files);

  ModelWeights(ModelWeights&&) noexcept = default;
  ModelWeights& operator=(ModelWeights&&) noexcept = default;

  const TensorView* find(std::string_view name) const;
  // Throws Error(kModelMismatch, "<dir>: tensor <name> is missing").
  const TensorView& get(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return index_.size(); }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& source() const { return source_; }

  // Drops the page-cache pages of a tensor the model no longer reads (it was packed into
  // another layout). No-op when the file was read into memory.
  void release(const TensorView& t) const;

 private:
  ModelWeights() = default;
  std::string source_;  // the directory, or the single file
  std::vector<SafetensorsFile> files_;
  // name → (file index, tensor index)
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> index_;
};

// Small tensors as fp32: norms, biases, gains, gates, latents. F32, F16, BF16 and F64 are
// converted (F64 rounds to nearest); any other dtype throws kModelMismatch. With check_finite,
// a NaN or Inf element throws kCorruptFile naming the tensor, its file and the element index.
std::vector<float> read_f32(const TensorView& t, bool check_finite = true);
void read_f32_into(const TensorView& t, float* out, size_t out_len, bool check_finite = true);

// Index of the first NaN/Inf element of a floating-point tensor, or nullopt (also for integer
// dtypes). Streams over the bytes once; for --verify-weights style scans of big matrices.
std::optional<int64_t> find_non_finite(const TensorView& t);

float half_to_float(uint16_t h);
float bfloat16_to_float(uint16_t h);

}  // namespace flamingo::io
