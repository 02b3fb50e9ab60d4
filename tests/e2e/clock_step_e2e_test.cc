// A step of the wall clock (an NTP step, a VM resumed) under a running cluster: every process
// of it sees the time jump a minute ahead while the monotonic clock runs on (libfaketime,
// preloaded into the router and the workers, told the offset through a file). Leases,
// heartbeats, gRPC deadlines and timeouts are measured on the monotonic clock, so nothing
// expires at once: no heartbeat fails, no worker is dropped, the next requests are served. With
// gRPC deadlines taken from the wall clock, every heartbeat sent across the step failed with
// DEADLINE_EXCEEDED (and in CI a real 28 s step dropped a decode worker: "no heartbeat for 5s").
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/read_file.h"

namespace pdserve::e2e {
namespace {

constexpr char kFakeTime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

using ::pdserve::testing_util::ReadFile;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::trunc);
  file << text << "\n";
}

bool Sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return false;
}

class ClockStepTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ClockStepTest, AWallClockStepExpiresNothingAndTheClusterServesOn) {
  if (!std::ifstream(kFakeTime).good()) {
    GTEST_SKIP() << kFakeTime << " is missing (Debian package faketime; scripts/install-deps.sh)";
  }
  // The sanitizer runtimes must come first in a process's libraries; a preload breaks that.
  if (Sanitized()) GTEST_SKIP() << "the cluster's binaries are sanitized: no preload";
  const std::string offset_file =
      absl::StrCat(::testing::TempDir(), "clock-step-", getpid(), ".offset");
  WriteFile(offset_file, "+0");
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.env.push_back({"LD_PRELOAD", kFakeTime});
  options.env.push_back({"FAKETIME_TIMESTAMP_FILE", offset_file});
  options.env.push_back({"FAKETIME_NO_CACHE", "1"});
  options.env.push_back({"FAKETIME_DONT_FAKE_MONOTONIC", "1"});
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome before = client.Generate("before-step", 40, 6, 11);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  EXPECT_EQ(before.tokens, Expected(40, 6, 11));

  // absl::Now() reads the kernel's clock only every few seconds once a process has run a while
  // (it extrapolates with the cycle counter in between), while gRPC reads it on every call: the
  // two disagree by the whole step until absl's next sample, and a deadline computed from
  // absl::Now() in that window was already past for gRPC. Step once both have settled.
  absl::SleepFor(absl::Seconds(6));
  WriteFile(offset_file, GetParam());
  // Several heartbeat intervals and lease sweeps across the step.
  absl::SleepFor(absl::Seconds(3));
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->dropped_workers(), 0u);
  ASSERT_EQ(status->workers_size(), 2);
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_TRUE(w.live()) << w.worker_id();
    EXPECT_TRUE(w.healthy()) << w.worker_id();
  }
  Outcome after = client.Generate("after-step", 40, 6, 12);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, Expected(40, 6, 12));
  for (const char* name : {"router", "prefill-0", "decode-0"}) {
    const std::string log = ReadFile(absl::StrCat(cluster->log_dir(), "/", name, ".log"));
    EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr("Deadline Exceeded"))) << name;
    EXPECT_THAT(log, ::testing::Not(::testing::HasSubstr("dropped"))) << name;
  }
  std::remove(offset_file.c_str());
}

// Forward only: a step back broke nothing before either (wall-clock deadlines only grew), so a
// test of it could not fail; what it did break (a stopped worker's heartbeat age, 60 s in the
// future, hid it from the router for a minute) is not tested here.
INSTANTIATE_TEST_SUITE_P(Steps, ClockStepTest, ::testing::Values("+60"),
                         [](const ::testing::TestParamInfo<const char*>&) {
                           return std::string("Forward");
                         });

}  // namespace
}  // namespace pdserve::e2e
