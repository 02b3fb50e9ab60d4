// Across "hosts" on one machine: the router, a prefill worker and a decode worker each in a
// network namespace of its own (scripts/netns-hosts.sh), KV over UCX on tcp across the veth
// links, every address the registered (advertised) one. Skipped where namespaces cannot be made.
//
// Its own binary: the test's client must dial the router inside the router's namespace, and a
// thread's sockets live in the namespace it is in, so the main thread enters it before gRPC
// starts any thread (which then inherit it). Any earlier gRPC use in the process would break that.

#include <fcntl.h>
#include <sys/stat.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cluster/child_process.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_client.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

// Its own prefix, so that a set made by hand with the default one is never touched.
constexpr char kPrefix[] = "pdserve-e2e";
constexpr char kSubnet[] = "10.213.7";

std::string Script() { return absl::StrCat(PDSERVE_SOURCE_DIR, "/scripts/netns-hosts.sh"); }

// Runs a shell command, returning its exit code and output.
int Shell(const std::string& command, std::string* output = nullptr) {
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int status = pclose(pipe);
  if (output != nullptr) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ScriptEnv() {
  return absl::StrCat("PDSERVE_NETNS_PREFIX=", kPrefix, " PDSERVE_NETNS_SUBNET=", kSubnet, " ");
}

// Why namespaces cannot be made here, or "" when they can (a probe namespace made and removed).
std::string CannotMakeNamespaces() {
  if (Shell("command -v ip && command -v tc") != 0) {
    return "no `ip`/`tc` (iproute2; bash scripts/install-deps.sh installs it)";
  }
  std::string out;
  const std::string probe = absl::StrCat(kPrefix, "-probe");
  if (Shell(absl::StrCat("ip netns add ", probe), &out) != 0) {
    return absl::StrCat("cannot create a network namespace (needs root or CAP_NET_ADMIN and "
                        "CAP_SYS_ADMIN): ", out);
  }
  Shell(absl::StrCat("ip netns delete ", probe));
  return "";
}

// The namespaces, removed in the destructor whatever happened in the test; the children are
// stopped first (they also die with this process: PR_SET_PDEATHSIG).
class NetnsHostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = CannotMakeNamespaces(); !why.empty()) {
      GTEST_SKIP() << "cross-namespace e2e skipped: " << why;
    }
    std::string out;
    made_ = true;  // `down` is harmless even if `up` made nothing
    // The probe worked, so a failing script is a bug, not a missing privilege.
    ASSERT_EQ(Shell(absl::StrCat(ScriptEnv(), Script(), " up 3"), &out), 0) << out;
    ASSERT_NE(out.find(absl::StrCat(kPrefix, "-h2 ", kSubnet, ".3")), std::string::npos) << out;
    char dir[] = "/tmp/pdserve-netns-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    secret_ = dir_ + "/cluster.secret";
    {
      std::ofstream s(secret_);
      s << "0123456789abcdef0123456789abcdef0123456789abcdef\n";
    }
    ASSERT_EQ(chmod(secret_.c_str(), 0600), 0);
  }

  void TearDown() override {
    for (auto& [name, pid] : children_) {
      kill(pid, SIGTERM);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (auto& [name, pid] : children_) {
      int status = 0;
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (absl::Now() > deadline) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
      if (HasFailure()) {
        std::cerr << "---- " << name << " ----\n"
                  << cluster::TailOfFile(absl::StrCat(dir_, "/", name, ".log"), 30);
      }
    }
    children_.clear();
    if (made_) {
      std::string out;
      EXPECT_EQ(Shell(absl::StrCat(ScriptEnv(), Script(), " down"), &out), 0) << out;
      std::string left;
      Shell(absl::StrCat("ip netns list | grep ", kPrefix), &left);
      EXPECT_EQ(left, "") << "namespaces left behind";
    }
    if (!dir_.empty()) Shell(absl::StrCat("rm -rf ", dir_));
  }

  std::string Host(int i) const { return absl::StrCat(kSubnet, ".", i + 1); }
  std::string Namespace(int i) const { return absl::StrCat(kPrefix, "-h", i); }

  // `pdserve args...` inside host i's namespace, UCX on tcp only (the veth link).
  void Spawn(const std::string& name, int host, std::vector<std::string> args) {
    cluster::ChildSpec spec;
    spec.argv = {"/usr/sbin/ip", "netns", "exec", Namespace(host), PDSERVE_BINARY};
    if (access(spec.argv[0].c_str(), X_OK) != 0) spec.argv[0] = "/sbin/ip";
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {{"UCX_TLS", "tcp"}};
    spec.log_path = absl::StrCat(dir_, "/", name, ".log");
    absl::StatusOr<pid_t> pid = cluster::SpawnChild(spec);
    ASSERT_TRUE(pid.ok()) << pid.status();
    children_.emplace(name, *pid);
  }

  // Enters host 0's namespace for this thread and the gRPC threads it will start.
  void EnterRouterNamespace() {
    const int fd = open(absl::StrCat("/var/run/netns/", Namespace(0)).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0);
    close(fd);
  }

  bool made_ = false;
  std::string dir_;
  std::string secret_;
  std::map<std::string, pid_t> children_;
};

