#include "kvcache/kv_layout.h"

#include <set>

#include "gtest/gtest.h"

namespace pdserve {
namespace {

class KvLayoutTest : public testing::TestWithParam<KvLayout> {
 protected:
  ModelConfig config_ = *PresetConfig("tiny");
};

TEST_P(KvLayoutTest, EveryRowHasItsOwnPlaceInsideTheRegion) {
  KvGeometry g(config_, 5, GetParam());
  std::set<int64_t> offsets;
  for (BlockId b = 0; b < 5; ++b)
    for (int slot = 0; slot < config_.block_size; ++slot)
      for (int layer = 0; layer < config_.num_layers; ++layer)
        for (int head = 0; head < config_.num_kv_heads; ++head)
          for (uint32_t kind : {0u, 1u}) {
            const int64_t off = g.RowOffset(b, slot, layer, head, kind);
            ASSERT_GE(off, 0);
            ASSERT_LE(off + g.row_bytes(), g.region_bytes());
            ASSERT_EQ(off % g.row_bytes(), 0);
            ASSERT_TRUE(offsets.insert(off).second);
          }
  EXPECT_EQ(static_cast<int64_t>(offsets.size()) * g.row_bytes(), g.region_bytes());
}

TEST_P(KvLayoutTest, FragmentsOfABlockHoldExactlyItsRows) {
  KvGeometry g(config_, 4, GetParam());
  const BlockId b = 2;
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    for (int head = 0; head < config_.num_kv_heads; ++head) {
      const int64_t off = g.RowOffset(b, 3, layer, head, 1);
      bool inside = false;
      for (int f = 0; f < g.fragments_per_block(); ++f) {
        const int64_t start = g.FragmentOffset(b, f);
        inside |= off >= start && off + g.row_bytes() <= start + g.transfer_fragment_bytes();
      }
      EXPECT_TRUE(inside);
    }
  }
  EXPECT_EQ(g.fragments_per_block() * g.transfer_fragment_bytes(), g.block_bytes());
}

INSTANTIATE_TEST_SUITE_P(Layouts, KvLayoutTest,
                         testing::Values(KvLayout::kLayerMajor, KvLayout::kBlockMajor),
                         [](const auto& info) {
                           return info.param == KvLayout::kLayerMajor ? "LayerMajor" : "BlockMajor";
                         });

TEST(KvLayoutTest, LayerMajorNeighbourBlocksAreContiguousWithinALayer) {
  KvGeometry g(*PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  EXPECT_EQ(g.fragments_per_block(), 2);
  EXPECT_EQ(g.FragmentOffset(3, 1) + g.transfer_fragment_bytes(), g.FragmentOffset(4, 1));
}

TEST(KvLayoutTest, BlockMajorBlockIsOneFragmentOfAllLayers) {
  KvGeometry g(*PresetConfig("llama3-8b"), 4, KvLayout::kBlockMajor);
  EXPECT_EQ(g.fragments_per_block(), 1);
  EXPECT_EQ(g.transfer_fragment_bytes(), 131072 * 16);
  EXPECT_EQ(g.FragmentOffset(2, 0), 2 * 131072 * 16);
}

TEST(KvLayoutTest, ParsesLayoutNames) {
  EXPECT_EQ(*ParseKvLayout("layer-major"), KvLayout::kLayerMajor);
  EXPECT_EQ(*ParseKvLayout("block-major"), KvLayout::kBlockMajor);
  EXPECT_EQ(ParseKvLayout("diagonal").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve
