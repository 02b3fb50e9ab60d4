// The cluster launcher as a library: clear errors, child deaths reported with their cause, no
// process left behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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

// The variable `key` in the environment of process `pid` ("" when it has none).
std::string EnvOf(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/environ"), std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    if (entry.rfind(key + "=", 0) == 0) return entry.substr(key.size() + 1);
  }
  return "";
}

// --prefill-gpus 0 --decode-gpus 1,0: each worker's own GPU first in its CUDA_VISIBLE_DEVICES,
// the cluster's other GPU after it; NVLink multicast off in every process.
TEST(LauncherTest, WorkersRunOnTheirPlacedGpus) {
  if (std::getenv("CUDA_VISIBLE_DEVICES") != nullptr) GTEST_SKIP() << "ids would map through it";
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.gpus.prefill = {0};
  options.gpus.decode = {1, 0};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  auto env = [&](const std::string& child, const std::string& key) {
    absl::StatusOr<pid_t> pid = cluster->Pid(child);
    EXPECT_TRUE(pid.ok()) << child;
    return pid.ok() ? EnvOf(*pid, key) : "?";
  };
  EXPECT_EQ(env("prefill-0", "CUDA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(env("decode-0", "CUDA_VISIBLE_DEVICES"), "1,0");
  EXPECT_EQ(env("decode-1", "CUDA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(env("router", "CUDA_VISIBLE_DEVICES"), "");
  for (const std::string& child : cluster->ChildNames()) {
    if (std::getenv("NCCL_NVLS_ENABLE") != nullptr) break;  // the launcher's own value wins
    EXPECT_EQ(env(child, "NCCL_NVLS_ENABLE"), "0") << child;
  }
  // A bad id fails before anything starts.
  options.gpus.decode = {-1};
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> bad = cluster::Cluster::Start(options);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
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

TEST(LauncherTest, OwnLogFolderIsRemovedAfterACleanRun) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  const std::string log_dir = cluster->options().log_dir;
  ASSERT_EQ(access((log_dir + "/router.log").c_str(), F_OK), 0) << log_dir;
  cluster.reset();
  EXPECT_NE(access(log_dir.c_str(), F_OK), 0) << log_dir;
}

TEST(LauncherTest, OwnLogFolderIsKeptWhenAProcessDiedAbnormally) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  const std::string log_dir = cluster->options().log_dir;
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  EXPECT_FALSE(cluster->WaitForChildExit(absl::Seconds(30)).ok());
  cluster.reset();
  EXPECT_EQ(access((log_dir + "/prefill-0.log").c_str(), F_OK), 0) << log_dir;
  std::error_code ec;
  std::filesystem::remove_all(log_dir, ec);
}

TEST(LauncherTest, GivenLogFolderIsKeptAfterACleanRun) {
  char tmpl[] = "/tmp/pdserve-launcher-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.log_dir = tmpl;
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  cluster.reset();
  EXPECT_EQ(access((std::string(tmpl) + "/router.log").c_str(), F_OK), 0) << tmpl;
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
}

}  // namespace
}  // namespace pdserve::e2e
