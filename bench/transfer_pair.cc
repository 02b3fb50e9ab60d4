#include "bench/transfer_pair.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

extern char** environ;

namespace pdserve::bench {

std::string BackendSpec::label() const {
  return tls.empty() ? backend : absl::StrCat(backend, "/", tls);
}

absl::StatusOr<std::unique_ptr<ReceiverProcess>> ReceiverProcess::Start(const std::string& spec,
                                                                        const std::string& netns) {
  // The binary by path: /proc/self/exe means `ip` itself once ip netns exec runs it.
  char self[4096];
  const ssize_t self_len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (self_len <= 0) return absl::InternalError("cannot read /proc/self/exe");
  const std::string binary(self, self_len);
  std::string ip = "/usr/sbin/ip";
  if (access(ip.c_str(), X_OK) != 0) ip = "/sbin/ip";
  if (!netns.empty() && access(ip.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError("--receiver-netns needs iproute2's ip");
  }
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return absl::InternalError("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> args = {"pdserve",  "--log-level", "warn", "bench",
                                   "transfer", "--receiver",  spec};
  if (!netns.empty()) {
    args[0] = binary;
    args.insert(args.begin(), {"ip", "netns", "exec", netns});
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto p = std::unique_ptr<ReceiverProcess>(new ReceiverProcess);
  int rc = posix_spawn(&p->pid_, netns.empty() ? binary.c_str() : ip.c_str(), &actions, nullptr,
                       argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  p->to_ = in[1];
  p->from_ = out[0];
  if (rc != 0) {
    p->pid_ = -1;
    return absl::InternalError("cannot start the receiver process");
  }
  // Skip anything a library prints; the descriptor line starts with "@ ".
  std::string buffer;
  for (;;) {
    pollfd pfd{p->from_, POLLIN, 0};
    if (poll(&pfd, 1, 30000) <= 0) return absl::DeadlineExceededError("receiver did not start");
    char chunk[65536];
    ssize_t n = read(p->from_, chunk, sizeof(chunk));
    if (n <= 0) return absl::UnavailableError("receiver exited before its descriptor");
    buffer.append(chunk, n);
    for (size_t nl; (nl = buffer.find('\n')) != std::string::npos;) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      if (line.rfind("@ ", 0) == 0) {
        if (line.rfind("@ error ", 0) == 0) return absl::InternalError(line.substr(8));
        p->descriptor_ = line.substr(2);
        return p;
      }
    }
  }
}

ReceiverProcess::~ReceiverProcess() {
  if (to_ >= 0) close(to_);  // EOF on stdin: the receiver exits
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
  if (from_ >= 0) close(from_);
}

std::string ReceiverSpec(const BackendSpec& b, const Shape& s, KvLayout layout, uint32_t blocks,
                         int cpu, const std::string& listen_host) {
  std::string spec = absl::StrCat(b.backend, ",", b.tls, ",", s.preset, ",", s.block_size, ",",
                                  std::string(KvLayoutName(layout)), ",", blocks, ",", cpu);
  if (!listen_host.empty()) absl::StrAppend(&spec, ",", listen_host);
  return spec;
}

bool ProgressThreadBackend(const std::string& backend) {
  const absl::StatusOr<TransportCapabilities> caps = transfer::KvTransportCapabilities(backend);
  return caps.ok() && caps->progress_thread;
}

std::pair<int, int> SideCpus() {
  static const std::pair<int, int> cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (access("/usr/bin/taskset", X_OK) != 0 || sched_getaffinity(0, sizeof(set), &set) != 0) {
      return std::pair<int, int>(-1, -1);
    }
    std::vector<int> allowed;
    for (int c = 0; c < CPU_SETSIZE && allowed.size() < 2; ++c) {
      if (CPU_ISSET(c, &set)) allowed.push_back(c);
    }
    return allowed.size() < 2 ? std::pair<int, int>(-1, -1)
                              : std::pair<int, int>(allowed[0], allowed[1]);
  }();
  return cpus;
}

PinThread::PinThread(int cpu) {
  if (cpu < 0 || sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  pinned_ = sched_setaffinity(0, sizeof(one), &one) == 0;
}

PinThread::~PinThread() {
  if (pinned_) sched_setaffinity(0, sizeof(saved_), &saved_);
}

absl::StatusOr<ModelConfig> ShapeConfig(const Shape& s) {
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(s.preset));
  config.block_size = s.block_size;
  return config;
}

std::vector<transfer::BlockCopy> MakeCopies(uint32_t n) {
  std::vector<uint32_t> runs;
  for (uint32_t r = 0; r * 8 < n; ++r) runs.push_back(r);
  std::mt19937 rng(42);
  std::shuffle(runs.begin(), runs.end(), rng);
  std::vector<transfer::BlockCopy> copies;
  uint32_t src = 0;
  for (uint32_t r : runs) {
    for (uint32_t i = 0; i < 8 && r * 8 + i < n; ++i) copies.push_back({src++, r * 8 + i});
  }
  return copies;
}

absl::StatusOr<std::unique_ptr<SenderPair>> ConnectSender(
    std::unique_ptr<ReceiverProcess> receiver, const transfer::TransportOptions& options,
    const ModelConfig& config, uint32_t blocks, KvLayout layout) {
  auto p = std::make_unique<SenderPair>();
  p->receiver = std::move(receiver);
  ASSIGN_OR_RETURN(p->cache, transfer::CreatePoolCache(options, config, blocks, layout));
  std::memset(p->cache->base(), 0x5a, p->cache->memory().size());
  ASSIGN_OR_RETURN(p->transport, transfer::MakeKvTransport(options));
  RETURN_IF_ERROR(p->transport->RegisterPool(*p->cache));
  ASSIGN_OR_RETURN(p->peer, p->transport->LoadPeer(p->receiver->descriptor()));
  return p;
}

}  // namespace pdserve::bench
