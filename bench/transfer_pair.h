#pragma once

// The two-process set-up the transfer benchmarks share: this process sends KV blocks from its
// own pool into the pool of a receiver process it starts by re-executing the pdserve binary
// (`pdserve bench transfer --receiver SPEC`). `pdserve bench transfer` sweeps block and batch
// sizes over it; `pdserve bench` uses it for its same-run baseline of one request's KV.
//
//   BackendSpec b{"ucx", "posix"};
//   ASSIGN_OR_RETURN(auto receiver, ReceiverProcess::Start(ReceiverSpec(b, shape, layout, n, -1)));
//   ... transport->LoadPeer(receiver->descriptor()) ...
//   // destroying `receiver` closes its stdin: it exits and is reaped

#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "kvcache/kv_layout.h"
#include "transfer/kv_transport.h"

namespace pdserve::bench {

// A backend under test: "local", or "ucx" with a pinned UCX_TLS (empty: UCX chooses).
struct BackendSpec {
  std::string backend;
  std::string tls;
  std::string label() const;  // "local", "ucx/posix"
};

// A pool shape: preset and block size give the block bytes (layer-major fragments are
// block bytes / layers).
struct Shape {
  std::string preset;
  int block_size;
};

// The receiving process. Start returns once it printed its pool descriptor. `netns` non-empty:
// it runs in that network namespace (`ip netns exec NETNS`, root), for a link between two
// namespaces (bench/transfer_link.h).
class ReceiverProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ReceiverProcess>> Start(const std::string& spec,
                                                                const std::string& netns = "");
  ~ReceiverProcess();  // closes its stdin (it exits) and reaps it
  ReceiverProcess(const ReceiverProcess&) = delete;
  ReceiverProcess& operator=(const ReceiverProcess&) = delete;
  const std::string& descriptor() const { return descriptor_; }

 private:
  ReceiverProcess() = default;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string descriptor_;
};

// The receiver's --receiver argument; `cpu` >= 0: the receiver pins itself (and so every thread
// it starts) to that CPU. `listen_host` non-empty: the address its transport listens on and
// advertises (TransportOptions::listen_host; default 127.0.0.1).
std::string ReceiverSpec(const BackendSpec& b, const Shape& s, KvLayout layout, uint32_t blocks,
                         int cpu, const std::string& listen_host = "");

// Where the two sides of a ucx row and of ucx_perftest run: the first two CPUs this process
// may use (sender / perftest client, receiver / perftest server), or {-1, -1} on one CPU or
// without taskset. Both processes of either pair spin, and the scheduler does not always
// spread two new busy processes at once: ucx_perftest runs of 0.1 - 0.3 s measured 12 - 13
// GB/s at 2 MiB unpinned against 17 - 19 pinned on the quiet 2-core host, with the client
// getting 0.09 s of CPU for a 0.3 s run.
std::pair<int, int> SideCpus();

// Whether `backend`'s sides spin threads of their own (its capabilities' progress_thread: ucx),
// which then run pinned to SideCpus.
bool ProgressThreadBackend(const std::string& backend);

// Pins the calling thread (and the threads it starts meanwhile) to `cpu` while it lives; the
// previous mask comes back at the end. cpu < 0: does nothing.
class PinThread {
 public:
  explicit PinThread(int cpu);
  ~PinThread();
  PinThread(const PinThread&) = delete;
  PinThread& operator=(const PinThread&) = delete;

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

absl::StatusOr<ModelConfig> ShapeConfig(const Shape& s);

// A sending pool (every byte 0x5a) and transport in this process, connected to a receiver
// process of its own.
struct SenderPair {
  std::unique_ptr<ReceiverProcess> receiver;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<transfer::KvTransport> transport;  // after the cache: destroyed before it
  transfer::PeerId peer = 0;
};
absl::StatusOr<std::unique_ptr<SenderPair>> ConnectSender(
    std::unique_ptr<ReceiverProcess> receiver, const transfer::TransportOptions& options,
    const ModelConfig& config, uint32_t blocks, KvLayout layout);

// Destination blocks as a decode pool hands them out after some churn: runs of 8 consecutive
// blocks in shuffled order (so both coalescing and scatter show).
std::vector<transfer::BlockCopy> MakeCopies(uint32_t n);

}  // namespace pdserve::bench
