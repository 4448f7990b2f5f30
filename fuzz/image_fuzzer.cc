// libFuzzer target: untrusted bytes → decoded image → normalised tensor, the whole path an
// image from the internet takes. Limits are tightened so that the fuzzer explores
// structure rather than spending its time on legitimately large images, and PNG CRCs are not
// checked so that mutations reach the decoders. Any exception other than flamingo::Error, and
// any kInternal error, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "flamingo/error.h"
#include "io/image_decode.h"
#include "io/image_preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flamingo::ImageLimits limits;
  limits.max_file_bytes = 1 << 20;
  limits.max_side = 4096;
  limits.max_pixels = 4'000'000;
  limits.max_decode_bytes = 256u << 20;
  limits.max_jpeg_scans = 100;
  limits.check_png_crc = false;
  try {
    const flamingo::DecodedImage image =
        flamingo::decode_image_memory(data, size, "fuzz-input", limits);
    flamingo::PreprocessParams params;
    params.size = 24;
    params.resize =
        (size & 1) ? flamingo::ResizeMode::kSquash : flamingo::ResizeMode::kShortestCrop;
    params.crop_pct = (size & 2) ? 0.875 : 1.0;
    const auto tensor = flamingo::preprocess(image, params);
    if (tensor.size() != 24u * 24 * 3) std::abort();
  } catch (const flamingo::Error& e) {
    if (e.code() == flamingo::ErrorCode::kInternal) std::abort();
  }
  return 0;
}
