// libFuzzer target: an untrusted tokenizer.model through our protobuf validator, the
// vocabulary check, sentencepiece's loader, and encode/decode of fixed strings and of ids taken
// from the input. sentencepiece itself is the hazard here (reliability spec §3): it segfaults or
// exit()s on crafted models and out-of-range ids, so everything it is handed must have passed
// our checks. Any exception other than flamingo::Error, and any kInternal error, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "flamingo/error.h"
#include "text/sentencepiece_model_check.h"
#include "text/tokenizer.h"

namespace {

void check(const flamingo::Error& e) {
  if (e.code() == flamingo::ErrorCode::kInternal) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  flamingo::text::SentencepieceLimits limits;
  limits.max_file_bytes = 1 << 20;
  limits.max_pieces = 1 << 16;
  flamingo::text::SentencepieceModelInfo info;
  try {
    info = flamingo::text::check_sentencepiece_model(bytes, "fuzz/tokenizer.model", limits);
  } catch (const flamingo::Error& e) {
    check(e);
    return 0;
  }
  // A config that fits whatever vocabulary the model has, so the fuzzer gets past the vocabulary
  // check into sentencepiece; the low bit of the size adds BOS, as LLaMA does.
  flamingo::text::TokenizerConfig config;
  config.vocab_size = int64_t{info.piece_count} + 2;
  config.special = {{"<|endofchunk|>", info.piece_count}, {"<image>", info.piece_count + 1}};
  config.image = info.piece_count + 1;
  config.eos = info.piece_count;
  config.bos = -1;
  for (int32_t id = 0; id < info.piece_count; ++id) {
    if (info.types[static_cast<size_t>(id)] == flamingo::text::PieceType::kControl &&
        id != info.unk_id) {
      config.bos = id;
      break;
    }
  }
  config.add_bos = (size & 1) && config.bos >= 0;
  try {
    const auto tok =
        flamingo::text::Tokenizer::from_bytes(bytes, "fuzz/tokenizer.model", config, limits);
    static const char* const kTexts[] = {
        "",
        " ",
        "a large red circle<image>Output: two cats.<|endofchunk|>",
        "  leading and trailing  spaces  ",
        "\xE2\x82\xAC 42 \xF0\x9F\x98\x80 caf\xC3\xA9 \x00 nul",
        "<image><image><|endofchunk|>",
    };
    for (const char* text : kTexts) {
      const std::vector<int32_t> ids = tok.encode(text);
      for (int32_t id : ids) {
        if (id < 0 || id >= tok.vocab_size()) std::abort();
      }
      (void)tok.decode(ids);
      flamingo::text::StreamDecoder stream(tok);
      for (int32_t id : ids) (void)stream.push(id);
      (void)stream.flush();
    }
    // Ids from the tail of the input, unchecked: decode must refuse the out-of-range ones.
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 2 <= size && ids.size() < 64; i += 2) {
      ids.push_back(static_cast<int32_t>((data[size - 1 - i] << 8 | data[size - 2 - i]) %
                                         (config.vocab_size + 4)) -
                    2);
    }
    try {
      (void)tok.decode(ids);
    } catch (const flamingo::Error& e) {
      check(e);
    }
  } catch (const flamingo::Error& e) {
    check(e);
  }
  return 0;
}
