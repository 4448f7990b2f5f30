// flamingo::Session: prompt → media encoding → prefill → decode loop (or beam search, or
// scoring). Reads top to bottom in the order a request flows.
#include "flamingo/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <type_traits>
#include <utility>

#include "api/image_impl.h"
#include "api/model_impl.h"
#include "generate/media_tracker.h"
#include "generate/sampler.h"
#include "io/image_preprocess.h"
#include "text/prompt.h"
#include "util/check.h"
#include "util/out_of_memory.h"

namespace flamingo {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

struct Session::Impl {
  // A media item's visual tokens and cross-attention K/V. The frames are held so the Image
  // pointers used as the cache key stay unique while the entry lives.
  struct MediaEntry {
    std::vector<std::shared_ptr<const Image::Impl>> frames;
    std::vector<float> visual_tokens;
    model::MediaKV kv;
  };
  // Same frames (by identity) at the same media-time index → same visual tokens.
  using MediaKey = std::pair<std::vector<const Image::Impl*>, int64_t>;

  struct Prepared {
    std::vector<int32_t> ids;
    std::vector<std::shared_ptr<const MediaEntry>> media;  // by 0-based media index
    std::vector<const model::MediaKV*> media_of_token;
    generate::MediaTracker tracker;  // state after the last prompt token
  };

  std::shared_ptr<const Model> model_ptr;
  const Model::Impl& m;
  Timings timings;
  struct CachedMedia {
    std::shared_ptr<const MediaEntry> entry;
    uint64_t last_used;  // use_clock at the last lookup that hit or inserted it
  };
  std::map<MediaKey, CachedMedia> media_cache;
  uint64_t use_clock = 0;
  model::KvCache cache;
  // The prompt whose keys and values fill the cache's first ids.size() positions, written by
  // prefills of at least kBatchInvariantTokens tokens (so exactly as a new session writes
  // them); empty while the cache holds nothing reusable. Its media entries are held so that
  // the MediaKV pointers it is compared by cannot be reused by another item.
  Prepared kept;
  static_assert(std::is_nothrow_move_assignable_v<Prepared>);

  explicit Impl(std::shared_ptr<const Model> model)
      : model_ptr(std::move(model)), m(model_ptr->impl()) {}

  static constexpr size_t kMaxCachedMedia = 64;

  std::shared_ptr<const MediaEntry> encode_media(const Media& media, int64_t index) {
    if (media.frames.empty())
      fail(ErrorCode::kInvalidArgument, "media item ", index + 1, " has no frames");
    const bool time_embs = m.config.resampler.max_media > 0;
    MediaKey key{{}, time_embs ? index : 0};
    for (const Image& f : media.frames) key.first.push_back(f.impl().get());
    if (auto it = media_cache.find(key); it != media_cache.end()) {
      ++timings.media_reused;
      it->second.last_used = ++use_clock;
      return it->second.entry;
    }
    auto entry = std::make_shared<MediaEntry>();
    std::vector<std::vector<float>> features;
    for (const Image& f : media.frames) {
      entry->frames.push_back(f.impl());
      auto t0 = Clock::now();
      const std::vector<float> pixels = flamingo::preprocess(f.impl()->decoded, m.preprocess);
      timings.image_preprocess_ms += ms_since(t0);
      t0 = Clock::now();
      features.push_back(m.net->encode_frame(pixels.data(), *m.pool));
      timings.vision_ms += ms_since(t0);
    }
    auto t0 = Clock::now();
    entry->visual_tokens = m.net->resample(features, index, *m.pool);
    entry->kv = m.net->visual_kv(entry->visual_tokens, *m.pool);
    timings.resampler_ms += ms_since(t0);
    ++timings.media_encoded;
    timings.visual_kv_computed += m.net->num_blocks();
    // Least recently used out: a session cycling through a few images among many new ones
    // (few-shot prompts with fixed examples) keeps the ones it keeps using.
    if (media_cache.size() >= kMaxCachedMedia)
      media_cache.erase(std::min_element(
          media_cache.begin(), media_cache.end(),
          [](const auto& a, const auto& b) { return a.second.last_used < b.second.last_used; }));
    media_cache.emplace(std::move(key), CachedMedia{entry, ++use_clock});
    return entry;
  }

