#include "service/fast_lane.h"

#include <sys/socket.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/fast_lane_frames.h"

namespace pdserve::service {
namespace {

using ::testing::HasSubstr;

std::map<FastMethod, FastLaneServer::Method> Methods(absl::Notification* cancelled_seen) {
  std::map<FastMethod, FastLaneServer::Method> m;
  // Echo, on the reader thread.
  m[FastMethod::kSetDestinations] = {
      [](const std::string& in, const FastCall&) -> absl::StatusOr<std::string> {
        if (in == "fail") return absl::ResourceExhaustedError("no room");
        return "echo:" + in;
      },
      true};
  // Waits until its call is cancelled (a cancel, its deadline, the connection gone).
  m[FastMethod::kPrefill] = {
      [cancelled_seen](const std::string&, const FastCall& call) -> absl::StatusOr<std::string> {
        while (!call.cancelled()) absl::SleepFor(absl::Milliseconds(1));
        if (cancelled_seen != nullptr && !cancelled_seen->HasBeenNotified()) {
          cancelled_seen->Notify();
        }
        return absl::CancelledError("stopped");
      },
      false};
  return m;
}

TEST(FastLaneTest, CallsCarryBytesAndStatusesBothWays) {
  auto server = FastLaneServer::Start(Methods(nullptr), "secret");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = FastLaneClient::Connect((*server)->address(), "secret");
  ASSERT_TRUE(client.ok()) << client.status();
  std::string big(3 << 20, 'x');  // larger than any socket buffer: framed, not truncated
  absl::StatusOr<std::string> out =
      (*client)->Call(FastMethod::kSetDestinations, big, absl::Seconds(10));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "echo:" + big);
  out = (*client)->Call(FastMethod::kSetDestinations, "fail", absl::Seconds(10));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("no room"));
  out = (*client)->Call(FastMethod::kAllocate, "x", absl::Seconds(10));  // not served here
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnimplemented);
  // Many calls at once on one connection, each gets its own answer.
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<std::string>> answers(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      answers[i] = (*client)->Call(FastMethod::kSetDestinations, std::to_string(i),
                                   absl::Seconds(10));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(*answers[i], "echo:" + std::to_string(i));
}

TEST(FastLaneTest, AWrongOrMissingCredentialGetsNoConnection) {
  auto server = FastLaneServer::Start(Methods(nullptr), "secret");
  ASSERT_TRUE(server.ok());
  for (const char* wrong : {"", "secreT", "secret-and-more"}) {
    EXPECT_FALSE(FastLaneClient::Connect((*server)->address(), wrong).ok()) << wrong;
  }
  EXPECT_EQ((*server)->refused_connections(), 3u);
  EXPECT_FALSE(FastLaneClient::Connect("pdserve-fast-nobody-listens", "secret").ok());
}

TEST(FastLaneTest, ADeadlineOrACancelEndsTheCallOnBothSides) {
  absl::Notification server_saw_it;
  auto server = FastLaneServer::Start(Methods(&server_saw_it), "s");
  ASSERT_TRUE(server.ok());
  auto client = FastLaneClient::Connect((*server)->address(), "s");
  ASSERT_TRUE(client.ok());
  absl::StatusOr<std::string> out =
      (*client)->Call(FastMethod::kPrefill, "x", absl::Milliseconds(100));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(server_saw_it.WaitForNotificationWithTimeout(absl::Seconds(10)));

  absl::Notification ended;
  absl::Status status;
  const uint64_t id = (*client)->Start(FastMethod::kPrefill, "x", absl::Seconds(60),
                                       [&](absl::StatusOr<std::string> r) {
                                         status = r.status();
                                         ended.Notify();
                                       });
  absl::SleepFor(absl::Milliseconds(20));
  (*client)->Cancel(id);
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
}

// The client ends a call at its deadline by itself, from a reader that sleeps (up to 1 s) until
// the earliest deadline: a call with an earlier deadline than the reader's wake-up wakes it.
TEST(FastLaneTest, TheClientEndsACallAtItsDeadlineWhateverTheServerDoes) {
  std::map<FastMethod, FastLaneServer::Method> m;
  m[FastMethod::kPrefill] = {[](const std::string&, const FastCall&) -> absl::StatusOr<std::string> {
                               absl::SleepFor(absl::Milliseconds(1500));  // deaf to its deadline, answers after 1 s
                               return std::string("late");
                             },
                             false};
  auto server = FastLaneServer::Start(std::move(m), "s");
  ASSERT_TRUE(server.ok());
  auto client = FastLaneClient::Connect((*server)->address(), "s");
  ASSERT_TRUE(client.ok());
  absl::SleepFor(absl::Milliseconds(50));  // the reader is asleep now
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> out =
      (*client)->Call(FastMethod::kPrefill, "x", absl::Milliseconds(100));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
}

