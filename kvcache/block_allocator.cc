#include "kvcache/block_allocator.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace pdserve {

BlockAllocator::BlockAllocator(uint32_t num_blocks)
    : num_blocks_(num_blocks),
      ref_counts_(num_blocks, 0), free_bits_((num_blocks + 63) / 64, 0), num_free_(num_blocks) {
  for (uint32_t i = 0; i < num_blocks; ++i) free_bits_[i / 64] |= uint64_t{1} << (i % 64);
}

absl::StatusOr<std::vector<BlockId>> BlockAllocator::Allocate(uint32_t n) {
  absl::MutexLock lock(&mu_);
  if (n > num_free_) {
    return absl::ResourceExhaustedError(absl::StrCat("KV pool exhausted: need ", n,
                                                     " blocks, ", num_free_, " free of ",
                                                     ref_counts_.size()));
  }
  std::vector<BlockId> out;
  out.reserve(n);
  if (n > 1) {
    if (const int64_t start = FirstFreeRunLocked(n); start >= 0) {
      for (uint32_t i = 0; i < n; ++i) {
        const auto b = static_cast<BlockId>(start + i);
        free_bits_[b / 64] &= ~(uint64_t{1} << (b % 64));
        out.push_back(b);
      }
    }
  }
  for (size_t w = 0; out.size() < n; ++w) {
    while (free_bits_[w] != 0 && out.size() < n) {
      const int bit = __builtin_ctzll(free_bits_[w]);
      free_bits_[w] &= free_bits_[w] - 1;
      out.push_back(static_cast<BlockId>(w * 64 + bit));
    }
  }
  num_free_ -= n;
  for (BlockId b : out) ref_counts_[b] = 1;
  return out;
}

int64_t BlockAllocator::FirstFreeRunLocked(uint32_t n) const {
  uint32_t run = 0;
  int64_t start = 0;
  for (size_t w = 0; w < free_bits_.size(); ++w) {
    const uint64_t bits = free_bits_[w];
    if (bits == 0) {
      run = 0;
      continue;
    }
    if (bits == ~uint64_t{0}) {
      if (run == 0) start = static_cast<int64_t>(w) * 64;
      run += 64;
      if (run >= n) return start;
      continue;
    }
    for (int b = 0; b < 64; ++b) {
      if ((bits >> b) & 1) {
        if (run == 0) start = static_cast<int64_t>(w) * 64 + b;
        if (++run >= n) return start;
      } else {
        run = 0;
      }
    }
  }
  return -1;
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
    if (--ref_counts_[b] == 0) {
      free_bits_[b / 64] |= uint64_t{1} << (b % 64);
      num_free_++;
    }
  }
  return absl::OkStatus();
}

uint32_t BlockAllocator::num_free() const {
  absl::MutexLock lock(&mu_);
  return num_free_;
}

uint32_t BlockAllocator::RefCount(BlockId block) const {
  absl::MutexLock lock(&mu_);
  return block < ref_counts_.size() ? ref_counts_[block] : 0;
}

absl::Status BlockAllocator::CheckAllFree() const {
  absl::MutexLock lock(&mu_);
  if (num_free_ == ref_counts_.size()) return absl::OkStatus();
  std::string leaked;
  int shown = 0;
  for (BlockId b = 0; b < ref_counts_.size() && shown < 8; ++b) {
    if (ref_counts_[b] != 0) {
      absl::StrAppend(&leaked, shown++ ? ", " : "", b, "(ref ", ref_counts_[b], ")");
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(ref_counts_.size() - num_free_, " of ", ref_counts_.size(),
                   " KV blocks still held: ", leaked));
}

}  // namespace pdserve