  generate::MediaTracker new_tracker() const {
    return generate::MediaTracker(static_cast<int32_t>(m.config.tokens.image),
                                  static_cast<int32_t>(m.config.tokens.eos),
                                  m.config.xattn.reset_at_eos);
  }

  static std::vector<text::PromptSegment> segments_of(const Prompt& prompt) {
    std::vector<text::PromptSegment> out;
    out.reserve(prompt.parts().size());
    for (const Prompt::Part& part : prompt.parts()) {
      switch (part.kind) {
        case Prompt::Part::Kind::kText:
          out.push_back(text::PromptSegment::with_markers(part.text));
          break;
        case Prompt::Part::Kind::kLiteralText:
          out.push_back(text::PromptSegment::literal_text(part.text));
          break;
        case Prompt::Part::Kind::kMedia:
          out.push_back(text::PromptSegment::image());
          break;
      }
    }
    return out;
  }

  // Tokenises the prompt, checks markers against media, encodes the media and assigns each
  // token the media item it attends to.
  Prepared prepare(const Prompt& prompt) {
    Prepared p;
    text::PromptOptions po;
    po.max_seq_len = m.config.lm.max_seq_len;
    p.ids = text::tokenize_prompt(*m.tokenizer, segments_of(prompt), prompt.media().size(), po).ids;
    for (size_t i = 0; i < prompt.media().size(); ++i)
      p.media.push_back(encode_media(prompt.media()[i], static_cast<int64_t>(i)));
    p.tracker = new_tracker();
    p.media_of_token.reserve(p.ids.size());
    for (int32_t id : p.ids) p.media_of_token.push_back(kv_for(p, p.tracker.advance(id)));
    return p;
  }

  static const model::MediaKV* kv_for(const Prepared& p, int32_t media_index) {
    // media_index is 1-based; 0 = no media. The prompt's markers were checked against its
    // media, but an <image> the model generates, or one in a scored continuation, has no
    // media item behind it: the tokens after it see none, as in OpenFlamingo, whose media
    // mask matches nothing for them. (Found by fuzz/e2e_fuzzer: an out-of-bounds read.)
    if (media_index <= 0 || static_cast<size_t>(media_index) > p.media.size()) return nullptr;
    return &p.media[static_cast<size_t>(media_index - 1)]->kv;
  }

  // Runs tokens through the model and returns the logits of the last one (or of all).
  std::vector<float> run(const int32_t* ids, int64_t n, const model::MediaKV* const* media,
                         model::KvCache& kv, bool all_logits = false) {
    const int64_t d = m.config.lm.dim, vocab = m.config.lm.vocab_size;
    std::vector<float> h(static_cast<size_t>(n * d));
    m.net->forward(ids, n, media, kv, h.data(), *m.pool);
    const int64_t rows = all_logits ? n : 1;
    std::vector<float> logits(static_cast<size_t>(rows * vocab));
    m.net->logits(h.data() + (n - rows) * d, rows, logits.data(), *m.pool);
    // NaN and Inf are legal safetensors values and big matrices are not scanned at load, so a
    // poisoned weight first shows here; stop instead of sampling from garbage.
    for (size_t i = 0; i < logits.size(); ++i) {
      if (!std::isfinite(logits[i]))
        fail(ErrorCode::kCorruptFile, m.info.directory,
             ": the model produced a non-finite logit (token ", static_cast<int64_t>(i) % vocab,
             ", position ", kv.length - rows + static_cast<int64_t>(i) / vocab,
             "); the weights contain NaN or Inf values");
    }
    return logits;
  }

  void reserve(model::KvCache& kv, int64_t tokens) const {
    m.net->reserve_cache(kv, std::min<int64_t>(tokens, m.config.lm.max_seq_len));
  }

