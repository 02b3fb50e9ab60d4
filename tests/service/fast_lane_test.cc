#include "service/fast_lane.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace pdserve::service
