#include "transfer/kv_window.h"

#include "absl/strings/str_cat.h"

namespace pdserve::transfer {

absl::StatusOr<std::unique_ptr<KvWriteWindow>> KvWriteWindow::Open(
    std::shared_ptr<const KvCache> pool, std::span<const BlockId> reserved, Announcer announce) {
  if (pool == nullptr || !announce) {
    return absl::FailedPreconditionError("zero-copy window: no peer pool to open it on");
  }
  if (reserved.empty()) return absl::InvalidArgumentError("zero-copy window of no blocks");
  const uint32_t num_blocks = pool->geometry().num_blocks();
  absl::flat_hash_set<BlockId> allowed;
  allowed.reserve(reserved.size());
  for (BlockId b : reserved) {
    if (b >= num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "zero-copy window: block ", b, " is outside the peer's pool of ", num_blocks, " blocks"));
    }
    if (!allowed.insert(b).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("zero-copy window: block ", b, " is named twice"));
    }
  }
  auto* w = new KvWriteWindow(std::move(pool), {reserved.begin(), reserved.end()},
                              std::move(announce));
  w->allowed_ = std::move(allowed);
  return std::unique_ptr<KvWriteWindow>(w);
}

KvWriteWindow::KvWriteWindow(std::shared_ptr<const KvCache> pool, std::vector<BlockId> reserved,
                             Announcer announce)
    : pool_(std::move(pool)), reserved_(std::move(reserved)), announce_(std::move(announce)) {}

absl::Status KvWriteWindow::Use(std::span<const BlockId> blocks, const Access& access) const {
  for (BlockId b : blocks) {
    if (!allowed_.contains(b)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "zero-copy window: block ", b, " is not one of the ", reserved_.size(),
          " blocks reserved for this request; the write is refused"));
    }
  }
  return access(*pool_, blocks);
}

absl::StatusOr<TransferId> KvWriteWindow::Announce(const std::string& notification) const {
  return announce_(notification);
}

uint64_t KvWriteWindow::bytes() const {
  return reserved_.size() * static_cast<uint64_t>(pool_->geometry().block_bytes());
}

}  // namespace pdserve::transfer
