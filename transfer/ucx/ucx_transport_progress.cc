// The progress thread and the commands caller threads hand it: it runs their commands, drives
// the worker and checks peer liveness, holding worker_mu_ for one turn at a time; idle, it
// sleeps on the worker's event fd (or polls), and Post / inline batches wake it.
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <deque>

#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {
namespace {

const absl::Duration kCommandTimeout = absl::Seconds(30);
// After activity the thread keeps polling this long before it sleeps: a stream of batches
// never pays for a wake-up.
constexpr int64_t kSpinNs = 200'000;
constexpr int kIdleSleepMs = 100;  // bounded sleep: keepalive runs from progress
constexpr int64_t kLivenessCheckNs = 100'000'000;

}  // namespace

// ---- commands from caller threads ----

void UcxEngine::PostCommand(std::function<void()> command) {
  {
    std::lock_guard lock(command_mu_);
    commands_.push_back(std::move(command));
  }
  // An awake progress thread finds the command on its next turn: the eventfd write (and the
  // read after it) is a syscall pair per batch that only a sleeping thread needs. Sleep()
  // sets sleeping_ before it looks at the queue a last time, so one side always sees the other.
  Wake();
}

void UcxEngine::Wake() {
  if (sleeping_.load()) {
    const uint64_t one = 1;
    (void)!write(command_fd_, &one, sizeof(one));
  }
}

// Runs `fn` on the progress thread and returns its status (outer: the wait itself failed).
absl::StatusOr<absl::Status> UcxEngine::RunOnWorker(std::function<absl::Status()> fn) {
  auto done = std::make_shared<absl::Notification>();
  auto result = std::make_shared<absl::Status>();
  PostCommand([fn = std::move(fn), done, result] {
    *result = fn();
    done->Notify();
  });
  if (!done->WaitForNotificationWithTimeout(kCommandTimeout)) {
    return absl::DeadlineExceededError("UCX progress thread did not answer");
  }
  return *result;
}

// ---- the progress thread ----

// One turn holds worker_mu_ (commands, progress, liveness); the yield and the sleep do not,
// so that submitting threads can issue inline batches in between.
int64_t UcxEngine::ProgressDelayNs() const {
  return progress_delay_ready_.load(std::memory_order_acquire) ? progress_delay_.ReadNs() : -1;
}

void UcxEngine::Loop() {
  progress_delay_ = ThreadRunDelay::OfCallingThread();
  progress_tid_.store(ThreadRunDelay::CallingThreadId(), std::memory_order_release);
  progress_delay_ready_.store(true, std::memory_order_release);
  int64_t last_activity = MonotonicNanos();
  for (;;) {
    std::deque<std::function<void()>> commands;
    bool progressed = false;
    bool idle = false;
    const int64_t now = MonotonicNanos();
    {
      std::lock_guard<std::mutex> worker(worker_mu_);
      {
        std::lock_guard lock(command_mu_);
        commands.swap(commands_);
      }
      for (auto& command : commands) command();
      if (stopping_) break;
      progressed = !commands.empty();
      while (ucp_worker_progress(worker_) != 0) progressed = true;
      if (!device_pending_.empty() && PollDeviceCopies()) progressed = true;
      if (now - last_liveness_check_ > kLivenessCheckNs) {
        last_liveness_check_ = now;
        for (auto& [id, peer] : peers_) CheckAlive(*peer);
      }
      idle = batches_.empty();
    }
    if (progressed) {
      last_activity = now;
      continue;
    }
    // Nothing to do this turn: let the submitting thread (or the peer process, on a small
    // host) have the core instead of spinning against it.
    sched_yield();
    if (!idle) {
      last_activity = now;
      continue;
    }
    if (now - last_activity < kSpinNs) continue;
    Sleep();
    last_activity = MonotonicNanos();
  }
  std::lock_guard<std::mutex> worker(worker_mu_);
  Shutdown();
}

void UcxEngine::Sleep() {
  sleeping_.store(true);
  {
    std::lock_guard<std::mutex> worker(worker_mu_);
    bool busy = !batches_.empty();  // an inline batch left in flight since the last turn
    {
      std::lock_guard lock(command_mu_);
      busy = busy || !commands_.empty();
    }
    if (busy || (can_sleep_ && ucp_worker_arm(worker_) == UCS_ERR_BUSY)) {
      sleeping_.store(false);
      return;
    }
  }
  if (can_sleep_) {
    epoll_event events[2];
    epoll_wait(epoll_fd_, events, 2, kIdleSleepMs);
  } else {
    pollfd p{command_fd_, POLLIN, 0};
    poll(&p, 1, 1);
  }
  sleeping_.store(false);
  uint64_t drained;
  (void)!read(command_fd_, &drained, sizeof(drained));
}

// Progresses until `request` completes or the deadline passes; returns its status.
ucs_status_t UcxEngine::WaitRequest(ucs_status_ptr_t request, int64_t timeout_ns) {
  if (request == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
  const int64_t deadline = MonotonicNanos() + timeout_ns;
  ucs_status_t status;
  while ((status = ucp_request_check_status(request)) == UCS_INPROGRESS &&
         MonotonicNanos() < deadline) {
    ucp_worker_progress(worker_);
  }
  if (status == UCS_INPROGRESS) {
    ucp_request_cancel(worker_, request);
    while ((status = ucp_request_check_status(request)) == UCS_INPROGRESS) {
      ucp_worker_progress(worker_);
    }
    if (status == UCS_OK || status == UCS_ERR_CANCELED) status = UCS_ERR_TIMED_OUT;
  }
  ucp_request_free(request);
  return status;
}

void UcxEngine::Shutdown() {
  for (auto& [id, peer] : peers_) {
    peer->error = absl::CancelledError("KV transport shutting down");
    ClosePeerState(*peer);
  }
  peers_.clear();
  // Cancelled requests have run their callbacks inside the closes.
  while (ucp_worker_progress(worker_) != 0) {
  }
  WaitDeviceCopies();
  PollDeviceCopies();  // every copy ended: each batch finishes (its peer closed: Cancelled)
  ReleaseDeviceStream();
}

}  // namespace pdserve::transfer::ucx