  // Runs the prompt into the cache (reserved for `extra` tokens more) and returns the logits
  // of its last token. The kept prompt's positions are reused as far as this prompt agrees
  // with it: a token's keys and values depend only on the tokens and media before it. They
  // stop kBatchInvariantTokens short of the end, so that the tokens run here form a batch
  // that computes each of them as a whole-prompt prefill does (bitwise), and the logits are
  // those of a new session.
  std::vector<float> prefill(const Prepared& p, int64_t extra) {
    const int64_t n = static_cast<int64_t>(p.ids.size());
    const int64_t batch = model::FlamingoModel::kBatchInvariantTokens;
    int64_t same = 0;
    const int64_t limit = std::min<int64_t>(n, static_cast<int64_t>(kept.ids.size()));
    while (same < limit &&
           kept.ids[static_cast<size_t>(same)] == p.ids[static_cast<size_t>(same)] &&
           kept.media_of_token[static_cast<size_t>(same)] ==
               p.media_of_token[static_cast<size_t>(same)])
      ++same;
    const int64_t reuse = std::max<int64_t>(0, std::min(same, n - batch));
    kept = {};  // the cache changes now; a failure below leaves nothing to reuse
    cache.length = reuse;
    reserve(cache, n + extra);
    const auto t0 = Clock::now();
    std::vector<float> logits =
        run(p.ids.data() + reuse, n - reuse, p.media_of_token.data() + reuse, cache);
    timings.prefill_ms = ms_since(t0);
    timings.prefill_tokens = static_cast<int>(n - reuse);
    timings.prompt_tokens_reused = static_cast<int>(reuse);
    // Copied whole before it is moved in: a copy failing half-way (out of memory) must leave
    // kept empty, not ids of one prompt beside media of another.
    if (n >= batch) kept = Prepared(p);
    return logits;
  }

