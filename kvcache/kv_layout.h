#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace pdserve {

using BlockId = uint32_t;

// Where a block's bytes sit in the pool region.
//  - kLayerMajor: one region per layer, blocks contiguous inside it (vLLM's shape). A block is
//    num_layers fragments, one per layer; consecutive blocks of one layer are contiguous.
//  - kBlockMajor: one block holds all layers' K and V contiguously: one fragment per block.
// Inside a fragment (one block, one layer): [K|V][kv head][slot][dim].
enum class KvLayout { kLayerMajor, kBlockMajor };

absl::StatusOr<KvLayout> ParseKvLayout(std::string_view name);
std::string_view KvLayoutName(KvLayout layout);

// Byte offsets of a paged KV pool of `num_blocks` blocks of `config`'s shape.
class KvGeometry {
 public:
  KvGeometry(const ModelConfig& config, uint32_t num_blocks, KvLayout layout);

  const ModelConfig& config() const { return config_; }
  uint32_t num_blocks() const { return num_blocks_; }
  KvLayout layout() const { return layout_; }

  int64_t row_bytes() const { return row_bytes_; }
  // One block of one layer: K and V of every KV head for block_size slots.
  int64_t fragment_bytes() const { return fragment_bytes_; }
  int64_t block_bytes() const { return fragment_bytes_ * config_.num_layers; }
  int64_t region_bytes() const { return block_bytes() * num_blocks_; }
  int fragments_per_block() const {
    return layout_ == KvLayout::kLayerMajor ? config_.num_layers : 1;
  }
  // Bytes of one fragment as the transfer layer sees it (a whole block when block-major).
  int64_t transfer_fragment_bytes() const {
    return layout_ == KvLayout::kLayerMajor ? fragment_bytes_ : block_bytes();
  }

  // Offset of transfer fragment `f` (0 <= f < fragments_per_block()) of `block`.
  int64_t FragmentOffset(BlockId block, int f) const;
  // Offset of the row of (slot in block, layer, kv head, K|V).
  // Inline: the CPU kernels and the mock's generation and checks call it once per row.
  int64_t RowOffset(BlockId block, int slot, int layer, int head, uint32_t kind) const {
    const int64_t within =
        ((int64_t{kind} * config_.num_kv_heads + head) * config_.block_size + slot) * row_bytes_;
    return LayerFragmentOffset(block, layer) + within;
  }

 private:
  int64_t LayerFragmentOffset(BlockId block, int layer) const {
    if (layout_ == KvLayout::kLayerMajor) {
      return (int64_t{layer} * num_blocks_ + block) * fragment_bytes_;
    }
    return int64_t{block} * block_bytes() + int64_t{layer} * fragment_bytes_;
  }

  ModelConfig config_;
  uint32_t num_blocks_;
  KvLayout layout_;
  int64_t row_bytes_;
  int64_t fragment_bytes_;
};

}  // namespace pdserve
