// Matrix multiplication with fp32 activations and weights in one of five storage types.
//
//   C[M,N] = A[M,K] · Wᵀ        W is [N,K] row-major, as PyTorch's nn.Linear stores it.
//
// Weights are packed once (at model load) into the layout the micro-kernels want. Reduced
// precision weights are dequantised inside the kernels, a cache block at a time; a whole
// matrix is never expanded to fp32. Small M (decode) takes a GEMV path that streams each
// weight byte exactly once; larger M (prefill, vision) a cache-blocked register-tiled GEMM.
// With Q8_0/Q4_0 weights and MatmulEpilogue::int8_activations, the GEMV rounds each row of A
// to 8 bits per block of 32 (scale absmax/127, as ggml's vec_dot does) and multiplies in
// integers, which is what lets it keep up with the memory bandwidth.
//
// Quantised formats (block of 32 consecutive k of one row n, scale d stored as IEEE fp16):
//   Q8_0: q[32] int8,           w = d · q
//   Q4_0: 16 bytes of nibbles,  byte j holds element j in its low nibble and element j+16 in
//         its high nibble, w = d · (nibble − 8)
// K must be a multiple of 32 for the quantised types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/activation.h"

namespace flamingo {
class ThreadPool;
class HugePageArena;
}  // namespace flamingo

namespace flamingo::kernels {

enum class WeightType { kF32, kF16, kBF16, kQ8_0, kQ4_0 };
const char* weight_type_name(WeightType type);

// Bytes needed to store n×k weights of this type (scales included), the figure GEMV
// bandwidth is measured against.
size_t weight_bytes(WeightType type, int64_t n, int64_t k);

// A weight matrix as it lies in memory (for example mmap'ed from safetensors).
//   kF32: data = float[n*k]; kF16 / kBF16: data = uint16_t[n*k];
//   kQ8_0: data = int8_t[n*k], scales = uint16_t (fp16)[n*k/32]
//   kQ4_0: data = uint8_t[n*k/2] (row-major, 16 bytes per block), scales as Q8_0.
struct WeightView {
  WeightType type = WeightType::kF32;
  const void* data = nullptr;
  const uint16_t* scales = nullptr;
  int64_t n = 0;  // output features (rows)
  int64_t k = 0;  // input features (columns)
};

// Weights rearranged for the kernels. Immutable once built; safe to share between threads.
class PackedMatrix {
 public:
  PackedMatrix();
  ~PackedMatrix();
  PackedMatrix(PackedMatrix&&) noexcept;
  PackedMatrix& operator=(PackedMatrix&&) noexcept;

  WeightType type() const;
  int64_t n() const;
  int64_t k() const;
  size_t bytes() const;  // memory held by the packed copy
  bool empty() const;
  // The packed bytes (bytes() of them), for callers that keep packed weights across loads.
  const uint8_t* packed_data() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit PackedMatrix(std::unique_ptr<Impl> impl);
  friend PackedMatrix pack_matrix(const WeightView& w, ThreadPool* pool, HugePageArena* arena);
  friend PackedMatrix adopt_packed_matrix(WeightType type, int64_t n, int64_t k,
                                          const uint8_t* data, size_t size,
                                          std::shared_ptr<const void> owner);
  std::unique_ptr<Impl> impl_;
};

// Validates the view (positive dims, k % 32 == 0 for quantised types) and packs it.
PackedMatrix pack_matrix(const WeightView& w);
// The same result, with groups of panels packed on the pool's threads (model loading).
PackedMatrix pack_matrix(const WeightView& w, ThreadPool& pool);
// The same result again: on the pool's threads unless pool is null, and into a block of the
// arena (a model's packed weights side by side on huge pages) unless arena is null.
PackedMatrix pack_matrix(const WeightView& w, ThreadPool* pool, HugePageArena* arena);

// Packing is a pure function of a matrix's type, shape and values, the same on every ISA, so
// its bytes can be kept (model/pack_cache) and used again by a later load without repacking.
// adopt_packed_matrix makes a matrix over `size` bytes at `data` that packed_data() of a
// (type, n, k) matrix held, used in place; `owner` keeps them alive for as long as the matrix
// lives. Throws flamingo::Error if size is not the packed size of that shape, data is not
// 64-byte aligned, or the shape is invalid. The bytes themselves cannot be checked.
PackedMatrix adopt_packed_matrix(WeightType type, int64_t n, int64_t k, const uint8_t* data,
                                 size_t size, std::shared_ptr<const void> owner);
// Changes whenever the packed layout does (a digest of small matrices of every type packed by
// this build), so that kept bytes are never read with another layout.
uint64_t packed_layout_digest();

struct MatmulEpilogue {
  const float* bias = nullptr;  // [N], added to every row
  bool accumulate = false;      // C += A·Wᵀ (+bias) instead of C = A·Wᵀ (+bias)
  // For Q8_0/Q4_0 weights and M < 8 (the GEMV): multiply A rounded to 8 bits per block of 32
  // (d = absmax/127) in integers. That adds an error of about 1e-5 of the output's power
  // (NMSE, uniform inputs) and makes decode memory-bound instead of compute-bound. Without it
  // such calls take the GEMM path with A in fp32, exact but 2-5× slower at M = 1; that suits
  // the few small GEMVs of a vision encoder, where errors compound through the layers.
  bool int8_activations = false;
  // C = activation_scale · activation(A·Wᵀ + bias), applied to each block of C as soon as it
  // is complete, while it is still in cache: a separate pass reads and writes all of C once
  // more (the vision encoder's GELUs). Not with accumulate.
  Activation activation = Activation::kIdentity;
  float activation_scale = 1.f;
};

// Calls with at least this many rows of A compute each row of C alone: the blocked GEMM sums
// every dot product over k in the same fixed order whatever M is and wherever the row sits, so
// a row gets the same bits in a call of 8 rows as in a call of 500 (epilogue included). Fewer
// rows take the GEMV, which sums in another order. A session relies on it to keep a prompt's
// keys and values for the next prompt that starts the same way.
inline constexpr int64_t kMatmulBatchInvariantRows = 8;

// C = A·Wᵀ with row strides lda ≥ K and ldc ≥ N (in floats). A and C must not overlap.
void matmul(const float* a, int64_t lda, int64_t m, const PackedMatrix& w, float* c, int64_t ldc,
            ThreadPool& pool, const MatmulEpilogue& epilogue = {});

// Round-trip helpers (converters and tests use them; kernels never expand whole matrices).
// Both quantisers work on k % 32 == 0 values and throw flamingo::Error on a NaN or Inf, as
// ggml does it:
//   Q8_0: d = absmax/127, q = round-half-away(x/d) in −127..127; scales[b] = fp16(d).
//   Q4_0: m = the block's value of largest magnitude (sign kept), d = m/−8,
//         nibble = min(15, floor(x/d + 8.5)) (so m itself maps to nibble 0, i.e. −8·d = m).
// An all-zero block gets d = 0 and zero codes. The fp32 d is used to quantise; the stored
// value is fp16(d) (dequantisation uses that one).
void quantize_row_q8_0(const float* x, int64_t k, int8_t* q, uint16_t* scales);
void quantize_row_q4_0(const float* x, int64_t k, uint8_t* q, uint16_t* scales);
void dequantize_row(const WeightView& w, int64_t row, float* out);  // out[k]

// IEEE half / bfloat16 conversions: round to nearest, ties to even; overflow gives ±Inf;
// NaN stays a quiet NaN; subnormals are produced and read exactly (no flush to zero).
uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);
float bf16_to_fp32(uint16_t h);

}  // namespace flamingo::kernels
