#include <sys/eventfd.h>

#include <cerrno>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/thread_name.h"
#include "service/fast_lane.h"
#include "service/fast_lane_frames.h"

namespace pdserve::service {

using namespace fast_lane_internal;  // NOLINT: this file is the wire format's other half

absl::StatusOr<std::unique_ptr<FastLaneClient>> FastLaneClient::Connect(
    const std::string& address, const std::string& credential) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("fast lane socket");
  socklen_t len = 0;
  sockaddr_un addr = AbstractAddress(address, &len);
  Header h{};
  h.kind = kHello;
  std::string payload;
  SetReceiveTimeout(fd, kHelloTimeoutMs);
  // The credential goes only to a listener of this user (the abstract namespace has no file
  // permissions: another user could hold a name).
  if (address.empty() || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      !CheckPeerIsSameUser(fd).ok() || !WriteFrame(fd, h, credential) ||
      !ReadFrame(fd, kMaxHello, &h, &payload) || h.kind != kHelloOk) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("no fast lane at '", absl::CEscape(address),
                                               "' on this host (or it refused the credential)"));
  }
  // A frame that starts must end: a peer that stalls mid-frame breaks the connection.
  SetReceiveTimeout(fd, 5000);
  const int wake = ::eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    ::close(fd);
    return absl::InternalError("fast lane eventfd");
  }
  return std::unique_ptr<FastLaneClient>(new FastLaneClient(fd, wake));
}

FastLaneClient::FastLaneClient(int fd, int wake_fd) : fd_(fd), wake_fd_(wake_fd) {
  reader_ = std::thread([this] {
    NameThisThread("fl-client");
    ReadLoop();
  });
}

FastLaneClient::~FastLaneClient() {
  Shutdown();
  if (reader_.get_id() == std::this_thread::get_id()) {
    reader_.detach();  // destroyed by one of its own callbacks: it ends without touching us
  } else {
    reader_.join();
  }
  ::close(fd_);
  ::close(wake_fd_);
}

void FastLaneClient::Shutdown() {
  broken_ = true;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
}

FastLaneClient::Done FastLaneClient::TakeLocked(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  Done done = std::move(it->second.done);
  pending_.erase(it);
  return done;
}

bool FastLaneClient::Send(uint32_t kind, uint64_t id, int64_t word, const std::string& payload) {
  Header h{};
  h.kind = kind;
  h.id = id;
  h.method = static_cast<uint32_t>(word >> 40);
  h.timeout_us = word & ((int64_t{1} << 40) - 1);
  std::lock_guard<std::mutex> lock(write_mu_);
  return WriteFrame(fd_, h, payload);
}

uint64_t FastLaneClient::Start(FastMethod method, const std::string& request,
                               absl::Duration timeout, Done done) {
  if (broken_ || request.size() > FastLaneServer::kMaxPayload) {
    done(absl::UnavailableError(broken_ ? "the fast lane broke" : "request too large"));
    return 0;
  }
  timeout = std::clamp(timeout, absl::Microseconds(1), kMaxTimeout);
  uint64_t id = 0;
  bool wake_reader = false;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    const absl::Time deadline = SteadyNow() + timeout;
    pending_[id] = Pending{std::move(done), deadline};
    wake_reader = deadline < reader_wakes_;
  }
  if (wake_reader) {
    const uint64_t one = 1;
    (void)::write(wake_fd_, &one, sizeof(one));
  }
  const int64_t word = (static_cast<int64_t>(method) << 40) | absl::ToInt64Microseconds(timeout);
  if (!Send(kRequest, id, word, request)) Fail(absl::UnavailableError("the fast lane broke"));
  return id;
}

absl::StatusOr<std::string> FastLaneClient::Call(FastMethod method, const std::string& request,
                                                 absl::Duration timeout) {
  absl::Mutex mu;
  bool ended = false;
  absl::StatusOr<std::string> out;
  Start(method, request, timeout, [&](absl::StatusOr<std::string> r) {
    absl::MutexLock lock(&mu);
    out = std::move(r);
    ended = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&ended));
  return out;
}

void FastLaneClient::Cancel(uint64_t id) {
  Done done;
  {
    absl::MutexLock lock(&mu_);
    done = TakeLocked(id);
  }
  if (!done) return;
  (void)Send(kCancel, id, 0, {});
  done(absl::CancelledError("cancelled by the caller"));
}

void FastLaneClient::Nudge() {
  // Never waits: a nudge is worth nothing once the call it announces is held up. Skipped while
  // another thread writes a frame, or when the socket has no room (the worker is not reading:
  // it is busy, so awake). A 32-byte frame goes in one piece or not at all on a unix stream
  // socket; a partial one would leave the stream mid-frame, so the lane is then given up.
  if (broken_) return;
  std::unique_lock<std::mutex> lock(write_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  Header h{};
  h.kind = kNudge;
  ssize_t sent;
  do {
    sent = ::send(fd_, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(sizeof(h)) || (sent < 0 && errno == EAGAIN)) return;
  lock.unlock();
  Shutdown();  // the reader closes the socket and fails the pending calls
}

void FastLaneClient::Fail(const absl::Status& why) {
  broken_ = true;
  std::map<uint64_t, Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) p.done(why);
}

void FastLaneClient::ReadLoop() {
  Header h{};
  std::string payload;
  while (!broken_) {
    int timeout_ms = 0;
    {
      // Until the earliest deadline, at most kMaxWaitMs: a call that starts meanwhile wakes
      // this thread only when its deadline is earlier still (the router's calls, seconds long,
      // do not; a wake-up beside every call would compete with it for the host's cores).
      absl::MutexLock lock(&mu_);
      const absl::Time now = SteadyNow();
      reader_wakes_ = now + absl::Milliseconds(kMaxWaitMs);
      for (const auto& [id, p] : pending_) reader_wakes_ = std::min(reader_wakes_, p.deadline);
      timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(
          std::max(reader_wakes_ - now, absl::ZeroDuration()), absl::Milliseconds(1))));
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeout_ms);
    if (broken_) break;
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t count = 0;
      (void)::read(wake_fd_, &count, sizeof(count));  // a new deadline: recomputed above
    }
    if (ready > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (!ReadFrame(fd_, FastLaneServer::kMaxPayload, &h, &payload) || h.kind != kResponse) break;
      Done done;
      bool late = false;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = pending_.find(h.id); it != pending_.end()) late = it->second.deadline <= SteadyNow();
        done = TakeLocked(h.id);
      }
      if (!done) continue;  // cancelled or timed out meanwhile
      const absl::StatusCode code = CodeOf(h.code);
      if (code != absl::StatusCode::kOk && late) {
        // The server gave up at the deadline too: the caller sees its deadline, as with gRPC.
        done(absl::DeadlineExceededError("fast lane call past its deadline"));
      } else if (code == absl::StatusCode::kOk) {
        done(std::move(payload));
      } else {
        done(absl::Status(code, absl::StrCat("fast lane: ", absl::CEscape(payload))));
      }
    }
    // Calls past their deadline end here, and the server is told.
    std::vector<std::pair<uint64_t, Done>> late;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = SteadyNow();
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline > now) {
          ++it;
          continue;
        }
        late.emplace_back(it->first, std::move(it->second.done));
        it = pending_.erase(it);
      }
    }
    for (auto& [id, done] : late) {
      (void)Send(kCancel, id, 0, {});
      done(absl::DeadlineExceededError("fast lane call past its deadline"));
    }
  }
  ::shutdown(fd_, SHUT_RDWR);
  Fail(absl::UnavailableError("the fast lane to the worker closed"));
}

}  // namespace pdserve::service
