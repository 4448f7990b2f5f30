// A read-only view of a whole file, mmap'ed or read into memory.
//
// mmap is the default: the weights stay in the page cache, shared between processes, and are
// only paged in when touched. Reading into memory is the fallback for file systems where mmap
// misbehaves and for callers that cannot tolerate SIGBUS when a file is truncated under a
// mapping (modifying a model file while it is loaded is outside what the engine promises).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace flamingo::io {

enum class MapMode {
  kMmap,          // PROT_READ, MAP_PRIVATE
  kMmapPopulate,  // the same, every page mapped up front (MAP_POPULATE): no faults later
  kRead,          // read() the whole file into an owned, 64-byte aligned buffer
};

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Throws Error(kIo) for a missing, unreadable or non-regular file (a directory, a FIFO...) and
  // Error(kCorruptFile) for an empty one. Errors name the path.
  static MappedFile open(const std::filesystem::path& path, MapMode mode = MapMode::kMmap);

  // An owned, 64-byte aligned copy of bytes (for fuzzers and tests); `name` stands in for the
  // path in error messages. Empty input is allowed here: the format parser reports it.
  static MappedFile copy_of(const void* bytes, size_t size, std::string name);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }
  bool is_mmapped() const { return mapped_; }

  // Hints for the kernel's page cache. Both are no-ops on read-into-memory files. release()
  // drops the pages of [p, p+n) that lie wholly inside the range (after the weights were packed
  // into another layout, say); touching them again later reads them back from the file.
  void advise_sequential() const;
  void advise_willneed() const;
  void release(const void* p, size_t n) const;

 private:
  void reset() noexcept;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string name_;
};

}  // namespace flamingo::io