  GenerateResult generate(const Prompt& prompt, const GenerateOptions& o);
  GenerateResult beam_search(Prepared& p, std::vector<float> logits, const GenerateOptions& o,
                             Clock::time_point t_start);
  std::vector<ScoreResult> score(const Prompt& prompt,
                                 const std::vector<std::string>& continuations);
};

namespace {

void check_options(const GenerateOptions& o) {
  auto bad = [](const char* what, auto v) {
    fail(ErrorCode::kInvalidArgument, "GenerateOptions.", what, " = ", v, " is out of range");
  };
  if (o.max_new_tokens < 0) bad("max_new_tokens", o.max_new_tokens);
  if (!(o.temperature >= 0.f) || !std::isfinite(o.temperature)) bad("temperature", o.temperature);
  if (o.top_k < 0) bad("top_k", o.top_k);
  if (!(o.top_p > 0.f && o.top_p <= 1.f)) bad("top_p", o.top_p);
  if (!(o.min_p >= 0.f && o.min_p <= 1.f)) bad("min_p", o.min_p);
  if (!(o.repeat_penalty > 0.f) || !std::isfinite(o.repeat_penalty))
    bad("repeat_penalty", o.repeat_penalty);
  if (o.repeat_last_n < 0) bad("repeat_last_n", o.repeat_last_n);
  if (o.num_beams < 1 || o.num_beams > 64) bad("num_beams", o.num_beams);
  if (!std::isfinite(o.length_penalty)) bad("length_penalty", o.length_penalty);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return !suffix.empty() && s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

GenerateResult Session::Impl::generate(const Prompt& prompt, const GenerateOptions& o) {
  check_options(o);
  const auto t_start = Clock::now();
  timings = Timings{};
  GenerateResult r;
  Prepared p = prepare(prompt);
  const int64_t vocab = m.config.lm.vocab_size;
  const int32_t image_id = static_cast<int32_t>(m.config.tokens.image);
  const int32_t eoc_id = static_cast<int32_t>(m.config.tokens.endofchunk);
  const int32_t eos_id = static_cast<int32_t>(m.config.tokens.eos);

  std::vector<float> logits = prefill(p, o.max_new_tokens);

  if (o.num_beams > 1) return beam_search(p, std::move(logits), o, t_start);

  generate::Rng rng(o.seed);
  const generate::SamplerParams sp{o.temperature, o.top_k, o.top_p, o.min_p, o.repeat_penalty};
  std::vector<int32_t> history = p.ids;
  std::vector<float> logprobs(static_cast<size_t>(vocab));
  text::StreamDecoder detok(*m.tokenizer);
  r.stop_reason = StopReason::kMaxTokens;
  const auto t0 = Clock::now();
  for (int step = 0; step < o.max_new_tokens; ++step) {
    if (cache.length >= m.config.lm.max_seq_len) {
      r.stop_reason = StopReason::kContextFull;
      break;
    }
    // The model never generates a media marker: it would need an image nobody supplied.
    logits[static_cast<size_t>(image_id)] = -std::numeric_limits<float>::infinity();
    generate::log_softmax(logits.data(), vocab, logprobs.data());
    const int64_t look = std::min<int64_t>(o.repeat_last_n, static_cast<int64_t>(history.size()));
    generate::apply_repeat_penalty(logits.data(), vocab, history.data() + history.size() - look,
                                   look, o.repeat_penalty);
    const int32_t id = generate::sample(logits.data(), vocab, sp, rng);
    if (step == 0) timings.first_token_ms = ms_since(t_start);
    TokenInfo tok{id, std::string(m.tokenizer->piece(id)), logprobs[static_cast<size_t>(id)]};
    r.tokens.push_back(tok);
    history.push_back(id);
    if (o.stop_at_endofchunk && id == eoc_id) {
      r.stop_reason = StopReason::kEndOfChunk;
      break;
    }
    if (o.stop_at_eos && id == eos_id) {
      r.stop_reason = StopReason::kEos;
      break;
    }
    const std::string text = detok.push(id);
    r.text += text;
    timings.decode_tokens++;
    if (o.on_token && !o.on_token(tok, text)) {
      r.stop_reason = StopReason::kCallback;
      break;
    }
    bool stopped = false;
    for (const std::string& s : o.stop_strings) {
      if (ends_with(r.text, s)) {
        r.text.resize(r.text.size() - s.size());
        r.stop_reason = StopReason::kStopString;
        stopped = true;
      }
    }
    if (stopped || step + 1 == o.max_new_tokens) break;
    const model::MediaKV* media = kv_for(p, p.tracker.advance(id));
    logits = run(&id, 1, &media, cache);
  }
  if (r.stop_reason != StopReason::kStopString) r.text += detok.flush();
  timings.decode_ms = ms_since(t0);
  r.timings = timings;
  return r;
}

GenerateResult Session::Impl::beam_search(Prepared& p, std::vector<float> logits,
                                          const GenerateOptions& o, Clock::time_point t_start) {
  struct Beam {
    std::vector<int32_t> tokens;
    std::vector<float> token_logprobs;
    double logprob = 0;
    model::KvCache cache;
    std::vector<float> logits;
    generate::MediaTracker tracker;
  };
  struct Finished {
    std::vector<int32_t> tokens;
    std::vector<float> token_logprobs;
    double score;
    StopReason reason;
  };
  const int64_t vocab = m.config.lm.vocab_size;
  const int32_t image_id = static_cast<int32_t>(m.config.tokens.image);
  const int32_t eoc_id = static_cast<int32_t>(m.config.tokens.endofchunk);
  const int32_t eos_id = static_cast<int32_t>(m.config.tokens.eos);
  const int beams_n = o.num_beams;
  auto normalised = [&](double logprob, size_t len) {
    return logprob / std::pow(static_cast<double>(std::max<size_t>(len, 1)), o.length_penalty);
  };
  std::vector<Finished> finished;
  auto finish = [&](const Beam& b, StopReason why) {
    finished.push_back({b.tokens, b.token_logprobs, normalised(b.logprob, b.tokens.size()), why});
  };

  std::vector<Beam> beams(1);
  beams[0].cache = cache;
  beams[0].logits = std::move(logits);
  beams[0].tracker = p.tracker;
  std::vector<float> lsm(static_cast<size_t>(vocab));
  const auto t0 = Clock::now();
  for (int step = 0; step < o.max_new_tokens && !beams.empty(); ++step) {
    struct Cand {
      size_t beam;
      int32_t id;
      float lp;
      double total;
    };
    std::vector<Cand> cands;
    for (size_t b = 0; b < beams.size(); ++b) {
      beams[b].logits[static_cast<size_t>(image_id)] = -std::numeric_limits<float>::infinity();
      generate::log_softmax(beams[b].logits.data(), vocab, lsm.data());
      std::vector<int32_t> idx(static_cast<size_t>(vocab));
      for (int32_t i = 0; i < vocab; ++i) idx[static_cast<size_t>(i)] = i;
      const size_t keep = std::min<size_t>(static_cast<size_t>(2 * beams_n), idx.size());
      std::partial_sort(
          idx.begin(), idx.begin() + static_cast<ptrdiff_t>(keep), idx.end(),
          [&](int32_t a, int32_t c) {
            return lsm[static_cast<size_t>(a)] > lsm[static_cast<size_t>(c)] ||
                   (lsm[static_cast<size_t>(a)] == lsm[static_cast<size_t>(c)] && a < c);
          });
      for (size_t i = 0; i < keep; ++i)
        cands.push_back({b, idx[i], lsm[static_cast<size_t>(idx[i])],
                         beams[b].logprob + lsm[static_cast<size_t>(idx[i])]});
    }
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Cand& a, const Cand& b) { return a.total > b.total; });
    // The surviving candidates first, so that each parent knows how many children it has: the
    // last child takes the parent's cache by move and only the others copy it, into the
    // buffers of beams that died (copying just the filled positions).
    std::vector<const Cand*> kept;
    std::vector<int> children(beams.size(), 0);
    for (const Cand& c : cands) {
      if (static_cast<int>(kept.size()) == beams_n) break;
      const Beam& parent = beams[c.beam];
      const bool stop =
          (o.stop_at_endofchunk && c.id == eoc_id) || (o.stop_at_eos && c.id == eos_id);
      if (stop) {
        Finished f{parent.tokens, parent.token_logprobs, 0,
                   c.id == eoc_id ? StopReason::kEndOfChunk : StopReason::kEos};
        f.tokens.push_back(c.id);
        f.token_logprobs.push_back(c.lp);
        f.score = normalised(c.total, f.tokens.size());
        finished.push_back(std::move(f));
        continue;
      }
      kept.push_back(&c);
      ++children[c.beam];
    }
    std::vector<model::KvCache> spare;
    for (size_t b = 0; b < beams.size(); ++b)
      if (children[b] == 0) spare.push_back(std::move(beams[b].cache));
    std::vector<Beam> next;
    for (const Cand* c : kept) {
      Beam& parent = beams[c->beam];
      Beam nb;
      nb.tokens = parent.tokens;
      nb.tokens.push_back(c->id);
      nb.token_logprobs = parent.token_logprobs;
      nb.token_logprobs.push_back(c->lp);
      nb.logprob = c->total;
      nb.tracker = parent.tracker;
      if (--children[c->beam] == 0) {
        nb.cache = std::move(parent.cache);
      } else {
        if (!spare.empty()) {
          nb.cache = std::move(spare.back());
          spare.pop_back();
        }
        nb.cache.assign_prefix(parent.cache);
      }
      next.push_back(std::move(nb));
    }
    if (static_cast<int>(finished.size()) >= beams_n) break;
    if (step + 1 == o.max_new_tokens) {
      beams = std::move(next);
      break;
    }
    std::vector<Beam> running;
    for (Beam& b : next) {
      // A beam that filled the context ends here: it has no room for its last token, so no
      // logits to extend. (Kept with empty logits, the next step indexed them: found by
      // fuzz/e2e_fuzzer.)
      if (b.cache.length >= m.config.lm.max_seq_len) {
        finish(b, StopReason::kContextFull);
        continue;
      }
      const int32_t id = b.tokens.back();
      const model::MediaKV* media = kv_for(p, b.tracker.advance(id));
      b.logits = run(&id, 1, &media, b.cache);
      // Full now: greedy decoding would stop before its next token, and so does the beam.
      if (b.cache.length >= m.config.lm.max_seq_len) {
        finish(b, StopReason::kContextFull);
        continue;
      }
      running.push_back(std::move(b));
    }
    if (step == 0) timings.first_token_ms = ms_since(t_start);
    beams = std::move(running);
  }
  for (const Beam& b : beams) finish(b, StopReason::kMaxTokens);
  GenerateResult r;
  if (!finished.empty()) {
    const Finished& best =
        *std::max_element(finished.begin(), finished.end(),
                          [](const Finished& a, const Finished& b) { return a.score < b.score; });
    text::StreamDecoder detok(*m.tokenizer);
    for (size_t i = 0; i < best.tokens.size(); ++i) {
      const int32_t id = best.tokens[i];
      r.tokens.push_back({id, std::string(m.tokenizer->piece(id)), best.token_logprobs[i]});
      if (id != eoc_id && id != eos_id) r.text += detok.push(id);
    }
    r.text += detok.flush();
    r.stop_reason = best.reason;
    for (const std::string& s : o.stop_strings) {
      if (const size_t at = r.text.find(s); at != std::string::npos) {
        r.text.resize(at);
        r.stop_reason = StopReason::kStopString;
      }
    }
  }
  timings.decode_ms = ms_since(t0);
  timings.decode_tokens = static_cast<int>(r.tokens.size());
  r.timings = timings;
  return r;
}

std::vector<ScoreResult> Session::Impl::score(const Prompt& prompt,
                                              const std::vector<std::string>& continuations) {
  timings = Timings{};
  Prepared p = prepare(prompt);
  const int64_t n_prompt = static_cast<int64_t>(p.ids.size());
  const int64_t vocab = m.config.lm.vocab_size;
  std::vector<std::vector<int32_t>> cont_ids;
  int64_t longest = 0;
  for (const std::string& c : continuations) {
    // A continuation is tokenised as its own text segment (special strings parsed, no BOS).
    cont_ids.push_back(m.tokenizer->encode(c, text::EncodeOptions{false, true}));
    if (cont_ids.back().empty())
      fail(ErrorCode::kInvalidArgument, "score: continuation \"", c, "\" has no tokens");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(cont_ids.back().size()));
  }
  const std::vector<float> prompt_logits = prefill(p, longest);

