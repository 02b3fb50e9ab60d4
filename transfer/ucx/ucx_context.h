#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ucp/api/ucp.h>

#include "absl/status/statusor.h"
#include "kvcache/kv_memory.h"

namespace pdserve::transfer::ucx {

// One UCP context per process and per UCX_TLS value and network interface (UCX reads its
// environment when a context is created, so a test that pins another UCX_TLS gets another
// context). Every context excludes the group-writable sysv transport and keeps network
// transports on the interface of the worker's advertised host (ucx_config.h says why). Shared
// by the pool memory it allocates and by the transports, so that a pool UCX allocated is
// registered with the context that will put from / into it.
class UcxContext {
 public:
  // `listen_host`: the address the worker advertises (TransportOptions::listen_host).
  // InvalidArgument when UCX_TLS names only sysv.
  static absl::StatusOr<std::shared_ptr<UcxContext>> Get(
      const std::string& listen_host = "127.0.0.1");
  ~UcxContext();
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;

  ucp_context_h handle() const { return context_; }
  bool wakeup() const { return wakeup_; }  // workers can sleep on an event fd
  const std::string& tls() const { return tls_; }
  // Whether the linked UCX can register and move device memory (UCS_MEMORY_TYPE_CUDA among the
  // context's memory types: a UCX built with cuda_copy / cuda_ipc on a host with a GPU driver).
  bool cuda_memory() const { return cuda_memory_; }
  // "UCX 1.22.0, memory types host,cuda,cuda-managed (CUDA memory: yes)".
  const std::string& summary() const { return summary_; }
  // The UCX_TLS in force lets UCX reach same-host peers through shared memory (AllowsSharedMemory
  // in ucx_config.h): such peers are connected without peer-failure handling and watched by pid.
  bool shared_memory() const { return shared_memory_; }
  // This host's active RDMA ports kept in UCX_NET_DEVICES ("mlx5_0:1"); empty when none (or the
  // operator chose the devices): a peer on another host reached over tcp alone is then expected.
  const std::vector<std::string>& rdma_ports() const { return rdma_ports_; }

 private:
  UcxContext(ucp_context_h context, bool wakeup, std::string tls, bool shared_memory)
      : context_(context), wakeup_(wakeup), tls_(std::move(tls)), shared_memory_(shared_memory) {}
  void QueryMemoryTypes();
  ucp_context_h context_;
  bool wakeup_;
  std::string tls_;
  bool cuda_memory_ = false;
  std::string summary_;
  bool shared_memory_;
  std::vector<std::string> rdma_ports_;
};

// A KV pool allocated by UCX itself (ucp_mem_map with UCP_MEM_MAP_ALLOCATE): with shared-memory
// transports (posix, sysv) the memory is then a segment the peer can attach, so puts are
// direct copies instead of active-message emulation. The mapping is the pool's one
// registration; the transport reuses it.
class UcxPoolMemory final : public KvMemory {
 public:
  static absl::StatusOr<std::unique_ptr<UcxPoolMemory>> Allocate(size_t bytes,
                                                                  const std::string& listen_host);
  ~UcxPoolMemory() override;

  std::byte* data() const override { return data_; }
  size_t size() const override { return size_; }
  MemoryKind kind() const override { return MemoryKind::kHost; }

  const std::shared_ptr<UcxContext>& context() const { return context_; }
  ucp_mem_h memh() const { return memh_; }

 private:
  UcxPoolMemory(std::shared_ptr<UcxContext> context, ucp_mem_h memh, std::byte* data, size_t size)
      : context_(std::move(context)), memh_(memh), data_(data), size_(size) {}
  std::shared_ptr<UcxContext> context_;
  ucp_mem_h memh_;
  std::byte* data_;
  size_t size_;
};

absl::Status UcsError(const std::string& what, ucs_status_t status);

// The error for a pool in device memory when the linked UCX cannot register it.
absl::Status NoCudaMemoryError(const UcxContext& context);

}  // namespace pdserve::transfer::ucx
