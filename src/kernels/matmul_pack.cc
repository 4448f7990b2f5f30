// Validation of weight views and their rearrangement into the panel layout of
// matmul_kernels.h.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul_packed.h"
#include "kernels/work_estimate.h"
#include "util/check.h"
#include "util/fnv1a.h"
#include "util/huge_page_arena.h"
#include "util/thread_pool.h"

namespace flamingo::kernels {
namespace detail {

size_t panel_bytes(PanelType type, int64_t k) {
  const size_t kk = static_cast<size_t>(k);
  switch (type) {
    case PanelType::kF32:
      return kk * kPanelRows * 4;
    case PanelType::kF16:
    case PanelType::kBF16:
      return kk * kPanelRows * 2;
    case PanelType::kQ8_0:
      return kk / kQBlock * kQ8BlockBytes;
    case PanelType::kQ4_0:
      return kk / kQBlock * kQ4BlockBytes;
  }
  return 0;
}

}  // namespace detail

using detail::kPanelRows;
using detail::kQBlock;

PackedMatrix::PackedMatrix() = default;
PackedMatrix::~PackedMatrix() = default;
PackedMatrix::PackedMatrix(PackedMatrix&&) noexcept = default;
PackedMatrix& PackedMatrix::operator=(PackedMatrix&&) noexcept = default;
PackedMatrix::PackedMatrix(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WeightType PackedMatrix::type() const { return impl_ ? impl_->type : WeightType::kF32; }
int64_t PackedMatrix::n() const { return impl_ ? impl_->n : 0; }
int64_t PackedMatrix::k() const { return impl_ ? impl_->k : 0; }
size_t PackedMatrix::bytes() const { return impl_ ? impl_->bytes : 0; }
bool PackedMatrix::empty() const { return impl_ == nullptr; }

detail::PackPanelFn pack_panel_fn(WeightType type) {
  const bool avx2 = active_isa() == Isa::kAvx2;
  switch (type) {
    case WeightType::kF32:
      return avx2 ? detail::pack_panel_f32_avx2 : detail::pack_panel_f32_scalar;
    case WeightType::kF16:
    case WeightType::kBF16:
      return avx2 ? detail::pack_panel_x16_avx2 : detail::pack_panel_x16_scalar;
    case WeightType::kQ8_0:
      return avx2 ? detail::pack_panel_q8_0_avx2 : detail::pack_panel_q8_0_scalar;
    case WeightType::kQ4_0:
      return avx2 ? detail::pack_panel_q4_0_avx2 : detail::pack_panel_q4_0_scalar;
  }
  return nullptr;  // not one of the five types: pack_matrix rejects those before packing
}

namespace {

bool is_quantised(WeightType t) { return t == WeightType::kQ8_0 || t == WeightType::kQ4_0; }

void validate(const WeightView& w, const char* what = "pack_matrix") {
  const char* name = weight_type_name(w.type);
  if (std::strcmp(name, "unknown") == 0)
    fail(ErrorCode::kInvalidArgument, what, ": unknown weight type ", static_cast<int>(w.type));
  if (w.n <= 0 || w.k <= 0)
    fail(ErrorCode::kInvalidArgument, what, ": ", name, " weight has n = ", w.n, ", k = ", w.k,
         "; both must be positive");
  // Keeps every byte offset (and n·k·4) far from int64/size_t overflow.
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  if (w.n > kMaxDim || w.k > kMaxDim || w.n * w.k > (int64_t{1} << 40))
    fail(ErrorCode::kResourceLimit, what, ": ", name, " weight of ", w.n, "×", w.k,
         " is too large");
  if (w.data == nullptr) fail(ErrorCode::kInvalidArgument, what, ": ", name, " weight has no data");
  if (is_quantised(w.type)) {
    if (w.k % kQBlock != 0)
      fail(ErrorCode::kInvalidArgument, what, ": ", name, " weight has k = ", w.k,
           ", not a multiple of ", kQBlock);
    if (w.scales == nullptr)
      fail(ErrorCode::kInvalidArgument, what, ": ", name, " weight has no scales");
  }
}

// Panels [p0, p1) of w into `out`, laid out as impl says, each written completely (padding
// included), so panels can be packed by different threads.
void pack_panels(const WeightView& w, const PackedMatrix::Impl& impl, uint8_t* out, int64_t p0,
                 int64_t p1) {
  const int64_t n = w.n, k = w.k, nb = k / kQBlock;
  const size_t raw = detail::panel_bytes(static_cast<detail::PanelType>(w.type), w.k);
  const auto* base = static_cast<const uint8_t*>(w.data);
  // Bytes of one source row in w.data (quantised scales are a separate array).
  const size_t row_bytes = static_cast<size_t>(w.type == WeightType::kF32    ? k * 4
                                               : w.type == WeightType::kQ8_0 ? k
                                               : w.type == WeightType::kQ4_0 ? k / 2
                                                                             : k * 2);
  const detail::PackPanelFn pack = pack_panel_fn(w.type);
  const uint8_t* rows[kPanelRows];
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* dst = out + static_cast<size_t>(p) * impl.panel_stride;
    const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, n - p * kPanelRows));
    // Rows past n in the last panel and the alignment tail of every panel read as zero.
    if (nr < kPanelRows) {
      std::memset(dst, 0, impl.panel_stride);
    } else {
      std::memset(dst + raw, 0, impl.panel_stride - raw);
    }
    for (int r = 0; r < nr; ++r)
      rows[r] = base + static_cast<size_t>(p * kPanelRows + r) * row_bytes;
    pack(rows, nr, w.scales == nullptr ? nullptr : w.scales + p * kPanelRows * nb, k, dst);
  }
}

