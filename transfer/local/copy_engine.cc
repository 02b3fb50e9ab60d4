#include "transfer/local/copy_engine.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "common/clock.h"
#include "common/parallel_for.h"
#include "common/thread_name.h"
#include "transfer/stream_copy.h"

namespace pdserve::transfer::local {

bool CopyOps(const std::byte* src_base, std::byte* dst_base, std::span<const CopyOp> ops,
             const std::atomic<bool>* cancelled, bool stream) {
  for (const CopyOp& op : ops) {
    if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) {
      if (stream) StoreFence();
      return false;
    }
    if (stream) {
      StreamCopy(dst_base + op.dst, src_base + op.src, op.bytes);
    } else {
      std::memcpy(dst_base + op.dst, src_base + op.src, op.bytes);
    }
  }
  // Streaming stores are not ordered with later ones: fence before the caller counts this
  // share done (the last share's thread writes the notification).
  if (stream) StoreFence();
  return true;
}

namespace {

int64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Time this thread had copying to do but was not running, lap by lap: wall time minus the
// thread's CPU time. A memcpy neither sleeps nor blocks, so the difference is time the
// scheduler gave the core to another thread (or the hypervisor took). One thread-CPU clock
// read per lap (~0.5 us on the 2-core VM, against ~45 us for a 1 MiB chunk).
// The wake-up of an idle copy thread is not counted: the microbenchmark's transfers pay it too
// (they start with parked threads), so it is part of the yardstick, not of the host's load.
class WaitMeter {
 public:
  WaitMeter() : wall_(MonotonicNanos()), cpu_(ThreadCpuNanos()) {}
  int64_t Lap() {
    const int64_t wall = MonotonicNanos(), cpu = ThreadCpuNanos();
    const int64_t waited = (wall - wall_) - (cpu - cpu_);
    wall_ = wall;
    cpu_ = cpu;
    return std::max<int64_t>(0, waited);
  }

 private:
  int64_t wall_, cpu_;
};

}  // namespace

int DefaultCopyThreads() { return std::clamp(DefaultThreads(), 1, 4); }

CopyEngine::CopyEngine(int threads) : queues_(std::max(1, threads)) {
  for (size_t i = 0; i < queues_.size(); ++i) workers_.emplace_back([this, i] {
      NameThisThread("kv-copy");
      Work(i);
    });
}

CopyEngine::~CopyEngine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

int CopyEngine::SharesFor(uint64_t bytes, int threads) {
  if (bytes <= kInlineBytes) return 0;
  return static_cast<int>(
      std::clamp<uint64_t>(bytes / kMinShareBytes, 1, static_cast<uint64_t>(std::max(1, threads))));
}

bool CopyEngine::Run(std::shared_ptr<CopyJob> job) {
  const uint64_t total = TotalBytes(job->ops);
  const int shares = SharesFor(total);
  if (shares == 0) {
    const bool copied = CopyOps(job->src_base, job->dst_base, job->ops, job->cancelled.get(), job->stream);
    if (job->done) job->done(!copied || (job->cancelled && job->cancelled->load()));
    return true;
  }
  if (total > kCallerShareMaxBytes) {
    auto chunked = std::make_shared<Chunked>();
    chunked->chunks = CutShares(job->ops, static_cast<int>((total + kChunkBytes - 1) / kChunkBytes));
    auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(chunked->chunks.size()));
    absl::MutexLock lock(&mu_);
    for (int k = 0; k < shares; ++k) {
      queues_[(next_worker_ + k) % queues_.size()].push_back({job, remaining, {}, chunked});
    }
    next_worker_ += shares;
    return false;
  }
  std::vector<Share> cut;
  for (std::vector<CopyOp>& pieces : CutShares(job->ops, shares)) {
    cut.push_back({job, nullptr, std::move(pieces), nullptr});
  }
  // Rounding can leave fewer shares than planned: count what was cut.
  auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(cut.size()));
  // A job cut in several shares of at most kCallerShareMaxBytes in all: the caller copies share
  // 0 itself instead of handing it to a thread and sleeping until a batch completes (one
  // hand-off fewer per batch, and the caller's core works, as in memcpy's own baseline).
  const bool caller_copies = cut.size() >= 2 && total <= kCallerShareMaxBytes;
  Share mine;
  {
    absl::MutexLock lock(&mu_);
    // Share i of every job goes to worker i (a lone share to the next worker in turn): a pool
    // region that a worker copied last time is still in its core's cache, where a shared queue
    // would hand it to whichever worker is free (2 MiB batches ran at half the speed of the
    // same copies on fixed threads).
    const size_t first = cut.size() == 1 ? next_worker_++ % queues_.size() : 0;
    for (size_t k = 0; k < cut.size(); ++k) {
      cut[k].remaining = remaining;
      if (caller_copies && k == 0) {
        mine = std::move(cut[k]);
      } else {
        queues_[(first + k) % queues_.size()].push_back(std::move(cut[k]));
      }
    }
  }
  if (caller_copies) {
    WaitMeter meter;
    const bool cancelled = !CopyOps(job->src_base, job->dst_base, mine.pieces, job->cancelled.get(),
                                   job->stream);
    job->waited_ns.fetch_add(meter.Lap(), std::memory_order_relaxed);
    if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1 && job->done) {
      job->done(cancelled || (job->cancelled && job->cancelled->load()));
    }
  }
  return false;
}

void CopyEngine::Work(size_t worker) {
  for (;;) {
    Share share;
    {
      absl::MutexLock lock(&mu_);
      std::deque<Share>& queue = queues_[worker];
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue.empty()) return;  // stopping and drained
      share = std::move(queue.front());
      queue.pop_front();
    }
    if (share.chunked) {
      TakeChunks(share);
      continue;
    }
    CopyJob& job = *share.job;
    WaitMeter meter;
    const bool cancelled =
        !CopyOps(job.src_base, job.dst_base, share.pieces, job.cancelled.get(), job.stream);
    job.waited_ns.fetch_add(meter.Lap(), std::memory_order_relaxed);
    Finish(job, *share.remaining, 1, cancelled);
  }
}

void CopyEngine::TakeChunks(const Share& share) {
  CopyJob& job = *share.job;
  Chunked& chunked = *share.chunked;
  WaitMeter meter;
  for (;;) {
    const size_t k = chunked.next.fetch_add(1, std::memory_order_relaxed);
    if (k >= chunked.chunks.size()) return;
    const bool cancelled =
        !CopyOps(job.src_base, job.dst_base, chunked.chunks[k], job.cancelled.get(), job.stream);
    // Before Finish: the last chunk's Finish runs done, which reads the total.
    job.waited_ns.fetch_add(meter.Lap(), std::memory_order_relaxed);
    Finish(job, *share.remaining, 1, cancelled);
  }
}

void CopyEngine::Finish(CopyJob& job, std::atomic<int>& remaining, int copied, bool cancelled) {
  if (remaining.fetch_sub(copied, std::memory_order_acq_rel) == copied && job.done) {
    job.done(cancelled || (job.cancelled && job.cancelled->load()));
  }
}

}  // namespace pdserve::transfer::local
