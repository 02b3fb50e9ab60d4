#pragma once

// "Hosts" for cross-namespace end-to-end tests: N network namespaces on a bridge
// (scripts/netns-hosts.sh), pdserve processes started inside them, and everything removed in
// TearDown whatever happened. Skipped (GTEST_SKIP) where namespaces cannot be made.
//
// A test's client must dial the router inside the router's namespace, and a thread's sockets
// live in the namespace it is in: EnterNamespace(0) before any gRPC use in the process (gRPC's
// threads, started later, inherit it). Hence one binary per test file that uses this fixture.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cluster/child_process.h"
#include "gtest/gtest.h"

namespace pdserve::e2e {

// Runs a shell command, returning its exit code and output (stdout and stderr).
inline int Shell(const std::string& command, std::string* output = nullptr) {
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int status = pclose(pipe);
  if (output != nullptr) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The namespaces of one test: prefix-h0 .. prefix-h<hosts-1>, host i at subnet.<i+1>. Each test
// file picks its own prefix and subnet, so that a set made by hand (or by another test) with
// another prefix is never touched.
class NetnsHostsFixture : public ::testing::Test {
 protected:
  NetnsHostsFixture(std::string prefix, std::string subnet, int hosts)
      : prefix_(std::move(prefix)), subnet_(std::move(subnet)), hosts_(hosts) {}

  void SetUp() override {
    // gRPC's threads stay in the namespace of the first test; ctest runs each test alone.
    static bool used = false;
    if (used) {
      GTEST_SKIP() << "one cross-namespace test per process: run it alone (--gtest_filter; ctest "
                      "does)";
    }
    used = true;
    if (const std::string why = CannotMakeNamespaces(); !why.empty()) {
      GTEST_SKIP() << "cross-namespace e2e skipped: " << why;
    }
    std::string out;
    made_ = true;  // `down` is harmless even if `up` made nothing
    // The probe worked, so a failing script is a bug, not a missing privilege.
    ASSERT_EQ(Shell(absl::StrCat(ScriptEnv(), Script(), " up ", hosts_), &out), 0) << out;
    ASSERT_NE(out.find(absl::StrCat(Namespace(hosts_ - 1), " ", Host(hosts_ - 1))),
              std::string::npos)
        << out;
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

  // The children are stopped first, each checked to exit 0 on SIGTERM (they also die with this
  // process: PR_SET_PDEATHSIG), then the namespaces are removed and checked gone.
  void TearDown() override {
    for (auto& [name, pid] : children_) kill(pid, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (auto& [name, pid] : children_) {
      int status = 0;
      bool stopped = true;
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (absl::Now() > deadline) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          stopped = false;
          break;
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
      // A clean stop on SIGTERM: exit code 0, not a crash on the way out (a transport torn
      // down with work pending aborts inside UCX).
      EXPECT_TRUE(stopped && WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << name << (stopped ? "" : " did not stop within 10 s of SIGTERM")
          << (WIFSIGNALED(status) ? absl::StrCat(" died of signal ", WTERMSIG(status))
                                  : absl::StrCat(" exited with ", WEXITSTATUS(status)));
      if (HasFailure()) {
        std::cerr << "---- " << name << " ----\n"
                  << cluster::TailOfFile(absl::StrCat(dir_, "/", name, ".log"), 30);
      }
    }
    children_.clear();
    if (made_) {
      // Every process started in a namespace is gone (a worker's helper included).
      for (int i = 0; i < hosts_; ++i) {
        EXPECT_EQ(PidsIn(Namespace(i)), "") << "processes left in " << Namespace(i);
      }
      std::string out;
      EXPECT_EQ(Shell(absl::StrCat(ScriptEnv(), Script(), " down"), &out), 0) << out;
      std::string left;
      Shell(absl::StrCat("ip netns list | grep -- '", prefix_, "-'"), &left);
      EXPECT_EQ(left, "") << "namespaces left behind";
    }
    // PDSERVE_E2E_KEEP_LOGS=1 keeps every process's log for a look after the test.
    if (!dir_.empty() && getenv("PDSERVE_E2E_KEEP_LOGS") != nullptr) {
      std::cerr << "logs kept in " << dir_ << "\n";
    } else if (!dir_.empty()) {
      Shell(absl::StrCat("rm -rf ", dir_));
    }
  }

  std::string Host(int i) const { return absl::StrCat(subnet_, ".", i + 1); }
  std::string Namespace(int i) const { return absl::StrCat(prefix_, "-h", i); }

  // `pdserve args...` inside host i's namespace, UCX on tcp only (the veth link); the log is
  // <dir>/<name>.log. `ip netns exec` execs pdserve, so the pid is pdserve's own.
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

  // SIGKILLs one child and reaps it (gone from children_).
  void KillChild(const std::string& name) {
    auto it = children_.find(name);
    ASSERT_NE(it, children_.end()) << name;
    ASSERT_EQ(kill(it->second, SIGKILL), 0) << name;
    int status = 0;
    ASSERT_EQ(waitpid(it->second, &status, 0), it->second) << name;
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << name << " " << status;
    children_.erase(it);
  }

  // Polls until something accepts TCP connections at host:port (from this thread's namespace),
  // so that a client's first connection does not fail and leave its channel backing off.
  static bool WaitForListener(const std::string& host, int port, absl::Duration timeout) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return false;
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return false;
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      close(fd);
      if (up) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // Enters host i's namespace for this thread and the gRPC threads it will start.
  void EnterNamespace(int i) {
    const int fd = open(absl::StrCat("/var/run/netns/", Namespace(i)).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0);
    close(fd);
  }

  std::string LogOf(const std::string& name) const { return absl::StrCat(dir_, "/", name, ".log"); }

  bool made_ = false;
  std::string dir_;
  std::string secret_;
  std::map<std::string, pid_t> children_;

 private:
  // Processes (but this one, which may have entered h0) whose network namespace is `ns`:
  // `ip netns pids` in C++, since a shell started from here would itself be in h0.
  static std::string PidsIn(const std::string& ns) {
    struct stat want;
    if (stat(absl::StrCat("/var/run/netns/", ns).c_str(), &want) != 0) return "";
    std::string pids;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string pid = entry.path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (pid == std::to_string(getpid())) continue;
      struct stat got;
      if (stat(absl::StrCat("/proc/", pid, "/ns/net").c_str(), &got) != 0) continue;
      if (got.st_ino == want.st_ino && got.st_dev == want.st_dev) {
        absl::StrAppend(&pids, pid, " (", cluster::TailOfFile(absl::StrCat("/proc/", pid,
                                                                          "/comm"), 1), ") ");
      }
    }
    return pids;
  }

  static std::string Script() {
    return absl::StrCat(PDSERVE_SOURCE_DIR, "/scripts/netns-hosts.sh");
  }

  std::string ScriptEnv() const {
    return absl::StrCat("PDSERVE_NETNS_PREFIX=", prefix_, " PDSERVE_NETNS_SUBNET=", subnet_, " ");
  }

  // Why namespaces cannot be made here, or "" when they can (a probe namespace made and removed).
  std::string CannotMakeNamespaces() const {
    if (Shell("command -v ip && command -v tc") != 0) {
      return "no `ip`/`tc` (iproute2; bash scripts/install-deps.sh installs it)";
    }
    std::string out;
    const std::string probe = absl::StrCat(prefix_, "-probe");
    if (Shell(absl::StrCat("ip netns add ", probe), &out) != 0) {
      return absl::StrCat("cannot create a network namespace (needs root or CAP_NET_ADMIN and "
                          "CAP_SYS_ADMIN): ", out);
    }
    Shell(absl::StrCat("ip netns delete ", probe));
    return "";
  }

  const std::string prefix_;
  const std::string subnet_;
  const int hosts_;
};

}  // namespace pdserve::e2e
