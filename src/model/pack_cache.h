// Packed weights kept on disk between loads.
//
// Packing (kernels::pack_matrix) is most of a model's load time: every weight byte is read,
// reordered and written to fresh memory, 2-4× the time of reading the files once from the page
// cache on one thread. A cache file holds the packed bytes of every matrix of one model; the
// next load maps it and uses the bytes in place (kernels::adopt_packed_matrix), so loading
// costs about one mapping of the file and no second copy of the weights is ever made.
//
// One file per model, named by a key that covers the weight files (name, size, modification
// time, safetensors header), config.json and the packed layout of this build
// (kernels::packed_layout_digest). A file that is missing, of another key, truncated or
// otherwise unreadable is ignored and rewritten; the cache never makes a load fail. Its data
// bytes are not checksummed (as the weight files' are not): only what a cache file says about
// its entries is checked, against the shapes the model expects.
//
// Layout (little-endian): the packed parts, each at a 4096-byte aligned offset; then a JSON
// index; then the index's length (u64) and the magic "FLMPACK1".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/conv.h"
#include "kernels/matmul.h"

namespace flamingo::io {
class MappedFile;
}

namespace flamingo::model {

class PackCache {
 public:
  // Opens dir/<key>.fpack when it exists and is valid. Never throws for a bad or missing file.
  PackCache(std::filesystem::path dir, uint64_t key);
  ~PackCache();
  PackCache(const PackCache&) = delete;
  PackCache& operator=(const PackCache&) = delete;

  // The matrix `name` as an earlier load packed it, or an empty matrix when the cache does not
  // hold it with this type and shape.
  kernels::PackedMatrix find(const std::string& name, kernels::WeightType type, int64_t n,
                             int64_t k);
  // The same for a conv with params p (an empty conv when absent).
  kernels::PackedConv2d find_conv(const std::string& name, const kernels::Conv2dParams& p,
                                  kernels::WeightType type);
  // Notes a matrix of this load (packed, or found), for commit(). It must live until then.
  void record(const std::string& name, const kernels::PackedMatrix& m);
  void record_conv(const std::string& name, const kernels::PackedConv2d& c);
  // Writes the cache file unless every matrix came from it, through a temporary file and a
  // rename (a concurrent load sees the old file or the new one). Never throws: a failure to
  // write is reported by status().
  void commit();

  // What the cache did: "hit" (every matrix came from the file), "written" (there was no
  // file), "rewritten (why)" (the file could not be read or lacked matrices, which were
  // packed), or "not written (why)".
  const std::string& status() const { return status_; }
  std::filesystem::path file() const { return file_; }

 private:
  struct Part {
    int64_t n = 0, k = 0;
    uint64_t offset = 0, bytes = 0;
    const uint8_t* data = nullptr;  // recorded parts: the packed bytes to write
  };
  struct Entry {
    kernels::WeightType type = kernels::WeightType::kF32;
    bool conv = false;
    kernels::Conv2dParams params;
    std::vector<Part> parts;
  };
  void open_existing();
  kernels::PackedMatrix adopt(const Entry& e, const Part& part) const;
  void write_file();

  std::filesystem::path dir_, file_;
  uint64_t key_ = 0;
  std::shared_ptr<const io::MappedFile> mapped_;  // the file read, if valid
  std::map<std::string, Entry> found_;
  std::vector<std::pair<std::string, Entry>> recorded_;
  int64_t hits_ = 0, misses_ = 0;
  std::string unreadable_;  // why an existing file was not used
  std::string status_;
};

}  // namespace flamingo::model
