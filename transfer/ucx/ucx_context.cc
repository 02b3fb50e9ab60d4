#include "transfer/ucx/ucx_context.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include <ucs/memory/memory_type.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "transfer/ucx/ucx_config.h"

namespace pdserve::transfer::ucx {

absl::Status UcsError(const std::string& what, ucs_status_t status) {
  const std::string text = absl::StrCat(what, ": ", ucs_status_string(status));
  switch (status) {
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_NOT_CONNECTED:  // an operation on an endpoint whose peer went away (tcp)
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_REJECTED:
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_IO_ERROR:
      return absl::UnavailableError(text);
    case UCS_ERR_CANCELED:
      return absl::CancelledError(text);
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_EXCEEDS_LIMIT:
      return absl::ResourceExhaustedError(text);
    default:
      return absl::InternalError(text);
  }
}

absl::StatusOr<std::shared_ptr<UcxContext>> UcxContext::Get(const std::string& listen_host) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<UcxContext>> contexts;
  const char* env = std::getenv("UCX_TLS");
  const std::string tls = env ? env : "";
  const char* env_devices = std::getenv("UCX_NET_DEVICES");
  const bool operator_devices = env_devices != nullptr && *env_devices != '\0';
  const std::vector<std::string> rdma = operator_devices ? std::vector<std::string>{} : RdmaPorts();
  absl::StatusOr<UcxSafeConfig> safe = SafeUcxConfig(env, env_devices, listen_host,
                                                     InterfaceOfHost(listen_host), rdma);
  if (!safe.ok()) return safe.status();
  const std::string key = absl::StrCat(tls, "|", safe->net_devices);
  std::lock_guard<std::mutex> lock(mu);
  if (auto existing = contexts[key].lock()) return existing;

  ucp_config_t* config = nullptr;
  if (ucs_status_t s = ucp_config_read(nullptr, nullptr, &config); s != UCS_OK) {
    return UcsError("ucp_config_read", s);
  }
  // Owner-only shared memory and no listener on other interfaces (ucx_config.h).
  if (ucs_status_t s = ucp_config_modify(config, "TLS", safe->tls.c_str()); s != UCS_OK) {
    ucp_config_release(config);
    return UcsError(absl::StrCat("UCX_TLS=", safe->tls), s);
  }
  if (!safe->net_devices.empty()) {
    ucp_config_modify(config, "NET_DEVICES", safe->net_devices.c_str());
  }
  for (const std::string& note : safe->notes) ComponentLogger("transfer")->info("UCX: {}", note);
  // UCX's default keepalive (20 s) is longer than any transfer deadline: a dead peer on a
  // shared-memory transport would go unnoticed. The operator's UCX_KEEPALIVE_INTERVAL wins.
  if (std::getenv("UCX_KEEPALIVE_INTERVAL") == nullptr) {
    ucp_config_modify(config, "KEEPALIVE_INTERVAL", "1s");
  }
  // Adaptive progress leaves an interface that no endpoint of this worker uses "inactive":
  // armed and watched by UCX's async thread. A receiving pool is exactly that (senders connect
  // to it, it connects to no one), so over shared memory every notification made the sender
  // signal the receiver through a socket (a sendto, ~3 us of each small batch) and woke the
  // receiver's async thread. Our progress threads poll every interface they have anyway and
  // arm the worker themselves before they sleep. The operator's UCX_ADAPTIVE_PROGRESS wins.
  if (std::getenv("UCX_ADAPTIVE_PROGRESS") == nullptr) {
    ucp_config_modify(config, "ADAPTIVE_PROGRESS", "n");
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;  // mem_map / rkey_pack from caller threads
  ucp_context_h context = nullptr;
  bool wakeup = true;
  ucs_status_t s = ucp_init(&params, config, &context);
  if (s != UCS_OK) {
    // Some transport sets cannot wake a sleeping worker: fall back to polling.
    params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM;
    wakeup = false;
    s = ucp_init(&params, config, &context);
  }
  ucp_config_release(config);
  if (s != UCS_OK) return UcsError(absl::StrCat("ucp_init (UCX_TLS=", tls, ")"), s);
  auto ctx = std::shared_ptr<UcxContext>(
      new UcxContext(context, wakeup, tls, AllowsSharedMemory(safe->tls)));
  // Only ports that made it into NET_DEVICES (not on loopback): those UCX could have used.
  if (safe->net_devices.find(':') != std::string::npos) ctx->rdma_ports_ = rdma;
  ctx->QueryMemoryTypes();
  ComponentLogger("transfer")
      ->info("{} (UCX_TLS={}){}", ctx->summary(), tls.empty() ? "all" : tls,
             ctx->shared_memory() ? "; same-host peers: shared memory, watched by pid" : "");
  contexts[key] = ctx;
  return ctx;
}

UcxContext::~UcxContext() { ucp_cleanup(context_); }

void UcxContext::QueryMemoryTypes() {
  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  std::vector<std::string> types;
  if (ucp_context_query(context_, &attr) == UCS_OK) {
    for (int t = 0; t < UCS_MEMORY_TYPE_LAST; ++t) {
      if (attr.memory_types & UCS_BIT(t)) types.emplace_back(ucs_memory_type_names[t]);
    }
    cuda_memory_ = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
  }
  summary_ = absl::StrCat("UCX ", ucp_get_version_string(), ", memory types ",
                          types.empty() ? "?" : absl::StrJoin(types, ","),
                          " (CUDA memory: ", cuda_memory_ ? "yes" : "no", ")");
}

absl::Status NoCudaMemoryError(const UcxContext& context) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the ucx backend cannot use a KV pool in device memory: the linked ", context.summary(),
      " has no CUDA transports (or no GPU driver here). Use --transfer ucx-staged (device blocks "
      "staged through pinned host memory), or build with -DPDSERVE_UCX_ROOT=<the libucx-cu13 "
      "wheel's libucx/ folder> (scripts/fetch-ucx-cuda.sh) and run with its libraries and "
      "UCX_MODULE_DIR"));
}

absl::StatusOr<std::unique_ptr<UcxPoolMemory>> UcxPoolMemory::Allocate(
    size_t bytes, const std::string& listen_host) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  // Zeroed below, so every page becomes resident: refuse what the host cannot hold.
  if (absl::Status s = CheckHostMemoryFits(bytes, /*shared=*/false); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get(listen_host);
  if (!context.ok()) return context.status();
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  params.address = nullptr;
  params.length = bytes;
  params.flags = UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h memh = nullptr;
  if (ucs_status_t s = ucp_mem_map((*context)->handle(), &params, &memh); s != UCS_OK) {
    return UcsError(absl::StrCat("ucp_mem_map(allocate ", bytes, " bytes)"), s);
  }
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  if (ucs_status_t s = ucp_mem_query(memh, &attr); s != UCS_OK) {
    ucp_mem_unmap((*context)->handle(), memh);
    return UcsError("ucp_mem_query", s);
  }
  auto* data = static_cast<std::byte*>(attr.address);
  std::memset(data, 0, bytes);  // KvMemory promises zeroed memory
  return std::unique_ptr<UcxPoolMemory>(new UcxPoolMemory(*context, memh, data, bytes));
}

UcxPoolMemory::~UcxPoolMemory() { ucp_mem_unmap(context_->handle(), memh_); }

}  // namespace pdserve::transfer::ucx