// The layout of a (type, n, k) matrix; no memory yet.
std::unique_ptr<PackedMatrix::Impl> layout(WeightType type, int64_t n, int64_t k) {
  auto impl = std::make_unique<PackedMatrix::Impl>();
  impl->type = type;
  impl->n = n;
  impl->k = k;
  impl->num_panels = (n + kPanelRows - 1) / kPanelRows;
  const size_t raw = detail::panel_bytes(static_cast<detail::PanelType>(type), k);
  impl->panel_stride = (raw + 63) / 64 * 64;
  impl->bytes = impl->panel_stride * static_cast<size_t>(impl->num_panels);
  return impl;
}

// The layout of w and the memory to pack it into: a block of the arena, or a buffer of its own.
std::unique_ptr<PackedMatrix::Impl> allocate(const WeightView& w, HugePageArena* arena,
                                             uint8_t** out) {
  validate(w);
  auto impl = layout(w.type, w.n, w.k);
  *out = nullptr;
  if (arena != nullptr) {
    HugePageArena::Block b = arena->allocate(impl->bytes);
    *out = b.data;
    impl->owner = std::move(b.owner);
  }
  // Without an arena, or when its reservation is refused (strict overcommit accounting counts
  // reserved address space), a buffer of its own.
  if (*out == nullptr) {
    impl->owned = allocate_large_buffer(impl->bytes);
    *out = impl->owned.get();
  }
  if (*out == nullptr)
    fail(ErrorCode::kOutOfMemory, "pack_matrix: cannot allocate ", impl->bytes, " bytes");
  impl->data = *out;
  return impl;
}

}  // namespace

PackedMatrix pack_matrix(const WeightView& w, ThreadPool* pool, HugePageArena* arena) {
  uint8_t* out = nullptr;
  std::unique_ptr<PackedMatrix::Impl> impl = allocate(w, arena, &out);
  PackedMatrix::Impl& im = *impl;
  if (pool == nullptr) {
    pack_panels(w, im, out, 0, im.num_panels);
    return PackedMatrix(std::move(impl));
  }
  // Groups of 8 panels (128 rows): loading a model is mostly packing, and one thread
  // transposing every matrix made load time 1.4-3.5x a page-cache read of the files.
  constexpr int64_t kPanelsPerTask = 8;
  const int64_t tasks = (im.num_panels + kPanelsPerTask - 1) / kPanelsPerTask;
  pool->parallel_for(
      tasks,
      [&](int64_t t) {
        pack_panels(w, im, out, t * kPanelsPerTask,
                    std::min(im.num_panels, (t + 1) * kPanelsPerTask));
      },
      detail::stream_ns(3.0 * static_cast<double>(im.bytes)));
  return PackedMatrix(std::move(impl));
}

