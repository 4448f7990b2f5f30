#include "model/safetensors_weight_source.h"

#include <algorithm>
#include <utility>

#include "util/check.h"

namespace flamingo::model {

SafetensorsWeightSource::~SafetensorsWeightSource() {
  try {
    release_pending();
  } catch (const Error&) {
    // Releasing is only a residency hint; the tensors all come from weights_, so it cannot fail.
  }
}

void SafetensorsWeightSource::set_progress(std::function<bool(float)> on_progress,
                                           uint64_t total_bytes) {
  on_progress_ = std::move(on_progress);
  total_bytes_ = total_bytes;
  done_bytes_ = 0;
  if (on_progress_ && !on_progress_(0.f))
    fail(ErrorCode::kCancelled, "model loading was cancelled by the progress callback");
}

void SafetensorsWeightSource::report(const io::TensorView& next) {
  if (!on_progress_) return;
  // What was handed out before `next` is done. A tensor asked for twice (the tied embedding)
  // is counted twice, so the sum can pass the total: capping it keeps the fraction within 1.
  const float f = total_bytes_ == 0 ? 0.f
                                    : static_cast<float>(std::min(done_bytes_, total_bytes_)) /
                                          static_cast<float>(total_bytes_);
  if (!on_progress_(f))
    fail(ErrorCode::kCancelled, "model loading was cancelled by the progress callback (at ",
         static_cast<int>(f * 100.f), " % of the weights, before ", next.name, ")");
  done_bytes_ += next.nbytes;
}

void SafetensorsWeightSource::finish() {
  release_pending();
  if (on_progress_ && !on_progress_(1.f))
    fail(ErrorCode::kCancelled, "model loading was cancelled by the progress callback (at 100 %)");
}

void SafetensorsWeightSource::release_pending() {
  for (const io::TensorView* t : pending_) weights_.release(*t);
  pending_.clear();
}

kernels::WeightView SafetensorsWeightSource::matrix(const std::string& name, int64_t n, int64_t k) {
  release_pending();
  const io::TensorView& t = weights_.get(name);
  report(t);
  pending_.push_back(&t);
  kernels::WeightView v;
  v.data = t.data;
  v.n = n;
  v.k = k;
  auto expect_numel = [&](int64_t numel) {
    if (t.numel != numel)
      fail(ErrorCode::kModelMismatch, t.file, ": tensor ", name, " has ", t.numel, " elements ",
           t.shape_string(), ", expected ", numel, " for a ", n, "x", k, " matrix");
  };
  switch (t.dtype) {
    case io::DType::kF32:
      v.type = kernels::WeightType::kF32;
      expect_numel(n * k);
      return v;
    case io::DType::kF16:
      v.type = kernels::WeightType::kF16;
      expect_numel(n * k);
      return v;
    case io::DType::kBF16:
      v.type = kernels::WeightType::kBF16;
      expect_numel(n * k);
      return v;
    case io::DType::kI8:
    case io::DType::kU8: {
      const bool q8 = t.dtype == io::DType::kI8;
      v.type = q8 ? kernels::WeightType::kQ8_0 : kernels::WeightType::kQ4_0;
      if (k % 32 != 0)
        fail(ErrorCode::kModelMismatch, t.file, ": quantised tensor ", name, " has k = ", k,
             ", not a multiple of 32");
      expect_numel(q8 ? n * k : n * k / 2);
      const io::TensorView& s = weights_.get(name + "_scale");
      if (s.dtype != io::DType::kF16 || s.numel != n * k / 32)
        fail(ErrorCode::kModelMismatch, s.file, ": tensor ", s.name, " must be F16 with ",
             n * k / 32, " elements, has ", io::dtype_name(s.dtype), " ", s.shape_string());
      v.scales = reinterpret_cast<const uint16_t*>(s.data);
      done_bytes_ += s.nbytes;
      pending_.push_back(&s);
      return v;
    }
    default:
      fail(ErrorCode::kModelMismatch, t.file, ": tensor ", name, " has dtype ",
           io::dtype_name(t.dtype), "; matrices must be F32, F16, BF16, I8 (q8_0) or U8 (q4_0)");
  }
}

std::vector<float> SafetensorsWeightSource::floats(const std::string& name, int64_t numel) {
  release_pending();
  const io::TensorView& t = weights_.get(name);
  report(t);
  if (t.numel != numel)
    fail(ErrorCode::kModelMismatch, t.file, ": tensor ", name, " has ", t.numel, " elements ",
         t.shape_string(), ", expected ", numel);
  std::vector<float> out = io::read_f32(t, /*check_finite=*/true);
  weights_.release(t);
  return out;
}

}  // namespace flamingo::model
