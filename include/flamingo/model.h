// Loading a Flamingo model directory (see docs/model-format.md).
//
// Ownership and threads: Model::load returns a shared_ptr to an immutable model. Any number
// of Sessions, in any threads, may share one model; nothing in it changes after load. The
// weights stay memory-mapped from the files for the model's lifetime.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "flamingo/error.h"

namespace flamingo {

struct ModelOptions {
  int threads = 0;            // compute threads of the model's pool; 0 = all hardware threads
  bool use_mmap = true;       // false: read the files into memory instead of mapping them
  bool force_scalar = false;  // run the portable scalar kernels even where AVX2 is available
  // A directory for packed weights kept between loads ("" = none; created if missing). The
  // first load writes the model's packed weights there (one file per model, about the size
  // of its weight files); later loads of the same files map them instead of packing again.
  // A stale, damaged or unwritable cache never fails a load: see ModelInfo::pack_cache.
  std::string pack_cache_dir;
  // Called on the loading thread as the weights are read and packed, with the fraction of the
  // weight bytes done so far: never decreasing, first 0, last 1 (once every weight is in
  // place). Return false to stop: load() then frees what it built and throws
  // Error(kCancelled). Unset, loading runs to the end.
  std::function<bool(float progress)> on_progress;
};

// What a loaded model is, for display and for callers that size their buffers.
struct ModelInfo {
  std::string directory;
  std::string weight_dtype;  // as the converter recorded it: f32, f16, bf16, q8_0, q4_0
  int image_size = 0;        // square input side of the vision encoder
  int visual_tokens = 0;     // latents per media item after the resampler
  int vision_grid = 0;       // visual positions per frame before the resampler
  int lm_layers = 0;
  int lm_dim = 0;
  int gated_blocks = 0;
  int vocab_size = 0;
  int max_seq_len = 0;
  int max_frames = 1;          // frames per media item the resampler accepts
  int64_t parameters = 0;      // number of weights
  int64_t weight_bytes = 0;    // bytes of the weight files
  std::string default_prompt;  // the caption prompt from config.json
  // What the pack cache did in this load: "off", "hit", "written" (the first load),
  // "rewritten (why)" (the file was unreadable or incomplete) or "not written (why)".
  std::string pack_cache = "off";
};

class Model {
 public:
  // Loads and validates config.json, the *.safetensors weights and tokenizer.model of a
  // model directory. Throws flamingo::Error naming the file, tensor or field at fault.
  static std::shared_ptr<const Model> load(const std::string& directory,
                                           const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const;
  // Milliseconds spent in load(), for timing lines.
  double load_ms() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flamingo
