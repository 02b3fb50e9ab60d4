#include "service/fast_lane.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "service/fast_lane_frames.h"

namespace pdserve::service {
using namespace fast_lane_internal;  // NOLINT: this file is the wire format's other half

namespace {

// True once `fd` is readable, false after `watch` (a nudged reader: FastLaneClient::Nudge).
bool WatchReadable(int fd, absl::Duration watch) {
  // Polls without sleeping, yielding every turn: on a vCPU of its own this thread only spins,
  // and where it shares one with the caller's threads they run first.
  const absl::Time until = absl::Now() + watch;
  do {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) return true;  // the frame, or the connection's end
    sched_yield();
  } while (absl::Now() < until);
  return false;
}

}  // namespace

// Why its threads wait in epoll (leader/follower) rather than in recv: a thread that reads a
// long call's frame runs the call itself, and another thread must read on meanwhile. Waiting in
// recv, that other thread had to be woken for every long call (SubmitCall, on the first token's
// path: 12-54 us, and on the 2-vCPU host it preempted the call in 10 of 50 traced requests,
// docs/results/cpu-2core-2026-12-06-gap-trace). Here every idle thread of the connection waits
// in epoll_wait on the connection's own epoll set, where the socket is armed EPOLLONESHOT: a
// frame wakes exactly one of them (epoll's waiters are exclusive), which re-arms the socket once
// it has read the frame. A thread that finished its call waits again, so after the first long
// call a connection keeps a thread waiting and later long calls hand nothing off.
struct FastLaneServer::Connection {
  Connection(int fd, int epfd) : fd(fd), epfd(epfd) {}
  ~Connection() {
    ::close(epfd);
    ::close(fd);
  }
  const int fd;
  const int epfd;  // only `fd`, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT
  std::atomic<bool> closed{false};
  std::mutex write_mu;
  absl::Mutex mu;
  std::map<uint64_t, std::shared_ptr<FastCall>> calls ABSL_GUARDED_BY(mu);
  int readers ABSL_GUARDED_BY(mu) = 1;  // threads serving this connection
  int busy ABSL_GUARDED_BY(mu) = 0;     // of those, running a long call
  absl::Time last_nudge ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  // The next frame (or the end of the connection) may wake a waiting thread.
  void Arm() {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    (void)::epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  // Until the socket has something (a frame, its end) for this thread; false on an epoll error.
  bool WaitReadable() const {
    epoll_event ev{};
    int n;
    do {
      n = ::epoll_wait(epfd, &ev, 1, -1);
    } while (n < 0 && errno == EINTR);
    return n > 0;
  }
  bool Respond(uint64_t id, const absl::StatusOr<std::string>& out) {
    Header h{};
    h.kind = kResponse;
    h.id = id;
    h.code = static_cast<uint32_t>(out.status().code());
    std::lock_guard<std::mutex> lock(write_mu);
    return WriteFrame(fd, h, out.ok() ? *out : std::string(out.status().message()));
  }
  void CancelAll() {
    absl::MutexLock lock(&mu);
    for (auto& [id, call] : calls) call->cancelled_ = true;
  }
};

absl::StatusOr<std::unique_ptr<FastLaneServer>> FastLaneServer::Start(
    std::map<FastMethod, Method> methods, std::string credential, absl::Duration frame_timeout) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("fast lane socket: ", std::strerror(errno)));
  std::random_device rd;
  const std::string address =
      absl::StrCat("pdserve-fast-", getpid(), "-", (uint64_t{rd()} << 32) | rd());
  socklen_t len = 0;
  sockaddr_un addr = AbstractAddress(address, &len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("fast lane bind/listen: ", std::strerror(err)));
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    ::close(fd);
    return absl::InternalError("fast lane eventfd");
  }
  return std::unique_ptr<FastLaneServer>(
      new FastLaneServer(std::move(methods), std::move(credential), address, fd, wake,
                         frame_timeout));
}

