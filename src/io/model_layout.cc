#include "io/model_layout.h"

#include <cmath>

#include "util/check.h"

namespace flamingo::io {

bool layer_has_xattn(const XattnConfig& x, int64_t layer) {
  if (x.every <= 0 || layer < 0) return false;
  return x.placement == XattnPlacement::kOpenFlamingo ? (layer + 1) % x.every == 0
                                                      : layer % x.every == 0;
}

int64_t num_xattn_blocks(const XattnConfig& x, int64_t layers) {
  if (x.every <= 0 || layers <= 0) return 0;
  return x.placement == XattnPlacement::kOpenFlamingo ? layers / x.every
                                                      : (layers + x.every - 1) / x.every;
}

int64_t xattn_block_index(const XattnConfig& x, int64_t layers, int64_t layer) {
  if (layer < 0 || layer >= layers || !layer_has_xattn(x, layer)) return -1;
  return x.placement == XattnPlacement::kOpenFlamingo ? (layer + 1) / x.every - 1 : layer / x.every;
}

std::vector<int64_t> xattn_layers(const XattnConfig& x, int64_t layers) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < layers; ++i)
    if (layer_has_xattn(x, i)) out.push_back(i);
  return out;
}

namespace {
int64_t whole(int64_t w, double ratio) {
  const double r = std::round(static_cast<double>(w) * ratio);
  FLAMINGO_CHECK(r >= 1 && r <= static_cast<double>(kMaxWidth));
  return static_cast<int64_t>(r);
}
}  // namespace

std::vector<NfnetBlock> nfnet_blocks(const VisionConfig& v) {
  std::vector<NfnetBlock> blocks;
  int64_t in = v.stem_channels[3];
  for (int s = 0; s < 4; ++s) {
    for (int64_t b = 0; b < v.depths[s]; ++b) {
      NfnetBlock k;
      k.stage = s;
      k.index = b;
      k.in = in;
      k.out = v.widths[s];
      k.mid = whole(k.out, v.bottleneck_ratio);
      FLAMINGO_CHECK(v.group_width > 0 && k.mid % v.group_width == 0);
      k.groups = k.mid / v.group_width;
      k.se_hidden = whole(k.out, v.se_ratio);
      k.stride = b == 0 ? static_cast<int>(v.strides[s]) : 1;
      k.has_projection = k.in != k.out || k.stride != 1;
      blocks.push_back(k);
      in = k.out;
    }
  }
  return blocks;
}

}  // namespace flamingo::io
