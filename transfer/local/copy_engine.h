#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "transfer/copy_plan.h"

namespace pdserve::transfer::local {

// Copies each op from src_base + src to dst_base + dst (memcpy, or with `stream` StreamCopy
// and a store fence before returning, so that whoever announces the bytes afterwards announces
// them all); stops early and returns false once `cancelled` (may be null) is set.
bool CopyOps(const std::byte* src_base, std::byte* dst_base, std::span<const CopyOp> ops,
             const std::atomic<bool>* cancelled, bool stream = false);

// The copy threads a local transport starts when TransportOptions::copy_threads is 0: the CPUs
// this process may run on, 1 to 4. (Half of them was tried on the 2-core VM, so that a copy
// leaves a core to the workers' own work: a 64 MiB transfer at 16 req/s took no less time, 5.8
// ms, and one at 1 req/s took 4.2 ms instead of 3.6.)
int DefaultCopyThreads();

// A batch of memcpys between two mapped regions.
struct CopyJob {
  const std::byte* src_base = nullptr;
  std::byte* dst_base = nullptr;
  std::vector<CopyOp> ops;
  // Streaming stores (a batch larger than the cache; see transfer/stream_copy.h).
  bool stream = false;
  // Added up by the copy threads before the job's done runs: how long they had its bytes to
  // copy but were not running (TransferStats::copy_wait_ns). Jobs copied inline: 0.
  std::atomic<int64_t> waited_ns{0};
  // Set (e.g. by RemovePeer) to skip what has not been copied yet.
  std::shared_ptr<std::atomic<bool>> cancelled;
  // Runs once, on the thread that finished the job's last share.
  std::function<void(bool cancelled)> done;
};

// A fixed pool of copy threads, each with its own queue fed in submission order.
//  - A job of at most kInlineBytes is copied on the caller's thread inside Run: handing it to a
//    copy thread (queue, futex wake-up, a context switch on a busy 2-core host) costs more than
//    the copy itself, and the copy would run on one thread anyway.
//  - Up to kCallerShareMaxBytes a job is cut into one share per thread (by bytes, splitting
//    operations where needed); share i always goes to thread i (its region stays in that core's
//    cache from the last batch), except that the caller copies share 0 itself inside Run.
//  - A larger job is cut into chunks of kChunkBytes that every copy thread takes from in turn
//    until none is left: its source is cold anyway, and on a host whose cores the engines'
//    own work also wants, a fixed half per thread ends when the slower thread ends (a 64 MiB
//    request took 1.65x its quiet time at 4 req/s), where shared chunks let a free core take
//    over the busy one's part.

class CopyEngine {
 public:
  static constexpr uint64_t kInlineBytes = 256 * 1024;
  // Below this a share is not worth a second thread (wake-up costs more than the copy).
  static constexpr uint64_t kMinShareBytes = 512 * 1024;
  // Up to this, a job of several shares has its first share copied by the caller inside Run.
  static constexpr uint64_t kCallerShareMaxBytes = 4 * 1024 * 1024;
  // Above kCallerShareMaxBytes threads take chunks of this size from a shared cursor.
  static constexpr uint64_t kChunkBytes = 1024 * 1024;

  explicit CopyEngine(int threads);
  // Runs every queued job to the end, then joins.
  ~CopyEngine();
  CopyEngine(const CopyEngine&) = delete;
  CopyEngine& operator=(const CopyEngine&) = delete;

  // Copies `job` (inline when small, then `done` has run when Run returns) or queues it (a
  // mid-size job after copying its first share). Returns true when the job ran inline.
  bool Run(std::shared_ptr<CopyJob> job);
  int threads() const { return static_cast<int>(workers_.size()); }
  // How many threads copy a job of `bytes`: 0 = inline on the caller's thread.
  int SharesFor(uint64_t bytes) const { return SharesFor(bytes, threads()); }
  // The same rule for an engine of `threads` threads (bench transfer's like-for-like baseline).
  static int SharesFor(uint64_t bytes, int threads);

 private:
  // A large job's chunks, taken in order by whichever thread is free.
  struct Chunked {
    std::vector<std::vector<CopyOp>> chunks;
    std::atomic<size_t> next{0};
  };
  // Either fixed pieces, or (chunked set) a ticket to take chunks of a shared job; `remaining`
  // counts pieces or chunks not yet copied, and whoever copies the last runs the job's done.
  struct Share {
    std::shared_ptr<CopyJob> job;
    std::shared_ptr<std::atomic<int>> remaining;
    std::vector<CopyOp> pieces;
    std::shared_ptr<Chunked> chunked;
  };
  // Copies chunks of `share.chunked` until none is left to take.
  static void TakeChunks(const Share& share);
  static void Finish(CopyJob& job, std::atomic<int>& remaining, int copied, bool cancelled);
  void Work(size_t worker);

  absl::Mutex mu_;
  // One queue per worker (see Run); sized at construction, so only the deques change.
  std::vector<std::deque<Share>> queues_ ABSL_GUARDED_BY(mu_);
  size_t next_worker_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace pdserve::transfer::local