// A worker that goes away fails its pending calls at once (the router then settles them).
TEST(FastLaneTest, AServerThatStopsFailsPendingCallsAndRefusesNewOnes) {
  auto server = FastLaneServer::Start(Methods(nullptr), "s");
  ASSERT_TRUE(server.ok());
  auto client = FastLaneClient::Connect((*server)->address(), "s");
  ASSERT_TRUE(client.ok());
  absl::Notification ended;
  absl::Status status;
  (*client)->Start(FastMethod::kPrefill, "x", absl::Seconds(60),
                   [&](absl::StatusOr<std::string> r) {
                     status = r.status();
                     ended.Notify();
                   });
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Time start = absl::Now();
  server->reset();  // its handler sees the cancel, the connection closes
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_NE(status.code(), absl::StatusCode::kOk);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE((*client)->broken());
  EXPECT_EQ((*client)->Call(FastMethod::kSetDestinations, "x", absl::Seconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
}

// A long call runs on the thread that read it while another thread of the connection reads
// on. That other thread is woken for the connection's first long call only: afterwards the
// thread that ran a call waits for frames again, so a long call hands nothing off unless more
// of them overlap than before (and a short call is still answered while one runs).
TEST(FastLaneTest, ALongCallWakesNoThreadOnceItsConnectionHasOneWaiting) {
  absl::Mutex mu;
  int running = 0;
  bool release = false;
  std::map<FastMethod, FastLaneServer::Method> m = Methods(nullptr);
  m[FastMethod::kAllocate] = {[&](const std::string& in, const FastCall&) -> absl::StatusOr<std::string> {
                                absl::MutexLock lock(&mu);
                                running++;
                                if (in == "hold") {
                                  auto go = [&] { return release; };
                                  mu.Await(absl::Condition(&go));
                                }
                                running--;
                                return "done:" + in;
                              },
                              false};
  auto server = FastLaneServer::Start(std::move(m), "s");
  ASSERT_TRUE(server.ok());
  auto client = FastLaneClient::Connect((*server)->address(), "s");
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> out =
        (*client)->Call(FastMethod::kAllocate, std::to_string(i), absl::Seconds(10));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, "done:" + std::to_string(i));
  }
  EXPECT_EQ((*server)->reader_handoffs(), 1u);

  // Three at once: up to two more threads; a short call is answered while they run.
  std::vector<absl::Notification> ended(3);
  std::vector<absl::StatusOr<std::string>> held(3, absl::UnknownError("not yet"));
  for (int i = 0; i < 3; ++i) {
    (*client)->Start(FastMethod::kAllocate, "hold", absl::Seconds(10),
                     [&, i](absl::StatusOr<std::string> r) {
                       held[i] = std::move(r);
                       ended[i].Notify();
                     });
  }
  {
    absl::MutexLock lock(&mu);
    auto three = [&] { return running == 3; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&three), absl::Seconds(10)));
  }
  absl::StatusOr<std::string> echo =
      (*client)->Call(FastMethod::kSetDestinations, "meanwhile", absl::Seconds(10));
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "echo:meanwhile");
  {
    absl::MutexLock lock(&mu);
    release = true;
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ended[i].WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_EQ(*held[i], "done:hold");
  }
  const uint64_t after_overlap = (*server)->reader_handoffs();
  EXPECT_LE(after_overlap, 3u);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*client)->Call(FastMethod::kAllocate, "again", absl::Seconds(10)).ok());
  }
  EXPECT_EQ((*server)->reader_handoffs(), after_overlap);
}

