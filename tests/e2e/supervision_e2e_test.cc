// Supervision and health with real processes: a worker or router killed under the supervisor is
// restarted and serves again; a SIGTERMed worker drains (nothing new goes to it, what it holds
// finishes, it exits 0); a decode worker that fails every request stops winning placement; a
// stuck decode engine fails its request with DEADLINE_EXCEEDED instead of holding it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "cluster/child_process.h"
#include "cluster/supervisor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_spec.h"
#include "service/cluster_auth.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

// Polls `condition` (and the supervisor, when given) until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout,
             cluster::Supervisor* supervisor = nullptr) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (supervisor != nullptr) {
      EXPECT_TRUE(supervisor->Poll().ok());
    }
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// The router's record of a worker (empty worker_id when it does not list it).
v1::WorkerStatus WorkerOf(Client& client, const std::string& id) {
  absl::StatusOr<v1::ClusterStatus> s = client.Status();
  if (s.ok()) {
    for (const v1::WorkerStatus& w : s->workers()) {
      if (w.worker_id() == id) return w;
    }
  }
  return v1::WorkerStatus();
}

// One verified request; returns the decode worker that served it ("" when it failed).
std::string ServeOne(Client& client, const std::string& id, uint64_t seed) {
  Outcome o = client.Generate(id, 40, 8, seed);
  EXPECT_TRUE(o.status.ok()) << id << ": " << o.status.error_message();
  if (!o.status.ok()) return "";
  EXPECT_EQ(o.tokens, Expected(40, 8, seed)) << id;
  return o.timeline.decode_worker();
}

TEST(SupervisionTest, KilledDecodeWorkerIsRestartedAndRegistersAgainWhileTheClusterServes) {
  auto cluster = Start(Options("local", 1, 2));
  ASSERT_NE(cluster, nullptr);
  cluster::Supervisor supervisor(*cluster);
  Client client(cluster->endpoint());
  const pid_t old_pid = *cluster->Pid("decode-0");
  ASSERT_TRUE(cluster->Kill("decode-0", SIGKILL).ok());
  // Meanwhile the cluster serves: a request either succeeds with the right tokens on the
  // survivor, or (placed on the dead worker before the router noticed) ends UNAVAILABLE.
  int served = 0;
  for (int i = 0; i < 5; ++i) {
    Outcome o = client.Generate("during" + std::to_string(i), 40, 8, 10 + i);
    ASSERT_TRUE(supervisor.Poll().ok());
    if (o.status.ok()) {
      EXPECT_EQ(o.tokens, Expected(40, 8, 10 + i));
      served++;
    } else {
      EXPECT_EQ(o.status.error_code(), grpc::StatusCode::UNAVAILABLE) << o.status.error_message();
    }
  }
  EXPECT_GE(served, 4);
  // Back under its name with a new pid, registered and live.
  ASSERT_TRUE(WaitFor(
      [&] {
        const v1::WorkerStatus w = WorkerOf(client, "decode-0");
        return w.live() && w.pid() != 0 && w.pid() != old_pid;
      },
      absl::Seconds(30), &supervisor));
  EXPECT_EQ(supervisor.restarts("decode-0"), 1);
  EXPECT_NE(*cluster->Pid("decode-0"), old_pid);
  // The dead process's pool is gone, the new one's is there.
  EXPECT_NE(access(absl::StrCat("/dev/shm/pdserve-kv-", old_pid, "-0").c_str(), F_OK), 0);
  EXPECT_EQ(
      access(absl::StrCat("/dev/shm/pdserve-kv-", *cluster->Pid("decode-0"), "-0").c_str(), F_OK),
      0);
  // Ties go to decode-0: sequential requests land on the restarted worker.
  EXPECT_EQ(ServeOne(client, "after", 99), "decode-0");
  ExpectAllBlocksFree(client);
}

TEST(SupervisionTest, KilledRouterIsRestartedOnItsPortAndWorkersRegisterAgain) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  cluster::Supervisor supervisor(*cluster);
  Client client(cluster->endpoint());
  const pid_t old_pid = *cluster->Pid("router");
  ASSERT_TRUE(cluster->Kill("router", SIGKILL).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        return s.ok() && s->workers_size() == 2;
      },
      absl::Seconds(30), &supervisor));
  EXPECT_NE(*cluster->Pid("router"), old_pid);
  EXPECT_EQ(supervisor.restarts("router"), 1);
  EXPECT_EQ(ServeOne(client, "after-router", 5), "decode-0");
}

