#include "io/model_layout.h"

#include <gtest/gtest.h>

#include "support/test_util.h"

namespace flamingo::io {
namespace {

XattnConfig xattn(int64_t every, XattnPlacement p) {
  XattnConfig x;
  x.every = every;
  x.placement = p;
  return x;
}

TEST(XattnPlacement, OpenFlamingoPutsABlockBeforeEveryNthLayer) {
  const auto x = xattn(4, XattnPlacement::kOpenFlamingo);
  EXPECT_EQ(xattn_layers(x, 32), (std::vector<int64_t>{3, 7, 11, 15, 19, 23, 27, 31}));
  EXPECT_EQ(num_xattn_blocks(x, 32), 8);
  EXPECT_EQ(xattn_block_index(x, 32, 3), 0);
  EXPECT_EQ(xattn_block_index(x, 32, 31), 7);
  EXPECT_EQ(xattn_block_index(x, 32, 0), -1);
  EXPECT_EQ(xattn_block_index(x, 32, 30), -1);
  EXPECT_EQ(xattn_block_index(x, 32, 32), -1);  // past the last layer
  EXPECT_FALSE(layer_has_xattn(x, 0));
  EXPECT_TRUE(layer_has_xattn(x, 7));
  // 22 layers, every 4 (the TinyLlama configuration): 5 blocks, the last before layer 19.
  EXPECT_EQ(xattn_layers(x, 22), (std::vector<int64_t>{3, 7, 11, 15, 19}));
  EXPECT_EQ(num_xattn_blocks(x, 22), 5);
}

TEST(XattnPlacement, IdeficsStartsAtLayerZero) {
  const auto x = xattn(4, XattnPlacement::kIdefics);
  EXPECT_EQ(xattn_layers(x, 32), (std::vector<int64_t>{0, 4, 8, 12, 16, 20, 24, 28}));
  EXPECT_EQ(num_xattn_blocks(x, 32), 8);
  EXPECT_EQ(xattn_block_index(x, 32, 0), 0);
  EXPECT_EQ(xattn_block_index(x, 32, 28), 7);
  EXPECT_EQ(xattn_block_index(x, 32, 3), -1);
  const auto y = xattn(3, XattnPlacement::kIdefics);
  EXPECT_EQ(xattn_layers(y, 10), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(num_xattn_blocks(y, 10), 4);
}

TEST(XattnPlacement, EveryOneMeansEveryLayer) {
  for (auto p : {XattnPlacement::kOpenFlamingo, XattnPlacement::kIdefics}) {
    const auto x = xattn(1, p);
    EXPECT_EQ(num_xattn_blocks(x, 5), 5);
    for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(xattn_block_index(x, 5, i), i);
  }
}

TEST(XattnPlacement, BlockIndicesAreDenseInLayerOrder) {
  for (auto p : {XattnPlacement::kOpenFlamingo, XattnPlacement::kIdefics})
    for (int64_t every = 1; every <= 7; ++every)
      for (int64_t layers = 1; layers <= 30; ++layers) {
        const auto x = xattn(every, p);
        const auto at = xattn_layers(x, layers);
        ASSERT_EQ(static_cast<int64_t>(at.size()), num_xattn_blocks(x, layers));
        for (size_t j = 0; j < at.size(); ++j)
          EXPECT_EQ(xattn_block_index(x, layers, at[j]), static_cast<int64_t>(j));
      }
}

TEST(NfnetBlocks, F0ChannelPlan) {
  VisionConfig v;
  v.stem_channels = {16, 32, 64, 128};
  v.depths = {1, 2, 6, 3};
  v.widths = {256, 512, 1536, 1536};
  const auto blocks = nfnet_blocks(v);
  ASSERT_EQ(blocks.size(), 12u);
  // s0b0: 128 → 256, projection without stride.
  EXPECT_EQ(blocks[0].in, 128);
  EXPECT_EQ(blocks[0].mid, 128);
  EXPECT_EQ(blocks[0].out, 256);
  EXPECT_EQ(blocks[0].groups, 1);
  EXPECT_EQ(blocks[0].se_hidden, 128);
  EXPECT_EQ(blocks[0].stride, 1);
  EXPECT_TRUE(blocks[0].has_projection);
  // s1b0 strided projection, s1b1 identity.
  EXPECT_EQ(blocks[1].stage, 1);
  EXPECT_EQ(blocks[1].stride, 2);
  EXPECT_TRUE(blocks[1].has_projection);
  EXPECT_EQ(blocks[2].index, 1);
  EXPECT_EQ(blocks[2].in, 512);
  EXPECT_FALSE(blocks[2].has_projection);
  // s2b0: 512 → 1536, mid 768, 6 groups.
  EXPECT_EQ(blocks[3].in, 512);
  EXPECT_EQ(blocks[3].mid, 768);
  EXPECT_EQ(blocks[3].groups, 6);
  // s3b0: 1536 → 1536 still projects because of the stride.
  EXPECT_EQ(blocks[9].stage, 3);
  EXPECT_EQ(blocks[9].in, 1536);
  EXPECT_EQ(blocks[9].out, 1536);
  EXPECT_EQ(blocks[9].stride, 2);
  EXPECT_TRUE(blocks[9].has_projection);
  EXPECT_FALSE(blocks[10].has_projection);
}

TEST(NfnetBlocks, TinyFixtureHasNoProjectionWhenShapesAgree) {
  const ModelConfig c = load_config(flamingo::testing::test_data_dir() / "config" / "tiny.json");
  const auto blocks = nfnet_blocks(c.vision);
  ASSERT_EQ(blocks.size(), 4u);
  // stem 8 → 16: projection; then 16 → 16 with stride 2: projection; 16 → 32; 32 → 32 stride 2.
  for (const auto& b : blocks) EXPECT_TRUE(b.has_projection);
  VisionConfig v = c.vision;
  v.stem_channels[3] = 16;
  v.strides = {1, 1, 2, 2};
  const auto flat = nfnet_blocks(v);
  EXPECT_FALSE(flat[0].has_projection);
  EXPECT_FALSE(flat[1].has_projection);
  EXPECT_TRUE(flat[2].has_projection);
}

}  // namespace
}  // namespace flamingo::io
