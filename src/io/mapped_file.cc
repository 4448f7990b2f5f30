#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "util/check.h"

namespace flamingo::io {
namespace {

constexpr std::align_val_t kBufferAlign{64};

// Closes the descriptor on every path out of open().
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

uint8_t* allocate(size_t n) {
  // operator new(0) is legal but gives a pointer we must not read; keep one byte so that data()
  // is never null.
  return static_cast<uint8_t*>(::operator new(n == 0 ? 1 : n, kBufferAlign));
}

void free_buffer(const uint8_t* p) { ::operator delete(const_cast<uint8_t*>(p), kBufferAlign); }

size_t page_size() {
  const long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<size_t>(p) : 4096;
}

}  // namespace

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, false)),
      name_(std::move(other.name_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, false);
    name_ = std::move(other.name_);
  }
  return *this;
}

void MappedFile::reset() noexcept {
  if (data_ != nullptr) {
    if (mapped_)
      ::munmap(const_cast<uint8_t*>(data_), size_);
    else
      free_buffer(data_);
  }
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

MappedFile MappedFile::open(const std::filesystem::path& path, MapMode mode) {
  const std::string name = path.string();
  // O_NONBLOCK keeps open() from hanging on a FIFO; it does not affect regular files.
  Fd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    const int e = errno;
    if (e == ENOENT) fail(ErrorCode::kIo, name, ": no such file");
    fail(io_error_code(e), name, ": cannot open: ", std::strerror(e));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    const int e = errno;
    fail(io_error_code(e), name, ": cannot stat: ", std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) fail(ErrorCode::kIo, name, ": is a directory, not a file");
  if (!S_ISREG(st.st_mode)) fail(ErrorCode::kIo, name, ": not a regular file");
  if (st.st_size <= 0) fail(ErrorCode::kCorruptFile, name, ": file is empty");
  if (static_cast<uintmax_t>(st.st_size) > SIZE_MAX)
    fail(ErrorCode::kResourceLimit, name, ": file too large to map (", st.st_size, " bytes)");
  const size_t size = static_cast<size_t>(st.st_size);

  MappedFile f;
  f.name_ = name;
  if (mode == MapMode::kMmap || mode == MapMode::kMmapPopulate) {
    const int flags = MAP_PRIVATE | (mode == MapMode::kMmapPopulate ? MAP_POPULATE : 0);
    void* p = ::mmap(nullptr, size, PROT_READ, flags, fd.get(), 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      fail(io_error_code(e), name, ": mmap failed: ", std::strerror(e));
    }
    f.data_ = static_cast<const uint8_t*>(p);
    f.size_ = size;
    f.mapped_ = true;
    return f;
  }

  uint8_t* buf = allocate(size);
  f.data_ = buf;  // owned by f from here on, so every throw below frees it
  f.size_ = size;
  size_t done = 0;
  while (done < size) {
    const ssize_t r = ::read(fd.get(), buf + done, size - done);
    if (r < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      fail(io_error_code(e), name, ": read failed at byte ", done, ": ", std::strerror(e));
    }
    if (r == 0)
      fail(ErrorCode::kIo, name, ": file shrank while reading (", done, " of ", size, " bytes)");
    done += static_cast<size_t>(r);
  }
  return f;
}

MappedFile MappedFile::copy_of(const void* bytes, size_t size, std::string name) {
  MappedFile f;
  uint8_t* buf = allocate(size);
  if (size > 0) std::memcpy(buf, bytes, size);
  f.data_ = buf;
  f.size_ = size;
  f.name_ = std::move(name);
  return f;
}

void MappedFile::advise_sequential() const {
  if (mapped_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_SEQUENTIAL);
}

void MappedFile::advise_willneed() const {
  if (mapped_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_WILLNEED);
}

void MappedFile::release(const void* p, size_t n) const {
  if (!mapped_ || n == 0) return;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const auto base = reinterpret_cast<uintptr_t>(data_);
  if (begin < base || begin - base > size_ || n > size_ - (begin - base))
    fail(ErrorCode::kInvalidArgument, name_, ": release() range is outside the mapping");
  // Only whole pages inside the range: a neighbouring tensor may share the edge pages.
  const uintptr_t page = page_size();
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + n) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace flamingo::io
