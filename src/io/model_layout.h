// What a config implies about the model's structure, beyond its raw numbers: where the gated
// cross-attention blocks sit in the LM, and the channel plan of every NFNet block. The tensor
// manifest and the model code both build on these, so they cannot disagree.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"

namespace flamingo::io {

// True when LM layer `layer` (0-based) has a gated block before it:
//   openflamingo: (layer + 1) % every == 0;  idefics: layer % every == 0.
bool layer_has_xattn(const XattnConfig& x, int64_t layer);
// The block index j of layer `layer` (blocks are numbered in layer order), or -1.
int64_t xattn_block_index(const XattnConfig& x, int64_t layers, int64_t layer);
int64_t num_xattn_blocks(const XattnConfig& x, int64_t layers);
// The LM layer of each block, in block order.
std::vector<int64_t> xattn_layers(const XattnConfig& x, int64_t layers);

// One NFNet bottleneck block (architecture spec §1.6).
struct NfnetBlock {
  int stage = 0;
  int64_t index = 0;            // block within the stage
  int64_t in = 0;               // input channels
  int64_t mid = 0;              // widths[stage] · bottleneck_ratio
  int64_t out = 0;              // widths[stage]
  int64_t groups = 0;           // mid / group_width
  int64_t se_hidden = 0;        // widths[stage] · se_ratio
  int stride = 1;               // on conv2; strides[stage] for block 0, else 1
  bool has_projection = false;  // downsample.conv: in ≠ out or stride ≠ 1
};

// Every block in order. The config must have passed validate_config() (the ratios give whole
// channel counts).
std::vector<NfnetBlock> nfnet_blocks(const VisionConfig& v);

}  // namespace flamingo::io