// exit code of a reaped child, -1 until it exited (or when it was killed by a signal).
int ExitCode(const std::vector<cluster::ChildExit>& exits, const std::string& name) {
  for (const cluster::ChildExit& e : exits) {
    if (e.name == name && WIFEXITED(e.wait_status)) return WEXITSTATUS(e.wait_status);
  }
  return -1;
}

TEST(SupervisionTest, SigtermDrainsAWorkerNewRequestsGoElsewhereInFlightOnesFinishExitZero) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.decode_args.insert(options.decode_args.end(), {"--min-step-us", "3000"});
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  constexpr int kLoad = 4, kTokens = 300;  // about a second of decoding each
  std::vector<Outcome> load(kLoad);
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kLoad; ++i) {
    threads.emplace_back([&, i] {
      load[i] = client.Generate(Client::Request("L" + std::to_string(i), 32, kTokens, 50 + i),
                                [&] { started++; });
    });
  }
  ASSERT_TRUE(WaitFor([&] { return started == kLoad; }, absl::Seconds(60)));
  ASSERT_TRUE(cluster->Kill("decode-0", SIGTERM).ok());
  // The drain is announced in a heartbeat at once; from then on nothing new goes to decode-0.
  ASSERT_TRUE(WaitFor([&] { return WorkerOf(client, "decode-0").draining(); }, absl::Seconds(30)));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ServeOne(client, "new" + std::to_string(i), 70 + i), "decode-1");
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> decoders;
  for (int i = 0; i < kLoad; ++i) {
    ASSERT_TRUE(load[i].status.ok()) << i << ": " << load[i].status.error_message();
    EXPECT_EQ(load[i].tokens, Expected(32, kTokens, 50 + i)) << i;
    decoders.insert(load[i].timeline.decode_worker());
  }
  EXPECT_TRUE(decoders.contains("decode-0"));  // the drained worker did finish requests
  std::vector<cluster::ChildExit> exits;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (cluster::ChildExit& e : cluster->CollectExits()) exits.push_back(e);
        return !exits.empty();
      },
      absl::Seconds(30)));
  EXPECT_EQ(ExitCode(exits, "decode-0"), 0);
}

TEST(SupervisionTest, FastFailingDecodeWorkerStopsWinningPlacement) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.decode_worker_args = {{"--fault", "fail-decode"}};  // decode-0: wins every tie
  options.router_args = {"--breaker-failures", "3", "--breaker-quarantine-s", "600"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<std::string> failed;
  for (int i = 0; i < 10; ++i) {
    const std::string id = "r" + std::to_string(i);
    Outcome o = client.Generate(id, 40, 8, 20 + i);
    if (o.status.ok()) {
      EXPECT_EQ(o.tokens, Expected(40, 8, 20 + i)) << id;
      EXPECT_EQ(o.timeline.decode_worker(), "decode-1") << id;
    } else {
      EXPECT_THAT(o.status.error_message(), HasSubstr("decode-0")) << id;
      failed.push_back(id);
    }
  }
  // Exactly the threshold's worth, then the breaker keeps decode-0 out.
  EXPECT_THAT(failed, ::testing::ElementsAre("r0", "r1", "r2"));
  const v1::WorkerStatus w = WorkerOf(client, "decode-0");
  EXPECT_TRUE(w.quarantined());
  EXPECT_EQ(w.consecutive_failures(), 3u);
}

