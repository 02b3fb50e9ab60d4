#include "kvcache/block_allocator.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace pdserve {

BlockAllocator::BlockAllocator(uint32_t num_blocks) : ref_counts_(num_blocks, 0) {
  free_.reserve(num_blocks);
  for (uint32_t i = num_blocks; i > 0; --i) free_.push_back(i - 1);
}

absl::StatusOr<std::vector<BlockId>> BlockAllocator::Allocate(uint32_t n) {
  absl::MutexLock lock(&mu_);
  if (n > free_.size()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV pool exhausted: need ", n,
                                                     " blocks, ", free_.size(), " free of ",
                                                     ref_counts_.size()));
  }
  std::vector<BlockId> out(free_.end() - n, free_.end());
  std::reverse(out.begin(), out.end());
  free_.resize(free_.size() - n);
  for (BlockId b : out) ref_counts_[b] = 1;
  return out;
}

absl::Status BlockAllocator::ValidateHeld(std::span<const BlockId> blocks,
                                          uint32_t min_extra) const {
  absl::flat_hash_map<BlockId, uint32_t> uses;
  for (BlockId b : blocks) {
    if (b >= ref_counts_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b, " out of range (pool has ", ref_counts_.size(), ")"));
    }
    if (ref_counts_[b] == 0) {
      return absl::FailedPreconditionError(absl::StrCat("block ", b, " is not allocated"));
    }
    if (min_extra > 0 && ++uses[b] > ref_counts_[b]) {
      return absl::FailedPreconditionError(
          absl::StrCat("block ", b, " released more often than referenced"));
    }
  }
  return absl::OkStatus();
}

absl::Status BlockAllocator::AddRef(std::span<const BlockId> blocks) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = ValidateHeld(blocks, 0); !s.ok()) return s;
  for (BlockId b : blocks) ++ref_counts_[b];
  return absl::OkStatus();
}

absl::Status BlockAllocator::Free(std::span<const BlockId> blocks) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = ValidateHeld(blocks, 1); !s.ok()) return s;
  for (BlockId b : blocks) {
    if (--ref_counts_[b] == 0) free_.push_back(b);
  }
  return absl::OkStatus();
}

uint32_t BlockAllocator::num_free() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(free_.size());
}

uint32_t BlockAllocator::RefCount(BlockId block) const {
  absl::MutexLock lock(&mu_);
  return block < ref_counts_.size() ? ref_counts_[block] : 0;
}

absl::Status BlockAllocator::CheckAllFree() const {
  absl::MutexLock lock(&mu_);
  if (free_.size() == ref_counts_.size()) return absl::OkStatus();
  std::string leaked;
  int shown = 0;
  for (BlockId b = 0; b < ref_counts_.size() && shown < 8; ++b) {
    if (ref_counts_[b] != 0) {
      absl::StrAppend(&leaked, shown++ ? ", " : "", b, "(ref ", ref_counts_[b], ")");
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(ref_counts_.size() - free_.size(), " of ", ref_counts_.size(),
                   " KV blocks still held: ", leaked));
}

}  // namespace pdserve
