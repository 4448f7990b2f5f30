#include "text/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <new>
#include <system_error>
#include <unordered_map>

#include "text/utf8.h"
#include "util/check.h"

namespace flamingo::text {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // "▁", sentencepiece's space
// ASCII, digits, punctuation and multi-byte characters: what any prompt may contain.
constexpr std::string_view kProbeText = "a Large red circle, 42 x 7. caf\xC3\xA9 \xE2\x82\xAC";

int byte_of_piece(std::string_view p) {
  // Validated to be "<0xHH>" with upper-case hex by check_sentencepiece_model.
  auto hex = [](char c) { return c <= '9' ? c - '0' : c - 'A' + 10; };
  return hex(p[3]) * 16 + hex(p[4]);
}

}  // namespace

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string name;  // labels errors that only show once text is encoded
  std::unordered_map<int32_t, std::string> special_by_id;
  // Special strings grouped by first byte, longest first, for the leftmost-longest split.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> by_first_byte;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl, TokenizerConfig config,
                     SentencepieceModelInfo info)
    : impl_(std::move(impl)), config_(std::move(config)), info_(std::move(info)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& path, const TokenizerConfig& config,
                               const SentencepieceLimits& limits) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    fail(ErrorCode::kIo, path.string(), ": tokenizer model not found");
  if (!std::filesystem::is_regular_file(st))
    fail(ErrorCode::kIo, path.string(), ": tokenizer model is not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(io_error_code(ec), path.string(), ": cannot stat tokenizer model: ", ec.message());
  if (size > limits.max_file_bytes)
    fail(ErrorCode::kResourceLimit, path.string(), ": sentencepiece model is ", size,
         " bytes, over the limit of ", limits.max_file_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, path.string(), ": cannot open tokenizer model");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size))
    fail(ErrorCode::kIo, path.string(), ": short read of tokenizer model");
  return from_bytes(std::move(bytes), path.string(), config, limits);
}

