#pragma once

// The fast lane: the router's calls on a request's first-token path (Prefill, SetDestinations,
// Allocate) to workers on its own host, without gRPC (issue 15).
//
// Why: on the 2-core CPU host a gRPC unary call between two processes takes 110 us when both
// are busy and 330-480 us after 20 ms of idleness, a bare unix socket 12-15 us and 35-47 us
// (docs/results/cpu-2core-2026-12-05-fast-lane). Every first token crossed three such calls
// before its KV could leave (Allocate's round trip, then Prefill): most of the control plane's
// ~1 ms. Requests keep their protobuf messages, handlers and checks: only the carrier changes.
//
// Carrier: a SOCK_STREAM unix socket in the abstract namespace (no file; per network
// namespace, so a worker on another host, or in another namespace, is never reached: the
// router then keeps to gRPC). Frames: a fixed header (payload length, kind, call id, and a
// timeout or a status code) and a payload of at most kMaxPayload bytes. A connection starts
// with a hello that carries the cluster credential; the server also requires the peer to run
// as its own user (SO_PEERCRED). Anything else closes the connection, logged. A nudge (a bare
// header, no answer) says a call is coming: an idle connection's reader then watches the
// socket for it for a short while instead of sleeping (FastLaneClient::Nudge).
//
// Calls: many in flight per connection, told apart by id. The client bounds each by its
// timeout (DeadlineExceeded, and a cancel frame to the server) and may cancel it; the server
// runs short handlers on the connection's reader thread and long ones on a thread of their
// own, and tells every handler whether its call was cancelled (a cancel frame, its deadline,
// the connection gone, the server stopping). A connection that breaks fails every pending call
// with Unavailable; the client does not reconnect (the router falls back to gRPC).
//
// Thread safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pdserve::service {

enum class FastMethod : uint32_t { kPrefill = 1, kSetDestinations = 2, kAllocate = 3 };

// What a server-side handler knows of its call.
class FastCall {
 public:
  // The client cancelled, its deadline passed, the connection or the server went away.
  bool cancelled() const { return cancelled_.load() || absl::Now() >= deadline_; }
  absl::Time deadline() const { return deadline_; }  // wall clock, as gRPC's

 private:
  friend class FastLaneServer;
  std::atomic<bool> cancelled_{false};
  absl::Time deadline_ = absl::InfiniteFuture();
};

class FastLaneServer {
 public:
  static constexpr size_t kMaxPayload = 16 << 20;  // gRPC's default is 4 MiB
  static constexpr int kMaxConnections = 64;
  using Handler =
      std::function<absl::StatusOr<std::string>(const std::string& request, const FastCall& call)>;
  struct Method {
    Handler handler;
    bool on_reader_thread = false;  // short and non-blocking: no thread hand-off
  };

  // Listens on a fresh abstract name; `credential` (empty: none, as --insecure-no-auth) must
  // open every connection. A frame, once begun, must arrive whole within `frame_timeout` or the
  // connection is closed (an idle connection may wait between frames as long as it likes).
  static absl::StatusOr<std::unique_ptr<FastLaneServer>> Start(
      std::map<FastMethod, Method> methods, std::string credential,
      absl::Duration frame_timeout = absl::Seconds(5));
  ~FastLaneServer();  // cancels every call, closes every connection, joins every thread
  FastLaneServer(const FastLaneServer&) = delete;
  FastLaneServer& operator=(const FastLaneServer&) = delete;

  // The abstract name (without its leading NUL), for RegisterWorkerRequest.fast_lane.
  const std::string& address() const { return address_; }
  uint64_t refused_connections() const { return refused_.load(); }
  // Connections closed because a frame stopped half-way (frame_timeout).
  uint64_t stalled_connections() const { return stalled_.load(); }
  // Long calls that found no other thread of their connection free to read on, and woke one
  // (the first long call of a connection, then only calls that overlap more than before).
  uint64_t reader_handoffs() const { return handoffs_.load(); }
  // Nudges that made a reader watch for the next frame, and those of them that saw it come.
  uint64_t nudges() const { return nudges_.load(); }
  uint64_t nudges_met() const { return nudges_met_.load(); }

  // How long a nudged reader watches the socket for the call (FastLaneClient::Nudge), and how
  // often a connection's nudges are honoured at most: a client that nudges without calling
  // costs the host at most kNudgeWatch per kNudgeInterval of one core (a third of it).
  static constexpr absl::Duration kNudgeWatch = absl::Microseconds(300);
  static constexpr absl::Duration kNudgeInterval = absl::Microseconds(900);

 private:
  struct Connection;
  FastLaneServer(std::map<FastMethod, Method> methods, std::string credential,
                 std::string address, int listen_fd, int wake_fd, absl::Duration frame_timeout);
  void AcceptLoop();
  void Serve(std::shared_ptr<Connection> connection);  // the hello, then ReadLoop
  // Serves the connection's frames until it ends, with the connection's other threads
  // (Connection, fast_lane.cc): reads a frame, runs a long call itself (waking a pool thread
  // to read on only when no other thread of the connection is free), then waits again.
  void ReadLoop(const std::shared_ptr<Connection>& connection);
  void RunCall(const std::shared_ptr<Connection>& connection, const Method& method,
               uint64_t id, std::string request, std::shared_ptr<FastCall> call);

