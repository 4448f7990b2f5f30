#include "flamingo/model.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "api/model_impl.h"
#include "io/model_manifest.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "model/pack_cache.h"
#include "model/safetensors_weight_source.h"
#include "util/check.h"
#include "util/fnv1a.h"
#include "util/huge_page_arena.h"
#include "util/out_of_memory.h"

namespace flamingo {
namespace {

PreprocessParams preprocess_params(const io::ModelConfig& c) {
  PreprocessParams p;
  p.size = static_cast<int>(c.vision.image_size);
  p.resize = c.preprocess.resize == io::ResizeMode::kShortestCrop ? ResizeMode::kShortestCrop
                                                                  : ResizeMode::kSquash;
  p.crop_pct = c.preprocess.crop_pct;
  for (int i = 0; i < 3; ++i) {
    p.mean[i] = static_cast<float>(c.preprocess.mean[static_cast<size_t>(i)]);
    p.std[i] = static_cast<float>(c.preprocess.std[static_cast<size_t>(i)]);
    p.background[i] = static_cast<uint8_t>(c.preprocess.background[static_cast<size_t>(i)]);
  }
  return p;
}

int64_t count_parameters(const io::ModelWeights& w) {
  int64_t n = 0;
  for (const std::string& name : w.names()) {
    const io::TensorView& t = w.get(name);
    if (t.dtype == io::DType::kU8)
      n += 2 * t.numel;  // two 4-bit weights per byte
    else if (name.size() < 6 || name.compare(name.size() - 6, 6, "_scale") != 0)
      n += t.numel;
  }
  return n;
}

// Identifies the packed weights of a model directory: the weight files (name, size,
// modification time and safetensors header), config.json (which decides e.g. whether conv
// weights are standardised at load) and this build's packed layout.
uint64_t pack_cache_key(const std::filesystem::path& dir, const io::ModelWeights& w) {
  namespace fs = std::filesystem;
  uint64_t h = fnv1a("flamingo pack cache 1", 21);
  const uint64_t layout = kernels::packed_layout_digest();
  h = fnv1a(&layout, sizeof layout, h);
  const io::MappedFile config = io::MappedFile::open(dir / "config.json", io::MapMode::kRead);
  h = fnv1a(config.data(), config.size(), h);
  for (const io::SafetensorsFile& f : w.files()) {
    const fs::path path(f.source());
    const std::string name = fs::absolute(path).string();
    h = fnv1a(name.data(), name.size(), h);
    const uint64_t size = f.bytes().size();
    h = fnv1a(&size, sizeof size, h);
    std::error_code ec;
    const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
    h = fnv1a(&mtime, sizeof mtime, h);
    h = fnv1a(f.bytes().data(), std::min<uint64_t>(size, 8 + f.header_bytes()), h);
  }
  return h;
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

namespace {

std::unique_ptr<Model::Impl> load_impl(const std::string& directory, const ModelOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(directory, ec))
    fail(ErrorCode::kIo, directory, ": model directory does not exist");
  if (!fs::is_directory(directory, ec)) fail(ErrorCode::kIo, directory, ": not a directory");
  if (options.threads < 0 || options.threads > 1024)
    fail(ErrorCode::kInvalidArgument, "ModelOptions.threads = ", options.threads,
         " is out of range [0, 1024]");
  if (options.force_scalar) kernels::set_isa(kernels::Isa::kScalar);

  auto impl = std::make_unique<Model::Impl>();
  const fs::path dir(directory);
  impl->config = io::load_config(dir / "config.json");
  impl->weights = std::make_unique<io::ModelWeights>(io::ModelWeights::open_directory(
      dir, options.use_mmap ? io::MapMode::kMmap : io::MapMode::kRead));
  io::check_weights(impl->config, *impl->weights);
  text::TokenizerConfig tc;
  tc.vocab_size = impl->config.lm.vocab_size;
  for (const auto& [s, id] : impl->config.tokens.special)
    tc.special.emplace(s, static_cast<int32_t>(id));
  tc.bos = static_cast<int32_t>(impl->config.tokens.bos);
  tc.eos = static_cast<int32_t>(impl->config.tokens.eos);
  tc.image = static_cast<int32_t>(impl->config.tokens.image);
  tc.add_bos = impl->config.tokens.add_bos;
  impl->tokenizer =
      std::make_unique<text::Tokenizer>(text::Tokenizer::from_file(dir / "tokenizer.model", tc));
  // The pool exists before the network so that packing the weights, most of the load time,
  // uses its threads.
  impl->pool = std::make_unique<ThreadPool>(options.threads);
  model::SafetensorsWeightSource source(*impl->weights);
  source.set_pack_pool(impl->pool.get());
  // The packed weights, side by side on huge pages; each matrix keeps its part mapped.
  HugePageArena arena;
  source.set_pack_arena(&arena);
  std::unique_ptr<model::PackCache> cache;
  if (!options.pack_cache_dir.empty()) {
    cache = std::make_unique<model::PackCache>(options.pack_cache_dir,
                                               pack_cache_key(dir, *impl->weights));
    source.set_pack_cache(cache.get());
  }
  if (options.on_progress) {
    uint64_t total = 0;
    for (const std::string& name : impl->weights->names()) total += impl->weights->get(name).nbytes;
    source.set_progress(options.on_progress, total);
  }
  impl->net = std::make_unique<model::FlamingoModel>(impl->config, source);
  source.finish();
  if (cache) {
    cache->commit();
    impl->info.pack_cache = cache->status();
  }
  impl->preprocess = preprocess_params(impl->config);

  ModelInfo& i = impl->info;
  const io::ModelConfig& c = impl->config;
  i.directory = directory;
  i.weight_dtype = io::to_string(c.weights.dtype);
  i.image_size = static_cast<int>(c.vision.image_size);
  i.visual_tokens = static_cast<int>(c.resampler.num_latents);
  i.vision_grid = static_cast<int>(impl->net->vision().positions());
  i.lm_layers = static_cast<int>(c.lm.layers);
  i.lm_dim = static_cast<int>(c.lm.dim);
  i.gated_blocks = impl->net->num_blocks();
  i.vocab_size = static_cast<int>(c.lm.vocab_size);
  i.max_seq_len = static_cast<int>(c.lm.max_seq_len);
  i.max_frames = c.resampler.max_frames > 0 ? static_cast<int>(c.resampler.max_frames) : 1;
  i.parameters = count_parameters(*impl->weights);
  for (const auto& f : impl->weights->files())
    i.weight_bytes += static_cast<int64_t>(f.bytes().size());
  i.default_prompt = c.prompt.caption;
  impl->load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return impl;
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& directory,
                                         const ModelOptions& options) {
  std::unique_ptr<Impl> impl = reporting_out_of_memory(
      [&] { return load_impl(directory, options); }, "loading the model in ", directory);
  return reporting_out_of_memory(
      [&] { return std::shared_ptr<const Model>(new Model(std::move(impl))); },
      "loading the model in ", directory);
}

const ModelInfo& Model::info() const { return impl_->info; }
double Model::load_ms() const { return impl_->load_ms; }

}  // namespace flamingo
