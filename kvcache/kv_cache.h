#pragma once

#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kvcache/block_allocator.h"
#include "kvcache/kv_layout.h"
#include "kvcache/kv_memory.h"

namespace pdserve {

// A paged KV pool: one contiguous memory region cut into fixed-size blocks, the block
// allocator that hands them out, and the layout that says where each row lives.
class KvCache {
 public:
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const ModelConfig& config,
                                                         uint32_t num_blocks, KvLayout layout,
                                                         std::unique_ptr<KvMemory> memory);
  // A pool in private host memory.
  static absl::StatusOr<std::unique_ptr<KvCache>> CreateInHostMemory(const ModelConfig& config,
                                                                     uint32_t num_blocks,
                                                                     KvLayout layout);

  const KvGeometry& geometry() const { return geometry_; }
  const ModelConfig& config() const { return geometry_.config(); }
  BlockAllocator& allocator() { return allocator_; }
  const BlockAllocator& allocator() const { return allocator_; }
  KvMemory& memory() const { return *memory_; }
  // Kept, not asked of the memory (a virtual call) for every row.
  std::byte* base() const { return base_; }

  std::byte* RowPtr(BlockId block, int slot, int layer, int head, uint32_t kind) const {
    return base() + geometry_.RowOffset(block, slot, layer, head, kind);
  }

 private:
  KvCache(const ModelConfig& config, uint32_t num_blocks, KvLayout layout,
          std::unique_ptr<KvMemory> memory);

  KvGeometry geometry_;
  BlockAllocator allocator_;
  std::unique_ptr<KvMemory> memory_;
  std::byte* base_;  // memory_->data(): a mapping never moves
};

// Logical block i of a sequence is physical block table[i]; position p is slot p % block_size
// of logical block p / block_size.
struct BlockTable {
  std::vector<BlockId> blocks;

  uint32_t size() const { return static_cast<uint32_t>(blocks.size()); }
  std::span<const BlockId> span() const { return blocks; }
};

}  // namespace pdserve
