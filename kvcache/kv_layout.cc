#include "kvcache/kv_layout.h"

#include "absl/strings/str_cat.h"

namespace pdserve {

absl::StatusOr<KvLayout> ParseKvLayout(std::string_view name) {
  if (name == "layer-major" || name == "layer") return KvLayout::kLayerMajor;
  if (name == "block-major" || name == "block") return KvLayout::kBlockMajor;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown KV layout '", std::string(name), "' (expected layer-major or block-major)"));
}

std::string_view KvLayoutName(KvLayout layout) {
  return layout == KvLayout::kLayerMajor ? "layer-major" : "block-major";
}

KvGeometry::KvGeometry(const ModelConfig& config, uint32_t num_blocks, KvLayout layout)
    : config_(config),
      num_blocks_(num_blocks),
      layout_(layout),
      row_bytes_(config.RowBytes()),
      fragment_bytes_(int64_t{2} * config.num_kv_heads * config.block_size * config.RowBytes()) {}

int64_t KvGeometry::FragmentOffset(BlockId block, int f) const {
  return layout_ == KvLayout::kLayerMajor ? LayerFragmentOffset(block, f)
                                          : int64_t{block} * block_bytes();
}


}  // namespace pdserve