  const auto t0 = Clock::now();
  std::vector<ScoreResult> out;
  std::vector<float> lsm(static_cast<size_t>(vocab));
  for (size_t c = 0; c < continuations.size(); ++c) {
    const std::vector<int32_t>& ids = cont_ids[c];
    // Every continuation starts from the prompt's cache: positions past the prompt are
    // overwritten, so truncating the length is enough.
    cache.length = n_prompt;
    generate::MediaTracker tracker = p.tracker;
    std::vector<const model::MediaKV*> media;
    media.reserve(ids.size());
    for (int32_t id : ids) media.push_back(kv_for(p, tracker.advance(id)));
    ScoreResult s;
    s.continuation = continuations[c];
    s.tokens = static_cast<int>(ids.size());
    generate::log_softmax(prompt_logits.data(), vocab, lsm.data());
    s.logprob = lsm[static_cast<size_t>(ids[0])];
    if (ids.size() > 1) {
      const int64_t n = static_cast<int64_t>(ids.size()) - 1;
      const std::vector<float> logits =
          run(ids.data(), n, media.data(), cache, /*all_logits=*/true);
      for (int64_t i = 0; i < n; ++i) {
        generate::log_softmax(logits.data() + i * vocab, vocab, lsm.data());
        s.logprob += lsm[static_cast<size_t>(ids[static_cast<size_t>(i + 1)])];
      }
      timings.decode_tokens += static_cast<int>(n);
    }
    out.push_back(std::move(s));
  }
  timings.decode_ms = ms_since(t0);
  return out;
}

Session::Session(std::shared_ptr<const Model> model) {
  if (!model) fail(ErrorCode::kInvalidArgument, "Session: null model");
  impl_ = reporting_out_of_memory([&] { return std::make_unique<Impl>(std::move(model)); },
                                  "creating a session");
}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

GenerateResult Session::generate(const Prompt& prompt, const GenerateOptions& options) {
  return reporting_out_of_memory([&] { return impl_->generate(prompt, options); }, "generating");
}

std::vector<ScoreResult> Session::score(const Prompt& prompt,
                                        const std::vector<std::string>& continuations) {
  if (continuations.empty()) fail(ErrorCode::kInvalidArgument, "score: no continuations given");
  return reporting_out_of_memory([&] { return impl_->score(prompt, continuations); }, "scoring");
}

const Timings& Session::timings() const { return impl_->timings; }
void Session::clear_media_cache() {
  impl_->media_cache.clear();
  impl_->kept = {};
}

}  // namespace flamingo
