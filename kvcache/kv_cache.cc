#include "kvcache/kv_cache.h"

#include "absl/strings/str_cat.h"

namespace pdserve {

KvCache::KvCache(const ModelConfig& config, uint32_t num_blocks, KvLayout layout,
                 std::unique_ptr<KvMemory> memory)
    : geometry_(config, num_blocks, layout),
      allocator_(num_blocks),
      memory_(std::move(memory)),
      base_(memory_->data()) {}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const ModelConfig& config,
                                                         uint32_t num_blocks, KvLayout layout,
                                                         std::unique_ptr<KvMemory> memory) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (num_blocks == 0) return absl::InvalidArgumentError("KV pool needs at least one block");
  KvGeometry geometry(config, num_blocks, layout);
  if (memory == nullptr || memory->size() < static_cast<size_t>(geometry.region_bytes())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV memory of ", memory ? memory->size() : 0, " bytes is smaller than ", num_blocks,
        " blocks of ", geometry.block_bytes(), " bytes"));
  }
  return std::unique_ptr<KvCache>(new KvCache(config, num_blocks, layout, std::move(memory)));
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::CreateInHostMemory(const ModelConfig& config,
                                                                     uint32_t num_blocks,
                                                                     KvLayout layout) {
  KvGeometry geometry(config, num_blocks, layout);
  absl::StatusOr<std::unique_ptr<KvMemory>> memory =
      AllocateHostMemory(static_cast<size_t>(geometry.region_bytes()));
  if (!memory.ok()) return memory.status();
  return Create(config, num_blocks, layout, std::move(*memory));
}

}  // namespace pdserve
