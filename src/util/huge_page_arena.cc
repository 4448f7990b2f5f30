#include "util/huge_page_arena.h"

#include <sys/mman.h>

#include "util/large_buffer.h"

namespace flamingo {

struct HugePageArena::Region {
  void* map = nullptr;  // as mmap returned it
  size_t map_bytes = 0;
  uint8_t* base = nullptr;  // 2 MiB aligned
  size_t bytes = 0;

  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  Region(void* m, size_t mb, uint8_t* b, size_t n) : map(m), map_bytes(mb), base(b), bytes(n) {}
  ~Region() { ::munmap(map, map_bytes); }
};

namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

std::shared_ptr<HugePageArena::Region> HugePageArena::reserve(size_t bytes) {
  // NORESERVE: the reservation is address space, and the heuristic overcommit check should
  // only weigh what is written. One huge page more so the base can be aligned.
  const size_t map_bytes = bytes + kHugePageBytes;
  void* m = ::mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const auto addr = reinterpret_cast<uintptr_t>(m);
  uint8_t* base = static_cast<uint8_t*>(m) + (round_up(addr, kHugePageBytes) - addr);
  // Only advice: without THP the region is simply 4 KiB pages.
  ::madvise(base, bytes, MADV_HUGEPAGE);
  return std::make_shared<Region>(m, map_bytes, base, bytes);
}

HugePageArena::HugePageArena(size_t reservation)
    : reservation_(round_up(reservation == 0 ? 1 : reservation, kHugePageBytes)) {}

HugePageArena::~HugePageArena() = default;

HugePageArena::Block HugePageArena::allocate(size_t bytes) {
  if (bytes > SIZE_MAX / 2) return {};
  const size_t size = round_up(bytes == 0 ? 1 : bytes, kAlign);
  std::lock_guard<std::mutex> lock(mu_);
  if (size > reservation_) {
    // A region of its own, and the current one keeps serving the small blocks.
    auto own = reserve(round_up(size, kHugePageBytes));
    if (!own) return {};
    reserved_ += own->bytes;
    used_ += size;
    return Block{own->base, own};
  }
  if (!region_ || region_->bytes - offset_ < size) {
    auto next = reserve(reservation_);
    if (!next) return {};
    region_ = std::move(next);
    offset_ = 0;
    reserved_ += region_->bytes;
  }
  Block b{region_->base + offset_, region_};
  offset_ += size;
  used_ += size;
  return b;
}

size_t HugePageArena::reserved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}

size_t HugePageArena::used() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

}  // namespace flamingo
