// The ucx transport's life: creation of its UCP worker and progress thread, the registration of
// its KV pool and the descriptor peers load, counters, teardown; and the backend's entry points
// (ucx_transport.h). ucx_transport_impl.h says which file holds the rest.
#include "common/thread_name.h"
#include "transfer/ucx/ucx_transport.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#if defined(PDSERVE_HAS_CUDA)
#include <cuda_runtime.h>

#include "kvcache/cuda/cuda_kernels.h"
#endif

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "transfer/sender_credential.h"
#include "transfer/stream_copy.h"
#include "transfer/transport_front.h"
#include "transfer/ucx/ucx_context.h"
#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {
namespace {

// Host-memory batches up to this many bytes may be issued on the submitting thread (see
// IssueInline; ~300 us of copying over shared memory); PDSERVE_UCX_INLINE_BYTES overrides it
// (0: every batch goes to the progress thread). Larger ones go to the progress thread, so that
// Submit returns at once and the caller overlaps them with its own work.
constexpr uint64_t kDefaultInlineBytes = uint64_t{4} << 20;

std::string Base64(const void* data, size_t size) {
  return absl::Base64Escape(absl::string_view(static_cast<const char*>(data), size));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TransferEngine>> UcxEngine::Create(const EngineContext& context) {
  absl::StatusOr<std::shared_ptr<UcxContext>> ucx = UcxContext::Get(context.options.listen_host);
  if (!ucx.ok()) return ucx.status();
  std::unique_ptr<UcxEngine> t(new UcxEngine(context, *ucx));
  if (absl::Status s = t->Init(); !s.ok()) return s;
  return std::unique_ptr<TransferEngine>(std::move(t));
}

UcxEngine::UcxEngine(const EngineContext& context, std::shared_ptr<UcxContext> ucx)
    : options_(context.options),
      log_(ComponentLogger("transfer")),
      inbox_(context.inbox),
      table_(context.table),
      context_(std::move(ucx)),
      sender_header_(EncodeSenderHeader(options_.peer_credential, options_.agent_name)),
      stream_bytes_(StreamMinBytes("PDSERVE_UCX_STREAM_BYTES")),
      inline_bytes_(BytesFromEnv("PDSERVE_UCX_INLINE_BYTES", kDefaultInlineBytes)),
      register_per_batch_(BytesFromEnv("PDSERVE_UCX_REGISTER_PER_BATCH", 0) != 0),
      device_puts_(BytesFromEnv("PDSERVE_UCX_DEVICE_PUTS", 0) != 0),
      device_inline_(BytesFromEnv("PDSERVE_UCX_DEVICE_INLINE", 1) != 0) {
  if (register_per_batch_) {
    log_->warn("agent {}: PDSERVE_UCX_REGISTER_PER_BATCH is set: every KV batch registers its "
               "source memory (a study of re-registration; transfers are slower)",
               options_.agent_name);
  }
}

absl::Status UcxEngine::Init() {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  // Serialized: the progress thread and submitting threads (inline batches) take turns,
  // always under worker_mu_.
  params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  if (ucs_status_t s = ucp_worker_create(context_->handle(), &params, &worker_); s != UCS_OK) {
    worker_ = nullptr;
    return UcsError("ucp_worker_create", s);
  }
  ucp_address_t* address = nullptr;
  size_t length = 0;
  if (ucs_status_t s = ucp_worker_get_address(worker_, &address, &length); s != UCS_OK) {
    return UcsError("ucp_worker_get_address", s);
  }
  worker_address_ = Base64(address, length);
  ucp_worker_release_address(worker_, address);

  ucp_am_handler_param_t am{};
  am.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                  UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  am.id = kNotifyAmId;
  am.flags = UCP_AM_FLAG_WHOLE_MSG;
  am.cb = &UcxEngine::OnNotification;
  am.arg = this;
  if (ucs_status_t s = ucp_worker_set_am_recv_handler(worker_, &am); s != UCS_OK) {
    return UcsError("ucp_worker_set_am_recv_handler", s);
  }
  am.id = kDataAmId;
  am.cb = &UcxEngine::OnData;
  if (ucs_status_t s = ucp_worker_set_am_recv_handler(worker_, &am); s != UCS_OK) {
    return UcsError("ucp_worker_set_am_recv_handler (data)", s);
  }

  command_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (command_fd_ < 0 || epoll_fd_ < 0) return absl::InternalError("eventfd / epoll_create");
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, command_fd_, &ev);
  if (context_->wakeup()) {
    int worker_fd = -1;
    if (ucp_worker_get_efd(worker_, &worker_fd) == UCS_OK) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, worker_fd, &ev);
      can_sleep_ = true;
    }
  }
  thread_ = std::thread([this] {
    NameThisThread("ucx-progress");
    Loop();
  });
  return absl::OkStatus();
}

