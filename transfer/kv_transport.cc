#include "transfer/kv_transport.h"

#include <cstdlib>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "transfer/auto/auto_transport.h"
#include "transfer/inproc/inproc_transport.h"
#include "transfer/local/local_transport.h"
#include "transfer/ucx/ucx_transport.h"
#if defined(PDSERVE_HAS_CUDA)
#include "transfer/cuda_ipc/cuda_ipc_transport.h"
#endif
#if defined(PDSERVE_HAS_NCCL)
#include "transfer/nccl/nccl_transport.h"
#endif

namespace pdserve::transfer {
namespace {

struct Backend {
  const char* name;
  std::function<absl::StatusOr<std::unique_ptr<KvTransport>>(const TransportOptions&)> make;
  using Allocate =
      std::function<absl::StatusOr<std::unique_ptr<KvMemory>>(const TransportOptions&, size_t)>;
  Allocate allocate;
  // Pools in device memory (TransportOptions::pool_memory kCuda); empty: the backend has none.
  Allocate allocate_device = nullptr;
  std::function<std::string()> runtime = nullptr;
  TransportCapabilities caps;
};

using Reach = TransportCapabilities::Reach;
constexpr bool kDevicePools =
#if defined(PDSERVE_HAS_CUDA)
    true;
#else
    false;
#endif

// Every backend, by name, with what it offers. A new backend (nccl, NIXL, Mooncake) is one
// entry here plus its own folder.
const std::vector<Backend>& Backends() {
  static const std::vector<Backend> backends = {
      {.name = "local",
       .make = local::MakeLocalTransport,
       .allocate = [](const TransportOptions&,
                      size_t b) { return local::AllocateLocalPoolMemory(b); },
       .caps = {.in_place_windows = true, .reach = Reach::kHost, .measures_copy_wait = true}},
      // ucx: the pool must come from the context of the transport that registers it.
      {.name = "ucx",
       .make = ucx::MakeUcxTransport,
       .allocate = [](const TransportOptions& o,
                      size_t b) { return ucx::AllocateUcxPoolMemory(b, o.listen_host); },
       .allocate_device =
           [](const TransportOptions& o, size_t b) {
             return ucx::AllocateUcxDevicePoolMemory(b, o.listen_host);
           },
       .runtime = ucx::UcxRuntimeSummary,
       .caps = {.device_pools = kDevicePools,
                .progress_thread = true,
                .reach = Reach::kAnyHost,
                .measures_copy_wait = true}},
      // auto: local to peers on this host, ucx to the others (per peer, at LoadPeer).
      {.name = "auto",
       .make = autosel::MakeAutoTransport,
       .allocate = [](const TransportOptions&,
                      size_t b) { return autosel::AllocateAutoPoolMemory(b); },
       .runtime = ucx::UcxRuntimeSummary,
       .caps = {.progress_thread = true,
                .reach = Reach::kAnyHost,
                .measures_copy_wait = true,
                .pool_registrations = 2}},
      // inproc: a colocated worker's one pool, shared by its prefill and decode engines.
      {.name = "inproc",
       .make = inproc::MakeInprocTransport,
       .allocate = [](const TransportOptions&,
                      size_t b) { return inproc::AllocateInprocPoolMemory(b); },
#if defined(PDSERVE_HAS_CUDA)
       .allocate_device = [](const TransportOptions&,
                             size_t b) { return cuda_ipc::AllocateCudaIpcPoolMemory(b); },
#endif
       .caps = {.device_pools = kDevicePools, .reach = Reach::kProcess}},
#if defined(PDSERVE_HAS_CUDA)
      {.name = "cuda-ipc",
       .make = cuda_ipc::MakeCudaIpcTransport,
       .allocate = [](const TransportOptions&,
                      size_t b) { return cuda_ipc::AllocateCudaIpcPoolMemory(b); },
       .allocate_device = [](const TransportOptions&,
                             size_t b) { return cuda_ipc::AllocateCudaIpcPoolMemory(b); },
       .caps = {.host_pools = false,
                .device_pools = true,
                .device_pools_only = true,
                .in_place_windows = true,
                .reach = Reach::kHost}},
#endif
#if defined(PDSERVE_HAS_NCCL)
      // nccl: two-sided (the receiver posts its receives), one communicator per pair, the
      // peer on another GPU of this host (the control messages take transfer/notify's channel).
      {.name = "nccl",
       .make = nccl::MakeNcclTransport,
       .allocate = [](const TransportOptions&,
                      size_t b) { return nccl::AllocateNcclPoolMemory(b); },
       .allocate_device = [](const TransportOptions&,
                             size_t b) { return nccl::AllocateNcclPoolMemory(b); },
       .runtime = [] { return "NCCL " + nccl::NcclRuntimeSummary(); },
       .caps = {.host_pools = false,
                .device_pools = true,
                .device_pools_only = true,
                .one_sided = false,
                .progress_thread = true,
                .reach = Reach::kHost}},
#endif
  };
  return backends;
}

absl::StatusOr<const Backend*> FindBackend(const std::string& name) {
  for (const Backend& b : Backends()) {
    if (name == b.name) return &b;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown KV transfer backend '", name,
                                                 "' (expected one of ",
                                                 absl::StrJoin(KvTransportBackends(), ", "), ")"));
}

}  // namespace

