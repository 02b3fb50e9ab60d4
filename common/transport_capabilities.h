#pragma once

// What a KV transfer backend offers, declared once per backend in transfer/kv_transport.cc's
// table (transfer::KvTransportCapabilities, KvTransport::capabilities()), so that the layers
// above ask for a property instead of comparing backend names. A plain struct in common/: the
// service layer (which does not link transfer/) takes it from the worker that looked it up.
// A new backend (nccl, NIXL, Mooncake) states its line here and nothing above changes.

namespace pdserve {

struct TransportCapabilities {
  // Where the registered pool may live. device_pools: this build has a device-memory pool for
  // the backend (ucx: needs, in addition, a UCX with CUDA transports, which AllocatePoolMemory
  // checks at run time). device_pools_only: host pools are refused (cuda-ipc).
  bool host_pools = true;
  bool device_pools = false;
  bool device_pools_only = false;
  // One-sided: the sender writes into the receiver's registered pool and the receiver posts
  // nothing per batch (every backend today). A two-sided backend (nccl: the receiver posts a
  // receive for every block it reserved) says false.
  bool one_sided = true;
  // The backend runs busy transport threads of its own beside the caller's (ucx: a progress
  // thread polling its worker), which benchmarks pin to their own CPUs.
  bool progress_thread = false;
  // OpenWindow: the caller's kernels write the peer's reserved blocks in place (zero-copy).
  bool in_place_windows = false;
  // Where the peers may sit: only in this process (inproc), on this host, or on any host.
  enum class Reach { kProcess, kHost, kAnyHost };
  Reach reach = Reach::kHost;
  // TransferStats::copy_wait_ns is measured (local's copy threads, ucx's progress thread), not
  // left at 0.
  bool measures_copy_wait = false;
  // Memory registrations a worker's one pool makes at start (auto: one per engine).
  int pool_registrations = 1;
};

}  // namespace pdserve
