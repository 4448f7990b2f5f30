// What a loaded Model holds. Shared, immutable after load.
#pragma once

#include <memory>

#include "flamingo/model.h"
#include "io/config.h"
#include "io/image_preprocess.h"
#include "io/safetensors.h"
#include "model/flamingo_model.h"
#include "text/tokenizer.h"
#include "util/thread_pool.h"

namespace flamingo {

struct Model::Impl {
  ModelInfo info;
  double load_ms = 0;
  io::ModelConfig config;
  std::unique_ptr<io::ModelWeights> weights;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<model::FlamingoModel> net;
  PreprocessParams preprocess;
  // The model's compute threads. Jobs from concurrent sessions are serialised by the pool.
  std::unique_ptr<ThreadPool> pool;
};

}  // namespace flamingo
