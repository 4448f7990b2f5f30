// One contiguous home for many long-lived buffers (a model's packed weights), so that all of
// them sit on transparent huge pages, the small ones and the tails of the large ones included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace flamingo {

// Hands out 64-byte aligned blocks one after the other from large reservations of address
// space advised MADV_HUGEPAGE. A reservation costs no memory until it is written, and every
// 2 MiB of it is then one page fault and one huge page; packing into buffers of their own
// left a third of a Flamingo-3B q4_0 model (its 295 KB conv groups and the ends of its
// matrices) on 4 KiB pages, 180 000 page faults per load.
//
// Blocks are never freed one by one: a reservation is returned to the system when the arena
// and every block's owner are gone. Thread-safe.
class HugePageArena {
 public:
  struct Block {
    uint8_t* data = nullptr;
    std::shared_ptr<const void> owner;  // keeps data's reservation mapped
  };

  // `reservation` is the address space taken at a time (rounded up to 2 MiB); a larger
  // request gets a reservation of its own size.
  explicit HugePageArena(size_t reservation = size_t{1} << 30);
  ~HugePageArena();
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;

  // `bytes` writable bytes (contents unspecified), or a block with null data if the address
  // space cannot be had.
  Block allocate(size_t bytes);

  // Address space reserved so far and bytes handed out (with their alignment padding).
  size_t reserved() const;
  size_t used() const;

 private:
  struct Region;
  static std::shared_ptr<Region> reserve(size_t bytes);
  mutable std::mutex mu_;
  size_t reservation_;
  std::shared_ptr<Region> region_;  // the one blocks come from now
  size_t offset_ = 0;               // first free byte of region_
  size_t reserved_ = 0, used_ = 0;
};

}  // namespace flamingo