FastLaneServer::FastLaneServer(std::map<FastMethod, Method> methods, std::string credential,
                               std::string address, int listen_fd, int wake_fd,
                               absl::Duration frame_timeout)
    : methods_(std::move(methods)),
      credential_(std::move(credential)),
      address_(std::move(address)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      frame_timeout_(std::max<int64_t>(1, absl::ToInt64Milliseconds(frame_timeout))) {
  acceptor_ = std::thread([this] {
    NameThisThread("fl-accept");
    AcceptLoop();
  });
}

FastLaneServer::~FastLaneServer() {
  stopping_ = true;
  const uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
  acceptor_.join();
  {
    absl::MutexLock lock(&pool_mu_);
    pool_stop_ = true;  // pool threads end once the queue is empty
  }
  std::vector<Spawned> threads;
  {
    absl::MutexLock lock(&mu_);
    for (const std::shared_ptr<Connection>& c : connections_) {
      c->CancelAll();
      ::shutdown(c->fd, SHUT_RDWR);  // ends its reader's recv
    }
    threads.swap(threads_);
  }
  for (Spawned& t : threads) t.thread.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void FastLaneServer::AcceptLoop() {
  auto log = ComponentLogger("fast-lane");
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (stopping_) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // Only this user's processes: the abstract namespace has no file permissions.
    if (absl::Status same = CheckPeerIsSameUser(fd); !same.ok()) {
      log->warn("fast lane: refused a connection: {}", std::string(same.message()));
      refused_++;
      ::close(fd);
      continue;
    }
    absl::MutexLock lock(&mu_);
    // Connections whose reader ended are dropped here (their reader thread stays to be joined).
    std::erase_if(connections_, [](const std::shared_ptr<Connection>& c) { return c.use_count() == 1; });
    if (connections_.size() >= static_cast<size_t>(kMaxConnections)) {
      log->warn("fast lane: refused a connection: {} open already", kMaxConnections);
      refused_++;
      ::close(fd);
      continue;
    }
    const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLRDHUP | EPOLLONESHOT;  // armed for reading after the hello (Serve)
    if (epfd < 0 || ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log->warn("fast lane: refused a connection: epoll: {}", std::strerror(errno));
      refused_++;
      if (epfd >= 0) ::close(epfd);
      ::close(fd);
      continue;
    }
    auto connection = std::make_shared<Connection>(fd, epfd);
    connections_.push_back(connection);
    SpawnLocked([this, connection] {
      NameThisThread("fl-read");
      Serve(connection);
    });
  }
}

void FastLaneServer::SpawnLocked(std::function<void()> body) {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (!it->ended->load()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = threads_.erase(it);
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  threads_.push_back(Spawned{std::thread([body = std::move(body), ended] {
                               body();
                               *ended = true;
                             }),
                             ended});
}

void FastLaneServer::Serve(std::shared_ptr<Connection> c) {
  auto log = ComponentLogger("fast-lane");
  Header h{};
  std::string payload;
  SetReceiveTimeout(c->fd, kHelloTimeoutMs);
  if (!ReadFrame(c->fd, kMaxHello, &h, &payload) || h.kind != kHello ||
      !ConstantTimeEquals(payload, credential_)) {
    log->warn("fast lane: closed a connection without the cluster credential in its hello");
    refused_++;
    ::shutdown(c->fd, SHUT_RDWR);  // now, not when the last reference goes
    return;
  }
  SetReceiveTimeout(c->fd, 0);
  Header ok{};
  ok.kind = kHelloOk;
  {
    std::lock_guard<std::mutex> lock(c->write_mu);
    if (!WriteFrame(c->fd, ok, {})) return;
  }
  c->Arm();
  ReadLoop(c);
}

void FastLaneServer::ReadLoop(const std::shared_ptr<Connection>& c) {
  Header h{};
  std::string payload;
  bool stalled = false;
  bool readable = false;  // a nudge's watch saw the next frame: no need to wait for it
  while (!stopping_ && !c->closed) {
    if (!readable && !c->WaitReadable()) break;
    readable = false;
    if (stopping_ || c->closed) break;
    if (!ReadFrameWithin(c->fd, kMaxPayload, frame_timeout_, &h, &payload, &stalled)) break;
    if (h.kind == kNudge) {
      // Still disarmed: no other thread of the connection is woken by the frame that follows,
      // this one reads it as soon as it is there. Watched only when the connection is idle
      // (a busy one has its threads awake) and not nudged just before (a bound on the cost).
      bool watch = false;
      {
        absl::MutexLock lock(&c->mu);
        const absl::Time now = absl::Now();
        if (c->busy == 0 && now - c->last_nudge >= kNudgeInterval) {
          c->last_nudge = now;
          watch = true;
        }
      }
      if (watch) {
        nudges_++;
        readable = WatchReadable(c->fd, kNudgeWatch);
        if (readable) nudges_met_++;
      }
      if (!readable) c->Arm();
      continue;
    }
    c->Arm();  // the connection's next frame may wake another thread from here on
    if (h.kind == kCancel) {
      absl::MutexLock lock(&c->mu);
      if (auto it = c->calls.find(h.id); it != c->calls.end()) it->second->cancelled_ = true;
      continue;
    }
    if (h.kind != kRequest) break;  // nothing else is sent to a server
    auto method = methods_.find(static_cast<FastMethod>(h.method));
    if (method == methods_.end()) {
      (void)c->Respond(h.id, absl::UnimplementedError(absl::StrCat("fast lane method ", h.method)));
      continue;
    }
    auto call = std::make_shared<FastCall>();
    if (h.timeout_us > 0) {
      call->deadline_ = absl::Now() + std::min(absl::Microseconds(h.timeout_us), kMaxTimeout);
    }
    bool hand_off = false;
    {
      absl::MutexLock lock(&c->mu);
      if (!c->calls.emplace(h.id, call).second) break;  // an id in use: a confused client
      if (!method->second.on_reader_thread) {
        // A long call runs right here; another thread must be free to read meanwhile.
        c->busy++;
        hand_off = c->busy >= c->readers;
        if (hand_off) c->readers++;
      }
    }
    if (method->second.on_reader_thread) {
      RunCall(c, method->second, h.id, std::move(payload), call);
      continue;
    }
    if (hand_off) {
      handoffs_++;
      if (stopping_ || !SubmitCall([this, c] { ReadLoop(c); })) {
        {
          absl::MutexLock lock(&c->mu);
          c->calls.erase(h.id);
          c->busy--;
          c->readers--;
        }
        (void)c->Respond(h.id, absl::ResourceExhaustedError("fast lane: too many calls at once"));
        continue;
      }
    }
    RunCall(c, method->second, h.id, std::move(payload), call);
    absl::MutexLock lock(&c->mu);
    c->busy--;
  }
  {
    absl::MutexLock lock(&c->mu);
    c->readers--;
  }
  if (!c->closed.exchange(true)) {
    if (stalled) {
      stalled_++;
      ComponentLogger("fast-lane")->warn(
          "fast lane: closed a connection whose frame stopped half-way for {} ms",
          frame_timeout_.count());
    }
    c->CancelAll();  // the connection is gone: running handlers stop
    ::shutdown(c->fd, SHUT_RDWR);
  }
  c->Arm();  // the socket now reads as ended: the next waiting thread wakes, and leaves too
}

bool FastLaneServer::SubmitCall(std::function<void()> task) {
  absl::MutexLock lock(&pool_mu_);
  if (pool_stop_) return false;
  if (idle_ <= static_cast<int>(tasks_.size())) {
    if (pool_size_ >= kMaxCallThreads) return false;
    pool_size_++;
    absl::MutexLock threads(&mu_);
    SpawnLocked([this] {
      NameThisThread("fl-call");
      PoolLoop();
    });
  }
  tasks_.push_back(std::move(task));
  return true;
}

void FastLaneServer::PoolLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&pool_mu_);
      idle_++;
      auto work = [this]() ABSL_SHARED_LOCKS_REQUIRED(pool_mu_) {
        return pool_stop_ || !tasks_.empty();
      };
      pool_mu_.Await(absl::Condition(&work));
      idle_--;
      if (tasks_.empty()) return;  // stopping, nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void FastLaneServer::RunCall(const std::shared_ptr<Connection>& c, const Method& method,
                             uint64_t id, std::string request, std::shared_ptr<FastCall> call) {
  absl::StatusOr<std::string> out = method.handler(request, *call);
  {
    absl::MutexLock lock(&c->mu);
    c->calls.erase(id);
  }
  (void)c->Respond(id, out);
}

std::unique_ptr<FastLaneServer> StartWorkerFastLane(
    std::map<FastMethod, FastLaneServer::Method> methods, const std::string& credential,
    std::string* registration_field) {
  absl::StatusOr<std::unique_ptr<FastLaneServer>> server =
      FastLaneServer::Start(std::move(methods), credential);
  if (!server.ok()) {
    ComponentLogger("fast-lane")->warn("no fast lane ({}); the router will use gRPC only",
                                       server.status().ToString());
    return nullptr;
  }
  *registration_field = (*server)->address();
  return *std::move(server);
}

}  // namespace pdserve::service
