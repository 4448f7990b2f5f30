// Helpers shared by the unit tests: seeded random data, error metrics, guarded buffers and
// scratch files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flamingo::testing {

// Whether this binary runs under AddressSanitizer (whose quarantine keeps freed memory
// resident) or any sanitizer (all of which reserve terabytes of address space up front, so
// that an address-space limit cannot be applied under them).
#if defined(__has_feature)
#define FLAMINGO_HAS_FEATURE(f) __has_feature(f)
#else
#define FLAMINGO_HAS_FEATURE(f) 0
#endif
inline constexpr bool kUnderAddressSanitizer =
#if defined(__SANITIZE_ADDRESS__) || FLAMINGO_HAS_FEATURE(address_sanitizer)
    true;
#else
    false;
#endif
inline constexpr bool kUnderSanitizer =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||                     \
    FLAMINGO_HAS_FEATURE(address_sanitizer) || FLAMINGO_HAS_FEATURE(thread_sanitizer) || \
    FLAMINGO_HAS_FEATURE(memory_sanitizer)
    true;
#else
    false;
#endif
#undef FLAMINGO_HAS_FEATURE

// Deterministic uniform values in [lo, hi).
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);

// Normalised mean squared error sum((a-b)²)/sum(b²) (b is the reference), as ggml's
// test-backend-ops computes it. Returns +inf if either side holds a NaN or Inf.
double nmse(const float* a, const float* ref, size_t n);
bool all_finite(const float* x, size_t n);

// A float buffer with canary values on both sides; intact() tells whether a kernel wrote
// outside [data(), data()+size()).
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t n, float fill = 0.f);
  float* data() { return storage_.data() + kGuard; }
  const float* data() const { return storage_.data() + kGuard; }
  size_t size() const { return n_; }
  bool intact() const;

 private:
  static constexpr size_t kGuard = 64;
  size_t n_;
  std::vector<float> storage_;
};

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The number in field `key` of /proc/self/status ("VmRSS" and "VmSize" in kB, "Threads"), or
// -1 where there is no such field.
long proc_status(const std::string& key);

// Lowers this process's address-space limit (RLIMIT_AS) to what it maps now (after returning
// the heap's free memory to the system) plus `headroom` bytes, so that a larger allocation,
// mapping or thread stack fails, and restores the limit on destruction. Not under sanitizers
// (kUnderSanitizer), which map terabytes up front.
class AddressSpaceLimit {
 public:
  explicit AddressSpaceLimit(uint64_t headroom);
  ~AddressSpaceLimit();
  AddressSpaceLimit(const AddressSpaceLimit&) = delete;
  AddressSpaceLimit& operator=(const AddressSpaceLimit&) = delete;

 private:
  uint64_t saved_soft_, saved_hard_;
};

void write_file(const std::filesystem::path& path, const std::string& bytes);
std::string read_file(const std::filesystem::path& path);

// Directory of committed test data (tests/data).
std::filesystem::path test_data_dir();

}  // namespace flamingo::testing