  const std::map<FastMethod, Method> methods_;
  const std::string credential_;
  const std::string address_;
  const int listen_fd_;
  const int wake_fd_;  // eventfd: the destructor wakes the accept loop
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> stalled_{0};
  std::atomic<uint64_t> handoffs_{0};
  std::atomic<uint64_t> nudges_{0};
  std::atomic<uint64_t> nudges_met_{0};
  const std::chrono::milliseconds frame_timeout_;
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  struct Spawned {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> ended;
  };
  // Readers and call threads; ended ones are joined when the next one starts.
  void SpawnLocked(std::function<void()> body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Spawned> threads_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
  // Long calls run on pool threads that stay (a thread started per call cost ~80 us of the
  // first token here); a call that finds none idle starts one, up to kMaxCallThreads.
  static constexpr int kMaxCallThreads = 256;
  bool SubmitCall(std::function<void()> task);
  void PoolLoop();
  absl::Mutex pool_mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(pool_mu_);
  int idle_ ABSL_GUARDED_BY(pool_mu_) = 0;
  int pool_size_ ABSL_GUARDED_BY(pool_mu_) = 0;
  bool pool_stop_ ABSL_GUARDED_BY(pool_mu_) = false;
};

class FastLaneClient {
 public:
  using Done = std::function<void(absl::StatusOr<std::string>)>;

  // Connects and says hello; Unavailable when nothing listens at `address` on this host.
  static absl::StatusOr<std::unique_ptr<FastLaneClient>> Connect(const std::string& address,
                                                                 const std::string& credential);
  ~FastLaneClient();  // fails every pending call with Unavailable (their `done` runs first)
  FastLaneClient(const FastLaneClient&) = delete;
  FastLaneClient& operator=(const FastLaneClient&) = delete;

  // Starts a call; `done` runs once, on the client's reader thread (or on this one when the
  // call cannot start), with the response or why there is none. Returns the call's id.
  uint64_t Start(FastMethod method, const std::string& request, absl::Duration timeout,
                 Done done);
  absl::StatusOr<std::string> Call(FastMethod method, const std::string& request,
                                   absl::Duration timeout);
  // The call ends with Cancelled (unless it ended already); the server is told.
  void Cancel(uint64_t id);
  // Tells the server a call is about to come: a reader thread of the connection that waits is
  // woken now and watches the socket for up to FastLaneServer::kNudgeWatch, so that its wake-up
  // runs while the caller is still preparing the call (on an idle VM, waking a halted vCPU
  // costs ~60-85 us: docs/results/cpu-2core-2026-12-06-gap-hops). No answer; never fails.
  void Nudge();
  // Fails every pending call with Unavailable and refuses new ones (a dropped worker).
  void Shutdown();
  bool broken() const { return broken_.load(); }

 private:
  struct Pending {
    Done done;
    absl::Time deadline;  // SteadyNow()
  };
  FastLaneClient(int fd, int wake_fd);
  void ReadLoop();
  // Removes and returns the pending call, if it still is.
  Done TakeLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Send(uint32_t kind, uint64_t id, int64_t word, const std::string& payload);
  void Fail(const absl::Status& why);

  const int fd_;
  const int wake_fd_;
  std::atomic<bool> broken_{false};
  std::mutex write_mu_;
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  // When the reader will next look at deadlines by itself (the earliest pending one): a call
  // with an earlier deadline wakes it, others do not (an idle client sleeps in poll).
  absl::Time reader_wakes_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread reader_;
};

// A method whose request and response are protobuf messages: parses the request (InvalidArgument
// when it is not one, naming `what`) and serializes the handler's answer. The adapter every
// worker's fast-lane methods share.
template <class Request, class Response>
FastLaneServer::Method ProtoMethod(
    const char* what, bool on_reader_thread,
    std::function<absl::StatusOr<Response>(const Request&, const FastCall&)> handler) {
  return {[what, handler = std::move(handler)](
              const std::string& bytes, const FastCall& call) -> absl::StatusOr<std::string> {
            Request request;
            if (!request.ParseFromString(bytes)) {
              return absl::InvalidArgumentError(absl::StrCat("fast lane: not a ", what));
            }
            absl::StatusOr<Response> out = handler(request, call);
            if (!out.ok()) return out.status();
            return out->SerializeAsString();
          },
          on_reader_thread};
}

// A worker's fast lane for `methods`, or null (logged) when none can be opened: the router then
// uses gRPC. Its address goes into `registration`.
std::unique_ptr<FastLaneServer> StartWorkerFastLane(
    std::map<FastMethod, FastLaneServer::Method> methods, const std::string& credential,
    std::string* registration_field);

}  // namespace pdserve::service