PackedMatrix pack_matrix(const WeightView& w) { return pack_matrix(w, nullptr, nullptr); }

PackedMatrix pack_matrix(const WeightView& w, ThreadPool& pool) {
  return pack_matrix(w, &pool, nullptr);
}

const uint8_t* PackedMatrix::packed_data() const { return impl_ ? impl_->data : nullptr; }

PackedMatrix adopt_packed_matrix(WeightType type, int64_t n, int64_t k, const uint8_t* data,
                                 size_t size, std::shared_ptr<const void> owner) {
  // The adopted bytes stand in for the data and scales validate() wants to see.
  validate(WeightView{type, data, reinterpret_cast<const uint16_t*>(data), n, k},
           "adopt_packed_matrix");
  auto impl = layout(type, n, k);
  if (size != impl->bytes)
    fail(ErrorCode::kInvalidArgument, "adopt_packed_matrix: ", size, " bytes for a ",
         weight_type_name(type), " ", n, "×", k, " matrix, whose packed size is ", impl->bytes);
  if (reinterpret_cast<uintptr_t>(data) % 64 != 0)
    fail(ErrorCode::kInvalidArgument, "adopt_packed_matrix: data is not 64-byte aligned");
  impl->data = data;
  impl->owner = std::move(owner);
  return PackedMatrix(std::move(impl));
}

uint64_t packed_layout_digest() {
  static const uint64_t digest = [] {
    // Odd sizes, so that partial panels and padding are part of the digest.
    constexpr int64_t kN = 37, kK = 96;
    std::vector<float> w(static_cast<size_t>(kN * kK));
    uint32_t state = 12345;
    for (float& v : w) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(static_cast<int32_t>(state >> 8) - (1 << 23)) / float{1 << 23};
    }
    std::vector<uint16_t> half(w.size()), scales(w.size() / kQBlock);
    std::vector<int8_t> q8(w.size());
    std::vector<uint8_t> q4(w.size() / 2);
    uint64_t h = kFnv1aSeed;
    for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kBF16, WeightType::kQ8_0,
                         WeightType::kQ4_0}) {
      WeightView v{t, w.data(), nullptr, kN, kK};
      if (t == WeightType::kF16 || t == WeightType::kBF16) {
        for (size_t i = 0; i < w.size(); ++i)
          half[i] = t == WeightType::kF16 ? fp32_to_fp16(w[i]) : fp32_to_bf16(w[i]);
        v.data = half.data();
      } else if (t == WeightType::kQ8_0 || t == WeightType::kQ4_0) {
        for (int64_t r = 0; r < kN; ++r) {
          uint16_t* sc = scales.data() + r * (kK / kQBlock);
          if (t == WeightType::kQ8_0)
            quantize_row_q8_0(w.data() + r * kK, kK, q8.data() + r * kK, sc);
          else
            quantize_row_q4_0(w.data() + r * kK, kK, q4.data() + r * kK / 2, sc);
        }
        v.data = t == WeightType::kQ8_0 ? static_cast<const void*>(q8.data()) : q4.data();
        v.scales = scales.data();
      }
      const PackedMatrix m = pack_matrix(v);
      const auto type = static_cast<uint8_t>(t);
      h = fnv1a(&type, 1, h);
      h = fnv1a(m.packed_data(), m.bytes(), h);
    }
    return h;
  }();
  return digest;
}

}  // namespace flamingo::kernels