void PresetTransportEnvironment() {
  // nccl reaches only peers on this host (its control messages take a unix socket), so NCCL's
  // bootstrap, which listens on the first non-loopback interface by default, listens on
  // loopback only, as ucx's tcp listener does (UCX_NET_DEVICES). The operator's value wins.
  setenv("NCCL_SOCKET_IFNAME", "lo", /*overwrite=*/0);
  // Over tcp the ucx backend's data messages (256 KiB) go as zero-copy fragments of at most
  // the receiver's segment, 64 KiB by default, which UCX reassembles in a buffer before the
  // handler copies the message into the pool: one more copy of every KV byte on the receiving
  // host. A segment that holds a whole message delivers it in place (2-core slice of a Xeon,
  // 64 MiB at 1 req/s: 15.3-17.7 ms against 17.9-21.9). UCX 1.13 reads transport keys from the
  // environment only: ucp_config_modify("TCP_RX_SEG_SIZE") is accepted and not applied.
  if (std::getenv("UCX_TCP_RX_SEG_SIZE") != nullptr) return;
  setenv("UCX_TCP_RX_SEG_SIZE", "320K", /*overwrite=*/0);
  // A process whose UCX never opens tcp (UCX_TLS=posix, ...) would warn at exit that the
  // operator's environment holds an unused UCX_TCP_RX_SEG_SIZE, which the operator never set.
  setenv("UCX_WARN_UNUSED_ENV_VARS", "n", /*overwrite=*/0);
}

absl::StatusOr<std::unique_ptr<KvTransport>> MakeKvTransport(const TransportOptions& options) {
  absl::StatusOr<const Backend*> backend = FindBackend(options.backend);
  if (!backend.ok()) return backend.status();
  return (*backend)->make(options);
}

std::vector<std::string> KvTransportBackends() {
  std::vector<std::string> names;
  for (const Backend& b : Backends()) names.push_back(b.name);
  return names;
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocatePoolMemory(const TransportOptions& options,
                                                             size_t bytes) {
  absl::StatusOr<const Backend*> backend = FindBackend(options.backend);
  if (!backend.ok()) return backend.status();
  if (options.pool_memory != MemoryKind::kCuda) return (*backend)->allocate(options, bytes);
  if (!(*backend)->allocate_device) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV transfer backend '", options.backend, "' cannot use a pool in device memory"));
  }
  return (*backend)->allocate_device(options, bytes);
}

absl::StatusOr<TransportCapabilities> KvTransportCapabilities(const std::string& name) {
  absl::StatusOr<const Backend*> backend = FindBackend(name);
  if (!backend.ok()) return backend.status();
  return (*backend)->caps;
}

TransportCapabilities KvTransport::capabilities() const {
  absl::StatusOr<TransportCapabilities> caps = KvTransportCapabilities(backend());
  return caps.ok() ? *caps : TransportCapabilities{};
}

absl::StatusOr<std::string> KvTransportRuntime(const std::string& name) {
  absl::StatusOr<const Backend*> backend = FindBackend(name);
  if (!backend.ok()) return backend.status();
  return (*backend)->runtime ? (*backend)->runtime() : std::string();
}

absl::StatusOr<std::unique_ptr<KvCache>> CreatePoolCache(const TransportOptions& options,
                                                         const ModelConfig& config,
                                                         uint32_t num_blocks, KvLayout layout) {
  KvGeometry geometry(config, num_blocks, layout);
  absl::StatusOr<std::unique_ptr<KvMemory>> memory =
      AllocatePoolMemory(options, static_cast<size_t>(geometry.region_bytes()));
  if (!memory.ok()) return memory.status();
  return KvCache::Create(config, num_blocks, layout, std::move(*memory));
}

absl::StatusOr<RegisteredPool> OpenRegisteredPool(const TransportOptions& options,
                                                  const ModelConfig& config, uint32_t num_blocks,
                                                  KvLayout layout) {
  RegisteredPool pool;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, config, num_blocks, layout);
  if (!cache.ok()) return cache.status();
  pool.cache = std::move(*cache);
  absl::StatusOr<std::unique_ptr<KvTransport>> transport = MakeKvTransport(options);
  if (!transport.ok()) return transport.status();
  pool.transport = std::move(*transport);
  if (absl::Status s = pool.transport->RegisterPool(*pool.cache); !s.ok()) return s;
  absl::StatusOr<std::string> descriptor = pool.transport->ExportDescriptor();
  if (!descriptor.ok()) return descriptor.status();
  pool.descriptor = std::move(*descriptor);
  return pool;
}

}  // namespace pdserve::transfer
