// The cluster launcher as a library: clear errors, child deaths reported with their cause, no
// process left behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

TEST(LauncherTest, TakenRouterPortIsAClearError) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.router_port = port;
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> c = cluster::Cluster::Start(options);
  close(fd);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(absl::StrCat("port ", port)));
}

TEST(LauncherTest, StartedClusterServesAndReportsEveryWorker) {
  auto cluster = Start(Options("local", 2, 2));
  ASSERT_NE(cluster, nullptr);
  EXPECT_THAT(cluster->ChildNames(),
              ::testing::ElementsAre("router", "decode-0", "decode-1", "prefill-0", "prefill-1"));
  absl::StatusOr<v1::ClusterStatus> status = cluster->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->workers_size(), 4);
  EXPECT_EQ(status->preset(), "tiny");
}

TEST(LauncherTest, DeadChildIsReportedWithItsSignal) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<pid_t> pid = cluster->Pid("prefill-0");
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  absl::Status exited = cluster->WaitForChildExit(absl::Seconds(30));
  EXPECT_EQ(exited.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(exited.message()),
              HasSubstr(absl::StrCat("prefill-0 (pid ", *pid, ") was killed by signal 9")));
}

TEST(LauncherTest, StopLeavesNoChildRunning) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  std::vector<pid_t> pids;
  for (const std::string& name : cluster->ChildNames()) pids.push_back(*cluster->Pid(name));
  cluster->Stop();
  for (pid_t pid : pids) {
    EXPECT_EQ(kill(pid, 0), -1) << pid;
    EXPECT_EQ(errno, ESRCH) << pid;
  }
}

TEST(LauncherTest, KilledWorkersSharedMemoryIsRemoved) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<pid_t> pid = cluster->Pid("decode-0");
  ASSERT_TRUE(pid.ok());
  const std::string segment = absl::StrCat("/dev/shm/pdserve-kv-", *pid, "-0");
  ASSERT_EQ(access(segment.c_str(), F_OK), 0) << segment;
  ASSERT_TRUE(cluster->Kill("decode-0", SIGKILL).ok());
  EXPECT_FALSE(cluster->WaitForChildExit(absl::Seconds(30)).ok());
  EXPECT_NE(access(segment.c_str(), F_OK), 0) << segment;
}

}  // namespace
}  // namespace pdserve::e2e
