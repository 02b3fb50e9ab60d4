// DecodeEngine: reservation epochs and the quarantine of released blocks whose KV may still land
// (fenced KV; decode_engine.h says when blocks enter and leave it).
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "decode_worker/decode_engine.h"
#include "common/clock.h"

namespace pdserve::decode {

absl::StatusOr<DecodeLease> DecodeEngine::Lease(const std::string& request_id) const {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(request_id);
  if (it == requests_.end()) {
    return absl::NotFoundError(absl::StrCat("request ", request_id, " holds no reservation"));
  }
  const Request& r = it->second;
  return DecodeLease{.epoch = r.epoch, .kv_landed = r.kv_landed || r.state != State::kAllocated};
}

absl::Status DecodeEngine::KvLanded(const std::string& request_id, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (auto it = requests_.find(request_id); it != requests_.end() && it->second.epoch == epoch) {
    it->second.kv_landed = true;
    return absl::OkStatus();
  }
  if (auto q = quarantine_.find(epoch); q != quarantine_.end() && q->second.id == request_id) {
    LiftLocked(epoch);
    return absl::AbortedError(absl::StrCat("request ", request_id, ": its KV landed after its ",
                                           "reservation (epoch ", epoch,
                                           ") was released; the blocks are free again"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("request ", request_id, ": a KV notification for epoch ", epoch,
                   ", which is not a reservation of this worker's (stale or forged); refused"));
}

std::vector<std::string> DecodeEngine::ExpireAllocations(absl::Duration lease) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> expired;
  const absl::Time now = SteadyNow();
  for (const auto& [id, r] : requests_) {
    if (r.state == State::kAllocated && now - r.allocated_at > lease) expired.push_back(id);
  }
  for (const std::string& id : expired) {
    // Whoever was to write it is unknown here: only the notification or the lease frees it.
    if (requests_.at(id).kv_landed) {
      FreeLocked(id);
    } else {
      QuarantineLocked(id, {});
    }
  }
  return expired;
}

std::vector<LiftedQuarantine> DecodeEngine::SweepQuarantine(
    absl::Duration lease,
    const std::function<bool(const std::string& request_id, uint64_t epoch)>& notified,
    const std::function<bool(int32_t pid)>& process_alive) {
  struct Candidate {
    uint64_t epoch;
    std::string id;
    int32_t pid;
    bool expired;
    LiftedQuarantine::Why why = LiftedQuarantine::Why::kNotified;
  };
  std::vector<Candidate> candidates;
  const absl::Time now = SteadyNow();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [epoch, q] : quarantine_) {
      candidates.push_back({epoch, q.id, q.writer_pid, now - q.since > lease});
    }
  }
  // The callbacks wait on the transport and read /proc: outside the lock, which every step of
  // the loop thread takes.
  std::vector<Candidate> lift;
  for (Candidate& c : candidates) {
    if (notified && notified(c.id, c.epoch)) {
      c.why = LiftedQuarantine::Why::kNotified;
    } else if (c.pid > 0 && process_alive && !process_alive(c.pid)) {
      c.why = LiftedQuarantine::Why::kWriterGone;
    } else if (c.expired) {
      c.why = LiftedQuarantine::Why::kLeaseExpired;
    } else {
      continue;
    }
    lift.push_back(std::move(c));
  }
  std::vector<LiftedQuarantine> lifted;
  absl::MutexLock lock(&mu_);
  for (const Candidate& c : lift) {
    auto q = quarantine_.find(c.epoch);
    if (q == quarantine_.end()) continue;  // a Release with writer_fenced came meanwhile
    lifted.push_back({.request_id = q->second.id,
                      .epoch = c.epoch,
                      .blocks = static_cast<uint32_t>(q->second.blocks.size()),
                      .writer = q->second.writer,
                      .why = c.why});
    LiftLocked(c.epoch);
  }
  return lifted;
}

DecodeCapacity DecodeEngine::Capacity() const {
  absl::MutexLock lock(&mu_);
  DecodeCapacity c;
  c.total_blocks = cache_.allocator().num_blocks();
  c.free_blocks = cache_.allocator().num_free();
  c.quarantined_blocks = quarantined_blocks_;
  c.quarantined_requests = static_cast<uint32_t>(quarantine_.size());
  c.reserved_blocks = reserved_total_;
  c.running_requests = running_count_;
  c.allocated_requests = static_cast<uint32_t>(requests_.size()) - running_count_;
  c.finished_requests = finished_;
  return c;
}

void DecodeEngine::QuarantineLocked(const std::string& id, const ReleaseFence& fence) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Request& r = it->second;
  // The reservation's blocks not yet taken go back at once: nobody can write those.
  unallocated_reserved_ -= r.reserved - static_cast<uint32_t>(r.blocks.size());
  reserved_total_ -= r.reserved;
  quarantined_blocks_ += static_cast<uint32_t>(r.blocks.size());
  ComponentLogger("decode")->debug(
      "request {}: released before its KV landed; {} blocks quarantined (epoch {}, writer {})",
      id, r.blocks.size(), r.epoch, fence.writer.empty() ? "unknown" : fence.writer);
  quarantine_[r.epoch] = Quarantined{.id = id,
                                     .blocks = std::move(r.blocks),
                                     .writer = fence.writer,
                                     .writer_pid = fence.writer_pid,
                                     .since = SteadyNow()};
  live_epochs_.erase(it->second.epoch);
  requests_.erase(it);
}

bool DecodeEngine::FenceQuarantinedLocked(const std::string& id, const ReleaseFence& fence) {
  auto q = quarantine_.end();
  if (fence.epoch != 0) {
    q = quarantine_.find(fence.epoch);
    if (q != quarantine_.end() && q->second.id != id) q = quarantine_.end();
  } else {
    for (auto it = quarantine_.begin(); it != quarantine_.end(); ++it) {
      if (it->second.id == id) q = it;
    }
  }
  if (q == quarantine_.end()) return false;
  if (fence.writer_fenced) {
    LiftLocked(q->first);
    return true;
  }
  // The router knows the writer better than the path that quarantined the blocks did.
  if (!fence.writer.empty()) q->second.writer = fence.writer;
  if (fence.writer_pid > 0) q->second.writer_pid = fence.writer_pid;
  return true;
}

void DecodeEngine::LiftLocked(uint64_t epoch) {
  auto q = quarantine_.find(epoch);
  if (q == quarantine_.end()) return;
  quarantined_blocks_ -= static_cast<uint32_t>(q->second.blocks.size());
  ReturnBlocksLocked(q->second.id, q->second.blocks);
  quarantine_.erase(q);
}

void DecodeEngine::ReturnBlocksLocked(const std::string& id, const std::vector<BlockId>& blocks) {
  PoisonLocked(blocks);
  if (absl::Status freed = cache_.allocator().Free(blocks); !freed.ok()) {
    ComponentLogger("decode")->error("request {}: freeing its blocks failed: {}", id,
                                     freed.ToString());
  }
}

}  // namespace pdserve::decode