// An authenticated peer that begins a frame and stops (a hung or hostile process of the same
// user) loses its connection after the frame timeout instead of holding a reader thread; a
// connection that merely waits between frames keeps going.
TEST(FastLaneTest, AFrameThatStopsHalfWayClosesItsConnection) {
  namespace fl = fast_lane_internal;
  auto server = FastLaneServer::Start(Methods(nullptr), "s", absl::Milliseconds(200));
  ASSERT_TRUE(server.ok());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  socklen_t len = 0;
  sockaddr_un addr = fl::AbstractAddress((*server)->address(), &len);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  fl::SetReceiveTimeout(fd, 5000);
  fl::Header h{};
  h.kind = fl::kHello;
  ASSERT_TRUE(fl::WriteFrame(fd, h, "s"));
  std::string payload;
  ASSERT_TRUE(fl::ReadFrame(fd, fl::kMaxHello, &h, &payload));
  ASSERT_EQ(h.kind, fl::kHelloOk);

  absl::SleepFor(absl::Milliseconds(500));  // idle for longer than the frame timeout: fine
  fl::Header req{};
  req.kind = fl::kRequest;
  req.method = static_cast<uint32_t>(FastMethod::kSetDestinations);
  req.id = 7;
  ASSERT_TRUE(fl::WriteFrame(fd, req, "x"));
  ASSERT_TRUE(fl::ReadFrame(fd, FastLaneServer::kMaxPayload, &h, &payload));
  EXPECT_EQ(h.id, 7u);
  EXPECT_EQ(payload, "echo:x");
  EXPECT_EQ((*server)->stalled_connections(), 0u);

  // Half a header, then nothing: the server closes the connection.
  req.id = 8;
  req.length = 1;
  ASSERT_TRUE(fl::WriteAll(fd, &req, sizeof(req) / 2));
  const absl::Time start = absl::Now();
  char byte;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0);  // end of stream, not the 5 s receive timeout
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ((*server)->stalled_connections(), 1u);
  ::close(fd);
}

// A raw, authenticated connection to `server` (the frames written by hand).
int RawConnection(const FastLaneServer& server) {
  namespace fl = fast_lane_internal;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  socklen_t len = 0;
  sockaddr_un addr = fl::AbstractAddress(server.address(), &len);
  fl::Header h{};
  h.kind = fl::kHello;
  std::string payload;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || !fl::WriteFrame(fd, h, "s") ||
      (fl::SetReceiveTimeout(fd, 5000), !fl::ReadFrame(fd, fl::kMaxHello, &h, &payload)) ||
      h.kind != fl::kHelloOk) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Nudge, then the call, in one write: the nudged reader's watch sees the call's frame (no
// sleep in between, so the count does not depend on timing); a second nudge right after the
// first is not watched (the bound on what nudges cost the worker).
TEST(FastLaneTest, ANudgedReaderWatchesForTheCallAndNudgesAreBounded) {
  namespace fl = fast_lane_internal;
  auto server = FastLaneServer::Start(Methods(nullptr), "s");
  ASSERT_TRUE(server.ok());
  const int fd = RawConnection(**server);
  ASSERT_GE(fd, 0);
  fl::Header nudge{};
  nudge.kind = fl::kNudge;
  fl::Header req{};
  req.kind = fl::kRequest;
  req.method = static_cast<uint32_t>(FastMethod::kSetDestinations);
  req.id = 1;
  req.length = 1;
  std::string bytes(reinterpret_cast<const char*>(&nudge), sizeof(nudge));
  bytes.append(reinterpret_cast<const char*>(&nudge), sizeof(nudge));  // the second: not watched
  bytes.append(reinterpret_cast<const char*>(&req), sizeof(req));
  bytes.append("a");
  ASSERT_TRUE(fl::WriteAll(fd, bytes.data(), bytes.size()));
  fl::Header h{};
  std::string payload;
  ASSERT_TRUE(fl::ReadFrame(fd, FastLaneServer::kMaxPayload, &h, &payload));
  EXPECT_EQ(h.id, 1u);
  EXPECT_EQ(payload, "echo:a");
  EXPECT_EQ((*server)->nudges(), 1u);
  EXPECT_EQ((*server)->nudges_met(), 1u);
  ::close(fd);
}

// A nudge that no call follows ends its watch and re-arms the connection: later calls, from
// this client and with other threads of the connection in play, are served as before.
TEST(FastLaneTest, AfterANudgeThatNoCallFollowsTheConnectionStillServes) {
  auto server = FastLaneServer::Start(Methods(nullptr), "s");
  ASSERT_TRUE(server.ok());
  auto client = FastLaneClient::Connect((*server)->address(), "s");
  ASSERT_TRUE(client.ok());
  for (int round = 1; round <= 3; ++round) {
    (*client)->Nudge();
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while ((*server)->nudges() < static_cast<uint64_t>(round) && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ((*server)->nudges(), static_cast<uint64_t>(round));
    // Past the watch (and the interval): the reader went back to waiting.
    absl::SleepFor(absl::Milliseconds(5));
    absl::StatusOr<std::string> out =
        (*client)->Call(FastMethod::kSetDestinations, "r" + std::to_string(round), absl::Seconds(10));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, "echo:r" + std::to_string(round));
  }
  EXPECT_EQ((*server)->nudges_met(), 0u);
  EXPECT_FALSE((*client)->broken());
}

}  // namespace
}  // namespace pdserve::service