UcxEngine::~UcxEngine() {
  if (thread_.joinable()) {
    PostCommand([this] { stopping_ = true; });
    thread_.join();
  }
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
  if (own_memh_ != nullptr) ucp_mem_unmap(context_->handle(), own_memh_);
  if (command_fd_ >= 0) close(command_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

// Makes `device` current on the progress thread, which issues every put (UCX's CUDA
// transports copy in the calling thread's context).
absl::Status UcxEngine::UseDevice(int device) {
#if defined(PDSERVE_HAS_CUDA)
  absl::StatusOr<absl::Status> set = RunOnWorker([device] {
    const cudaError_t e = cudaSetDevice(device);
    return e == cudaSuccess ? absl::OkStatus()
                            : absl::FailedPreconditionError(absl::StrCat(
                                  "cudaSetDevice(", device, "): ", cudaGetErrorString(e)));
  });
  if (!set.ok()) return set.status();
  return *set;
#else
  return absl::FailedPreconditionError(
      "a KV pool in device memory in a pdserve built without CUDA");
#endif
}

absl::Status UcxEngine::Register(const KvCache& cache, PoolDescriptor& descriptor) {
  if (cache.memory().kind() == MemoryKind::kCuda) {
    if (!context_->cuda_memory()) return NoCudaMemoryError(*context_);
    // Before taking mu_: the progress thread may need it.
    if (absl::Status s = UseDevice(cache.memory().device()); !s.ok()) return s;
    pool_device_ = cache.memory().device();
  }
  if (progress_tid_.load(std::memory_order_acquire) == 0) {
    // The progress thread names itself as it starts (the descriptor carries its id): a command
    // it ran proves it did.
    (void)RunOnWorker([] { return absl::OkStatus(); });
  }
  std::lock_guard lock(mu_);
  const size_t bytes = static_cast<size_t>(cache.geometry().region_bytes());
  ucp_mem_h memh = nullptr;
  auto* ucx_memory = dynamic_cast<UcxPoolMemory*>(&cache.memory());
  if (ucx_memory != nullptr && ucx_memory->context() == context_) {
    memh = ucx_memory->memh();  // registered when UCX allocated it
  } else {
    const bool on_device = cache.memory().kind() == MemoryKind::kCuda;
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                        UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    params.address = cache.base();
    params.length = bytes;
    params.memory_type = on_device ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
    if (ucs_status_t s = ucp_mem_map(context_->handle(), &params, &memh); s != UCS_OK) {
      return UcsError(
          on_device ? "ucp_mem_map of the KV pool (CUDA memory)" : "ucp_mem_map of the KV pool", s);
    }
    own_memh_ = memh;
    pool_memory_type_ = params.memory_type;
  }
  void* rkey = nullptr;
  size_t rkey_size = 0;
  if (ucs_status_t s = ucp_rkey_pack(context_->handle(), memh, &rkey, &rkey_size); s != UCS_OK) {
    return UcsError("ucp_rkey_pack", s);
  }
  descriptor.fields["rkey"] = Base64(rkey, rkey_size);
  ucp_rkey_buffer_release(rkey);
  descriptor.fields["worker_address"] = worker_address_;
  descriptor.fields["base"] = absl::StrCat(reinterpret_cast<uintptr_t>(cache.base()));
  descriptor.fields["memory"] = pool_memory_type_ == UCS_MEMORY_TYPE_HOST ? "host" : "device";
  descriptor.fields["boot_id"] = BootId();
  descriptor.fields["pid"] = absl::StrCat(getpid());
  descriptor.fields["start_time"] = absl::StrCat(ProcessStartTime(getpid()));
  // A same-host sender of tcp data reads this thread's run-queue delay (UcxPeer::receiver_delay).
  if (const int tid = progress_tid_.load(std::memory_order_acquire); tid > 0) {
    descriptor.fields["progress_tid"] = absl::StrCat(tid);
  }
  pool_ = &cache;
  if (pool_memory_type_ == UCS_MEMORY_TYPE_HOST) {
    // For the data handler (progress thread); set before the descriptor can reach a sender.
    pool_bytes_.store(bytes, std::memory_order_relaxed);
    pool_data_.store(cache.base(), std::memory_order_release);
  }
  log_->info(
      "agent {}: registered KV pool of {} blocks x {} bytes ({}, {} memory) with UCX "
      "(UCX_TLS={})",
      options_.agent_name, cache.geometry().num_blocks(), cache.geometry().block_bytes(),
      std::string(KvLayoutName(cache.geometry().layout())),
      pool_memory_type_ == UCS_MEMORY_TYPE_CUDA ? "device" : "host",
      context_->tls().empty() ? "all" : context_->tls());
  return absl::OkStatus();
}

void UcxEngine::AddCounters(TransportCounters& c) const {
  c.senders_refused += notifications_refused_.load();
  c.registrations += batch_registrations_.load();
  std::lock_guard lock(mu_);
  c.transports = lanes_.empty()
                     ? absl::StrCat("UCX_TLS=", context_->tls().empty() ? "all" : context_->tls())
                     : absl::StrJoin(lanes_, ",");
  c.same_host_network_peers = same_host_network_peers_;
}

absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options) {
  return MakeFrontTransport(options, kBackend, &UcxEngine::Create);
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxDevicePoolMemory(
    size_t bytes, const std::string& listen_host) {
  absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get(listen_host);
  if (!context.ok()) return context.status();
  if (!(*context)->cuda_memory()) return NoCudaMemoryError(**context);
#if defined(PDSERVE_HAS_CUDA)
  return cuda::AllocateDeviceMemory(bytes, 0);
#else
  return absl::FailedPreconditionError(
      "ucx with a KV pool in device memory: this pdserve was built without CUDA");
#endif
}

std::string UcxRuntimeSummary() {
  absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get();
  return context.ok() ? (*context)->summary() : context.status().ToString();
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes,
                                                                const std::string& listen_host) {
  absl::StatusOr<std::unique_ptr<UcxPoolMemory>> memory =
      UcxPoolMemory::Allocate(bytes, listen_host);
  if (!memory.ok()) return memory.status();
  return std::unique_ptr<KvMemory>(std::move(*memory));
}

}  // namespace pdserve::transfer::ucx
