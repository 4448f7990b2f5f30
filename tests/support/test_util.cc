#include "support/test_util.h"

#include <malloc.h>
#include <sys/resource.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace flamingo::testing {

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

bool all_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

double nmse(const float* a, const float* ref, size_t n) {
  if (!all_finite(a, n) || !all_finite(ref, n)) return INFINITY;
  double err = 0, norm = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  if (norm == 0) return err == 0 ? 0 : INFINITY;
  return err / norm;
}

namespace {
constexpr uint32_t kCanaryBits = 0x7fc0dead;  // a NaN payload no kernel produces
float canary() {
  float f;
  std::memcpy(&f, &kCanaryBits, sizeof f);
  return f;
}
bool is_canary(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits == kCanaryBits;
}
}  // namespace

GuardedBuffer::GuardedBuffer(size_t n, float fill) : n_(n), storage_(n + 2 * kGuard, canary()) {
  for (size_t i = 0; i < n; ++i) storage_[kGuard + i] = fill;
}

bool GuardedBuffer::intact() const {
  for (size_t i = 0; i < kGuard; ++i)
    if (!is_canary(storage_[i]) || !is_canary(storage_[kGuard + n_ + i])) return false;
  return true;
}

long proc_status(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  return -1;
}

AddressSpaceLimit::AddressSpaceLimit(uint64_t headroom) {
  rlimit r{};
  if (getrlimit(RLIMIT_AS, &r) != 0) throw std::runtime_error("getrlimit(RLIMIT_AS) failed");
  saved_soft_ = r.rlim_cur;
  saved_hard_ = r.rlim_max;
  // Free memory glibc keeps for reuse would serve allocations the limit is meant to fail.
  malloc_trim(0);
  const long mapped_kb = proc_status("VmSize");
  if (mapped_kb <= 0) throw std::runtime_error("no VmSize in /proc/self/status");
  r.rlim_cur = static_cast<uint64_t>(mapped_kb) * 1024 + headroom;
  if (setrlimit(RLIMIT_AS, &r) != 0) throw std::runtime_error("setrlimit(RLIMIT_AS) failed");
}

AddressSpaceLimit::~AddressSpaceLimit() {
  const rlimit r{saved_soft_, saved_hard_};
  setrlimit(RLIMIT_AS, &r);
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::ostringstream name;
    name << "flamingo_test_" << std::hex << rd() << rd();
    auto p = std::filesystem::temp_directory_path() / name.str();
    if (std::filesystem::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

std::filesystem::path test_data_dir() { return FLAMINGO_TEST_DATA_DIR; }

}  // namespace flamingo::testing
