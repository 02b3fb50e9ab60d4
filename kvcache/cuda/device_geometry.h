#pragma once

// KvGeometry's offset math as a plain struct that device code can use. Both layouts reduce to
//   block * block_stride + layer * layer_stride + kind * kind_stride + head * head_stride
//   + slot * row_bytes
// (layer-major: block_stride = fragment, layer_stride = num_blocks * fragment; block-major:
// block_stride = num_layers * fragment, layer_stride = fragment). MakeDeviceGeometry builds it
// from a KvGeometry, and a test checks it against KvGeometry::RowOffset for every row.

#include <cstdint>

#include "common/hd_macros.h"

namespace pdserve::cuda {

struct DeviceGeometry {
  int64_t block_stride = 0;
  int64_t layer_stride = 0;
  int64_t kind_stride = 0;
  int64_t head_stride = 0;
  int64_t row_bytes = 0;
  int32_t block_size = 0;
  int32_t block_shift = 0;  // log2(block_size)

  PDSERVE_HD int64_t RowOffset(uint32_t block, int slot, int layer, int head, uint32_t kind) const {
    return static_cast<int64_t>(block) * block_stride + layer * layer_stride +
           static_cast<int64_t>(kind) * kind_stride + head * head_stride + slot * row_bytes;
  }
};

}  // namespace pdserve::cuda