TEST(SupervisionTest, StuckDecodeEngineFailsItsRequestWithDeadlineExceeded) {
  cluster::ClusterOptions options = Options("local", 1, 2);
  options.decode_worker_args = {{"--fault", "stall-decode"}};
  // First token within transfer (2 s) + token (2 s) timeouts, instead of 630 s.
  options.router_args = {"--token-timeout-s", "2", "--transfer-timeout-s", "2"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome stuck = client.Generate("stuck", 40, 8, 3);
  EXPECT_EQ(stuck.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << stuck.status.error_message();
  EXPECT_THAT(stuck.status.error_message(), HasSubstr("no token from decode worker decode-0"));
  EXPECT_EQ(WorkerOf(client, "decode-0").consecutive_failures(), 1u);
}

// A decode worker started by hand (no launcher to clean up after it) against `endpoint`.
pid_t StartHandWorker(const std::string& endpoint, const std::string& secret_file,
                      const std::string& id, const std::string& log_path) {
  absl::StatusOr<pid_t> pid = cluster::SpawnChild(cluster::ChildSpec{
      .argv = {PDSERVE_BINARY, "decode", "--worker-id", id, "--router", endpoint, "--port", "0",
               "--transfer", "local", "--num-blocks", "256", "--drain-grace-s", "5",
               "--cluster-secret-file", secret_file},
      .log_path = log_path});
  EXPECT_TRUE(pid.ok()) << pid.status();
  return pid.ok() ? *pid : -1;
}

TEST(SupervisionTest, KilledHandStartedWorkersPoolIsReclaimedByTheNextStart) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  const std::string logs = cluster->options().log_dir;
  const pid_t first = StartHandWorker(cluster->internal_endpoint(), cluster->secret_file(),
                                      "decode-hand", logs + "/hand-1.log");
  ASSERT_GT(first, 0);
  ASSERT_TRUE(WaitFor([&] { return WorkerOf(client, "decode-hand").live(); }, absl::Seconds(30)));
  const std::string segment = absl::StrCat("/dev/shm/pdserve-kv-", first, "-0");
  ASSERT_EQ(access(segment.c_str(), F_OK), 0) << segment;
  ASSERT_EQ(kill(first, SIGKILL), 0);
  ASSERT_EQ(waitpid(first, nullptr, 0), first);
  EXPECT_EQ(access(segment.c_str(), F_OK), 0) << "nobody has reclaimed it yet";
  const pid_t second = StartHandWorker(cluster->internal_endpoint(), cluster->secret_file(),
                                       "decode-hand", logs + "/hand-2.log");
  ASSERT_GT(second, 0);
  ASSERT_TRUE(
      WaitFor([&] { return WorkerOf(client, "decode-hand").pid() == second; }, absl::Seconds(30)));
  EXPECT_NE(access(segment.c_str(), F_OK), 0) << segment;
  // A worker that drains and exits removes its own.
  ASSERT_EQ(kill(second, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(second, &status, 0), second);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(access(absl::StrCat("/dev/shm/pdserve-kv-", second, "-0").c_str(), F_OK), 0);
}

TEST(SupervisionTest, PrefillWorkerWhoseBatchesTimeOutStopsBeingChosen) {
  cluster::ClusterOptions options = Options("local", 2, 1);
  options.prefill_worker_args = {{"--min-batch-us", "3000000"}};  // prefill-0: 3 s a batch
  options.router_args = {"--prefill-timeout-s",    "1",  "--breaker-failures", "2",
                         "--breaker-quarantine-s", "600"};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  std::vector<std::string> failed;
  for (int i = 0; i < 6; ++i) {
    const std::string id = "p" + std::to_string(i);
    Outcome o = client.Generate(id, 40, 4, 40 + i);
    if (o.status.ok()) {
      EXPECT_EQ(o.tokens, Expected(40, 4, 40 + i)) << id;
      EXPECT_EQ(o.timeline.prefill_worker(), "prefill-1") << id;
    } else {
      EXPECT_THAT(o.status.error_message(), HasSubstr("prefill-0")) << id;
      failed.push_back(id);
    }
  }
  EXPECT_THAT(failed, ::testing::ElementsAre("p0", "p1"));
  EXPECT_TRUE(WorkerOf(client, "prefill-0").quarantined());
}

TEST(SupervisionTest, RegistrationFromAnAddressThatDoesNotAnswerIsRefused) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  // Accepts connections (the kernel's backlog) but never speaks: a probe can only time out.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  v1::RegisterWorkerRequest request;
  request.set_worker_id("decode-silent");
  request.set_role(v1::WORKER_ROLE_DECODE);
  request.set_address(address);
  *request.mutable_model() = ModelSpecOf(cluster->model());
  request.mutable_kv_pool()->set_transfer_backend("local");
  request.mutable_kv_pool()->set_num_blocks(4096);  // the emptiest: it would win placement
  request.mutable_kv_pool()->set_block_size(static_cast<uint32_t>(cluster->model().block_size));
  request.mutable_kv_pool()->set_block_bytes(
      static_cast<uint64_t>(cluster->model().KvBytesPerBlock()));
  std::string secret;
  std::ifstream(cluster->secret_file()) >> secret;
  auto auth = service::ClusterAuth::WithSecret(*ClusterSecret::FromText(secret));
  auto stub = v1::RouterControl::NewStub(auth->Channel(cluster->internal_endpoint()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::RegisterWorkerResponse response;
  const grpc::Status registered = stub->RegisterWorker(&ctx, request, &response);
  close(fd);
  EXPECT_EQ(registered.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(registered.error_message(), HasSubstr("does not answer at " + address));
  Client client(cluster->endpoint());
  EXPECT_EQ(WorkerOf(client, "decode-silent").worker_id(), "");
  EXPECT_EQ(ServeOne(client, "after", 1), "decode-0");
}

}  // namespace
}  // namespace pdserve::e2e
