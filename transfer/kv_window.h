#pragma once

// Zero-copy KV: the physical limit of a same-host move is no move. A sender whose backend maps
// the receiving pool (local: POSIX shared memory) opens a window onto exactly the blocks the
// receiver reserved for one request; its kernels write the K/V rows there in place, and the
// "transfer" is the notification alone (Announce).
//
// The window is the only way to that pool: it is built from the reserved block ids and refuses
// any other block (PermissionDenied, and the access function does not run), so that a sender bug
// or a stale block table cannot scribble over another request's KV. The receiver's checks stay
// as they are: it reads every byte when the notification arrives (the synthetic model's check),
// and its fence keeps the blocks until the sender says the writes ended (a window counts as
// submitted from its first write, prefill_worker/item_fence.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "kvcache/kv_cache.h"

namespace pdserve::transfer {

using TransferId = uint64_t;

// A peer's pool mapped into this process, seen as a pool's memory by a window's view: the
// backend's peer entry owns the mapping (and the view keeps the entry alive).
class BorrowedKvMemory final : public KvMemory {
 public:
  BorrowedKvMemory(std::byte* data, size_t size, MemoryKind kind, int device = -1)
      : data_(data), size_(size), kind_(kind), device_(device) {}
  std::byte* data() const override { return data_; }
  size_t size() const override { return size_; }
  MemoryKind kind() const override { return kind_; }
  int device() const override { return device_; }

 private:
  std::byte* data_;
  size_t size_;
  MemoryKind kind_;
  int device_;
};

class KvWriteWindow {
 public:
  // Reads or writes rows of `blocks` (a subset of the window's, in the caller's order) in `pool`.
  using Access =
      std::function<absl::Status(const KvCache& pool, std::span<const BlockId> blocks)>;
  // Sends the notification once the writes are done; a batch of 0 bytes, waited for like any.
  using Announcer = std::function<absl::StatusOr<TransferId>(const std::string& notification)>;

  // `pool` is a view of the peer's pool (its allocator unused; the shared_ptr keeps the mapping
  // alive). InvalidArgument for no blocks, a block outside the pool or one named twice.
  static absl::StatusOr<std::unique_ptr<KvWriteWindow>> Open(std::shared_ptr<const KvCache> pool,
                                                             std::span<const BlockId> reserved,
                                                             Announcer announce);

  // The reserved blocks, in logical order.
  std::span<const BlockId> blocks() const { return reserved_; }
  // Runs `access` on `blocks`, each of which must be reserved (PermissionDenied otherwise, and
  // nothing runs).
  absl::Status Use(std::span<const BlockId> blocks, const Access& access) const;
  absl::StatusOr<TransferId> Announce(const std::string& notification) const;
  // Bytes of the reserved blocks (what a copy would have moved).
  uint64_t bytes() const;

 private:
  KvWriteWindow(std::shared_ptr<const KvCache> pool, std::vector<BlockId> reserved,
                Announcer announce);

  std::shared_ptr<const KvCache> pool_;
  std::vector<BlockId> reserved_;
  absl::flat_hash_set<BlockId> allowed_;
  Announcer announce_;
};

}  // namespace pdserve::transfer