Tokenizer Tokenizer::from_bytes(std::string bytes, std::string_view name,
                                const TokenizerConfig& config, const SentencepieceLimits& limits) {
  SentencepieceModelInfo info = check_sentencepiece_model(bytes, name, limits);
  if (info.has_denormalizer)
    fail(ErrorCode::kUnsupported, name,
         ": sentencepiece models with a denormalizer rule table are not supported");
  check_vocabulary(info, config.special, config.vocab_size, name);
  for (auto [what, id] : {std::pair{"bos", config.bos}, std::pair{"eos", config.eos}}) {
    if (id < -1 || id >= config.vocab_size)
      fail(ErrorCode::kInvalidConfig, "config tokens.", what, ": id ", id,
           " is outside the vocabulary [0, ", config.vocab_size, ")");
  }
  if (config.image < -1 || config.image >= config.vocab_size)
    fail(ErrorCode::kInvalidConfig, "config tokens.image: id ", config.image,
         " is outside the vocabulary [0, ", config.vocab_size, ")");
  if (config.image >= 0 && std::none_of(config.special.begin(), config.special.end(),
                                        [&](const auto& kv) { return kv.second == config.image; }))
    fail(ErrorCode::kInvalidConfig, "config tokens.image: id ", config.image,
         " has no marker string in tokens.special");
  if (config.add_bos && config.bos < 0)
    fail(ErrorCode::kInvalidConfig, "config tokens.add_bos is set but there is no bos id");

  auto impl = std::make_unique<Impl>();
  impl->name = std::string(name);
  sentencepiece::util::Status status;
  try {
    status = impl->sp.LoadFromSerializedProto(bytes);
  } catch (const std::bad_alloc&) {
    throw;  // not the file's fault: the public API reports it as kOutOfMemory
  } catch (const std::exception& e) {
    fail(ErrorCode::kCorruptFile, name, ": sentencepiece rejected the model: ", e.what());
  } catch (...) {
    fail(ErrorCode::kCorruptFile, name, ": sentencepiece rejected the model");
  }
  if (!status.ok())
    fail(ErrorCode::kCorruptFile, name, ": sentencepiece rejected the model: ", status.ToString());
  if (impl->sp.GetPieceSize() != info.piece_count)
    fail(ErrorCode::kInternal, name, ": sentencepiece reports ", impl->sp.GetPieceSize(),
         " pieces, the validator counted ", info.piece_count);
  // Some well-formed models still cannot segment text (a unigram model whose pieces and unknown
  // piece leave characters unconsumed, found by fuzzing): sentencepiece then fails every Encode.
  // Probing once here turns that into a load error instead of a failure on the first prompt.
  {
    std::vector<int> probe;
    const auto probe_status = impl->sp.Encode(kProbeText, &probe);
    if (!probe_status.ok())
      fail(ErrorCode::kCorruptFile, name,
           ": sentencepiece cannot segment text with this model: ", probe_status.ToString());
  }

  for (const auto& [text, id] : config.special) {
    impl->special_by_id.emplace(id, text);
    impl->by_first_byte[static_cast<unsigned char>(text[0])].emplace_back(text, id);
  }
  for (auto& group : impl->by_first_byte)
    std::sort(group.begin(), group.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return Tokenizer(std::move(impl), config, std::move(info));
}

void Tokenizer::check_id(int64_t id) const {
  if (id < 0 || id >= config_.vocab_size)
    fail(ErrorCode::kInvalidArgument, "token id ", id, " is outside the vocabulary [0, ",
         config_.vocab_size, ")");
}

std::vector<TextSpan> Tokenizer::split_special(std::string_view text) const {
  std::vector<TextSpan> spans;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const auto& group = impl_->by_first_byte[static_cast<unsigned char>(text[i])];
    const std::pair<std::string, int32_t>* match = nullptr;
    for (const auto& cand : group) {
      if (text.compare(i, cand.first.size(), cand.first) == 0) {
        match = &cand;  // longest first, so the first hit is the longest
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    if (i > start) spans.push_back({start, i, -1});
    spans.push_back({i, i + match->first.size(), match->second});
    i += match->first.size();
    start = i;
  }
  if (start < text.size()) spans.push_back({start, text.size(), -1});
  return spans;
}

void Tokenizer::encode_plain(std::string_view segment, size_t offset,
                             std::vector<int32_t>* out) const {
  if (const size_t bad = find_invalid_utf8(segment); bad != std::string_view::npos)
    fail(ErrorCode::kInvalidArgument, "text is not valid UTF-8 at byte ", offset + bad);
  if (segment.empty()) return;
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(segment, &ids);
  if (!status.ok())
    fail(ErrorCode::kCorruptFile, impl_->name, ": sentencepiece cannot segment the text at byte ",
         offset, " with this model: ", status.ToString());
  out->reserve(out->size() + ids.size());
  for (const int id : ids) {
    if (id < 0 || id >= info_.piece_count)
      fail(ErrorCode::kCorruptFile, impl_->name, ": sentencepiece returned id ", id,
           " outside the model's ", info_.piece_count, " pieces");
    out->push_back(id);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    fail(ErrorCode::kInvalidArgument, "text is not valid UTF-8 at byte ", bad);
  std::vector<int32_t> ids;
  if (options.add_bos) {
    if (config_.bos < 0) fail(ErrorCode::kInvalidArgument, "BOS requested but the model has none");
    ids.push_back(config_.bos);
  }
  if (!options.parse_special) {
    encode_plain(text, 0, &ids);
    return ids;
  }
  for (const TextSpan& s : split_special(text)) {
    if (s.special_id >= 0) {
      ids.push_back(s.special_id);
    } else {
      encode_plain(text.substr(s.begin, s.end - s.begin), s.begin, &ids);
    }
  }
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  return encode(text, EncodeOptions{.add_bos = config_.add_bos, .parse_special = true});
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  for (const int32_t id : ids) check_id(id);
  StreamDecoder d(*this, options);
  std::string out;
  for (const int32_t id : ids) out += d.push(id);
  out += d.flush();
  return out;
}

std::string_view Tokenizer::piece(int32_t id) const {
  check_id(id);
  if (auto it = impl_->special_by_id.find(id); it != impl_->special_by_id.end()) return it->second;
  return impl_->sp.IdToPiece(id);
}

bool Tokenizer::is_special(int32_t id) const { return impl_->special_by_id.count(id) != 0; }

int32_t Tokenizer::special_id(std::string_view text) const {
  auto it = config_.special.find(std::string(text));
  return it == config_.special.end() ? -1 : it->second;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options)
    : tok_(&tokenizer), options_(options) {}

void StreamDecoder::reset() {
  pending_.clear();
  at_start_ = true;
  bos_ws_seen_ = false;
  emitted_ = false;
}

void StreamDecoder::emit(std::string_view s, std::string* out) {
  if (s.empty()) return;
  out->append(s);
  emitted_ = true;
}

// Decodes the held byte run as SentencePieceProcessor::Decode's ProcessBytePieces does: one
// character at a time; a byte that does not start a valid character becomes U+FFFD on its
// own. Until the run has ended, an incomplete character is held back, because the bytes
// still to come decide it.
void StreamDecoder::drain(bool run_ended, std::string* out) {
  size_t i = 0;
  while (i < pending_.size()) {
    const auto lead = static_cast<unsigned char>(pending_[i]);
    const size_t n = utf8_sequence_length(lead);
    if (n != 0 && pending_.size() - i < n && !run_ended) break;
    if (n != 0 && pending_.size() - i >= n && utf8_sequence_valid({pending_.data() + i, n})) {
      emit({pending_.data() + i, n}, out);
      i += n;
    } else {
      emit(kReplacementCharacter, out);
      i += 1;
    }
  }
  pending_.erase(0, i);
}

std::string StreamDecoder::push(int32_t id) {
  tok_->check_id(id);
  std::string out;
  const auto& info = tok_->info_;
  const bool special = tok_->is_special(id);
  if (!special && info.types[id] == PieceType::kByte) {
    pending_.push_back(static_cast<char>(byte_of_piece(tok_->impl_->sp.IdToPiece(id))));
    drain(false, &out);
    return out;
  }
  drain(true, &out);
  // Everything below mirrors Decode's loop body for a non-byte piece.
  if (bos_ws_seen_ || emitted_) at_start_ = false;
  if (special) {
    bos_ws_seen_ = false;
    if (!options_.skip_special) emit(tok_->impl_->special_by_id.at(id), &out);
    return out;
  }
  switch (info.types[id]) {
    case PieceType::kControl:
      bos_ws_seen_ = false;
      return out;
    case PieceType::kUnknown:
      bos_ws_seen_ = false;
      emit(info.unk_surface, &out);
      return out;
    default:
      break;
  }
  std::string_view piece = tok_->impl_->sp.IdToPiece(id);
  bool has_bos_ws = false;
  if (at_start_ && (info.add_dummy_prefix || info.remove_extra_whitespaces)) {
    if (piece.starts_with(kSpaceSymbol)) {
      piece.remove_prefix(kSpaceSymbol.size());
      has_bos_ws = true;
    }
    // With remove_extra_whitespaces every leading space goes, so keep looking.
    if (info.remove_extra_whitespaces) has_bos_ws = false;
  }
  bos_ws_seen_ = has_bos_ws;
  std::string text;
  text.reserve(piece.size());
  for (size_t p = 0; p < piece.size();) {
    if (piece.compare(p, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
      text += ' ';
      p += kSpaceSymbol.size();
    } else {
      text += piece[p++];
    }
  }
  emit(text, &out);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  drain(true, &out);
  return out;
}

}  // namespace flamingo::text
