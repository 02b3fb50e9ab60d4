#include "transfer/local/copy_engine.h"

#include <algorithm>
#include <cstring>

namespace pdserve::transfer::local {

bool CopyOps(const std::byte* src_base, std::byte* dst_base, std::span<const CopyOp> ops,
             const std::atomic<bool>* cancelled) {
  for (const CopyOp& op : ops) {
    if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) return false;
    std::memcpy(dst_base + op.dst, src_base + op.src, op.bytes);
  }
  return true;
}

CopyEngine::CopyEngine(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Work(); });
}

CopyEngine::~CopyEngine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

int CopyEngine::SharesFor(uint64_t bytes) const {
  if (bytes <= kInlineBytes) return 0;
  return static_cast<int>(
      std::clamp<uint64_t>(bytes / kMinShareBytes, 1, static_cast<uint64_t>(workers_.size())));
}

bool CopyEngine::Run(std::shared_ptr<CopyJob> job) {
  const uint64_t total = TotalBytes(job->ops);
  const int shares = SharesFor(total);
  if (shares == 0) {
    const bool copied = CopyOps(job->src_base, job->dst_base, job->ops, job->cancelled.get());
    if (job->done) job->done(!copied || (job->cancelled && job->cancelled->load()));
    return true;
  }
  auto remaining = std::make_shared<std::atomic<int>>(shares);
  absl::MutexLock lock(&mu_);
  if (shares == 1) {
    queue_.push_back({job, remaining, job->ops});
    return false;
  }
  const uint64_t per_share = (total + shares - 1) / shares;
  Share current{job, remaining, {}};
  uint64_t in_current = 0;
  for (CopyOp op : job->ops) {
    while (op.bytes > 0) {
      const uint64_t take = std::min(op.bytes, per_share - in_current);
      current.pieces.push_back({op.src, op.dst, take});
      op.src += take;
      op.dst += take;
      op.bytes -= take;
      in_current += take;
      if (in_current == per_share) {
        queue_.push_back(std::move(current));
        current = Share{job, remaining, {}};
        in_current = 0;
      }
    }
  }
  if (!current.pieces.empty()) queue_.push_back(std::move(current));
  // Rounding can leave fewer shares than planned: fix the count before anyone finishes.
  const int queued = static_cast<int>(std::count_if(
      queue_.begin(), queue_.end(), [&](const Share& s) { return s.job == job; }));
  remaining->store(queued);
  return false;
}

void CopyEngine::Work() {
  for (;;) {
    Share share;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      share = std::move(queue_.front());
      queue_.pop_front();
    }
    CopyJob& job = *share.job;
    const bool cancelled =
        !CopyOps(job.src_base, job.dst_base, share.pieces, job.cancelled.get());
    if (share.remaining->fetch_sub(1, std::memory_order_acq_rel) == 1 && job.done) {
      job.done(cancelled || (job.cancelled && job.cancelled->load()));
    }
  }
}

}  // namespace pdserve::transfer::local