TEST_F(NetnsHostsTest, RouterPrefillDecodeInThreeNamespacesServeTheModelsTokens) {
  const std::vector<std::string> common = {"--cluster-secret-file", secret_, "--transfer", "ucx"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  Spawn("router", 0, with({"router", "--listen", Host(0), "--port", "50051", "--internal-port",
                           "50052", "--http-port", "-1"}));
  const std::string router = absl::StrCat(Host(0), ":50052");
  const std::vector<std::string> worker = {"--router", router, "--num-blocks", "128",
                                           "--threads", "1", "--metrics-port", "-1"};
  std::vector<std::string> prefill = with({"prefill", "--worker-id", "prefill-0", "--listen",
                                           Host(1), "--host-id", "host-1"});
  prefill.insert(prefill.end(), worker.begin(), worker.end());
  Spawn("prefill-0", 1, prefill);
  // Listens on every interface of its namespace (asked for explicitly), so peers can only find
  // it through the advertised address.
  std::vector<std::string> decode =
      with({"decode", "--worker-id", "decode-0", "--listen", "0.0.0.0", "--advertise", Host(2),
            "--host-id", "host-2", "--poison-freed-kv"});
  decode.insert(decode.end(), worker.begin(), worker.end());
  Spawn("decode-0", 2, decode);

  EnterRouterNamespace();
  Client client(absl::StrCat(Host(0), ":50051"));
  // Ready: both workers registered and answering through the router.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<v1::ClusterStatus> status;
  while (true) {
    status = client.Status();
    if (status.ok() && status->workers_size() == 2) break;
    ASSERT_LT(absl::Now(), deadline) << "workers did not register: "
                                     << (status.ok() ? status->DebugString()
                                                     : status.status().ToString());
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::map<std::string, const v1::WorkerStatus*> by_id;
  for (const v1::WorkerStatus& w : status->workers()) by_id[w.worker_id()] = &w;
  ASSERT_TRUE(by_id.contains("prefill-0") && by_id.contains("decode-0"));
  // Registered: the advertised addresses (never 0.0.0.0) and the host ids given.
  EXPECT_TRUE(absl::StartsWith(by_id["prefill-0"]->address(), Host(1) + ":"));
  EXPECT_TRUE(absl::StartsWith(by_id["decode-0"]->address(), Host(2) + ":"));
  EXPECT_EQ(by_id["prefill-0"]->host_id(), "host-1");
  EXPECT_EQ(by_id["decode-0"]->host_id(), "host-2");

  const ModelConfig tiny = *PresetConfig("tiny");
  for (int i = 0; i < 4; ++i) {
    const int prompt = 40 + 37 * i;
    const int tokens = 8 + i;
    const uint64_t seed = 1000 + i;
    Outcome o = client.Generate(absl::StrCat("netns-", i), prompt, tokens, seed);
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    EXPECT_EQ(o.tokens, Expected(prompt, tokens, seed, tiny)) << "request " << i;
    EXPECT_EQ(o.timeline.transfer_backend(), "ucx");
    EXPECT_GT(o.timeline.kv_bytes(), 0u);
  }
  // The KV went over UCX's tcp transport on the namespace's veth (eth0), not shared memory.
  status = client.Status();
  ASSERT_TRUE(status.ok());
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.worker_id() == "prefill-0") {
      EXPECT_NE(w.transports().find("tcp/eth0"), std::string::npos) << w.transports();
    }
  }
  ExpectAllBlocksFree(client);
  // `pdserve status` (run in the router's namespace, as this thread is) groups by host id.
  std::string printed;
  ASSERT_EQ(Shell(absl::StrCat(PDSERVE_BINARY, " status --endpoint ", Host(0), ":50051"),
                  &printed),
            0)
      << printed;
  const size_t host1 = printed.find("host host-1: 1 worker\n");
  const size_t host2 = printed.find("host host-2: 1 worker\n");
  ASSERT_NE(host1, std::string::npos) << printed;
  ASSERT_NE(host2, std::string::npos) << printed;
  EXPECT_LT(host1, printed.find("prefill-0 "));
  EXPECT_LT(printed.find("prefill-0 "), host2);
  EXPECT_LT(host2, printed.find("decode-0 "));
}

}  // namespace
}  // namespace pdserve::e2e
