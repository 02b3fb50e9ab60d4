#include "gtest/gtest.h"
#include "kvcache/cuda/device_geometry_host.h"
#include "kvcache/kv_layout.h"

namespace pdserve::cuda {
namespace {

// The kernels' offset math is KvGeometry's, for every row of both layouts (no device needed).
TEST(DeviceGeometryTest, RowOffsetsEqualKvGeometryForBothLayouts) {
  ModelConfig config = *PresetConfig("small");
  for (KvLayout layout : {KvLayout::kLayerMajor, KvLayout::kBlockMajor}) {
    KvGeometry geometry(config, 7, layout);
    const DeviceGeometry dev = *MakeDeviceGeometry(geometry);
    for (BlockId b = 0; b < 7; ++b)
      for (int slot = 0; slot < config.block_size; ++slot)
        for (int layer = 0; layer < config.num_layers; ++layer)
          for (int head = 0; head < config.num_kv_heads; ++head)
            for (uint32_t kind = 0; kind < 2; ++kind)
              ASSERT_EQ(dev.RowOffset(b, slot, layer, head, kind),
                        geometry.RowOffset(b, slot, layer, head, kind))
                  << KvLayoutName(layout) << " block " << b << " slot " << slot;
  }
}

TEST(DeviceGeometryTest, RejectsBlockSizeThatIsNotAPowerOfTwo) {
  ModelConfig config = *PresetConfig("tiny");
  config.block_size = 12;
  EXPECT_EQ(MakeDeviceGeometry(KvGeometry(config, 4, KvLayout::kLayerMajor)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::cuda
