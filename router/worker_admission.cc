#include "router/worker_admission.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "proto/model_spec.h"
#include "service/host_address.h"

namespace pdserve::router {

absl::Status CheckWorkerRegistration(const v1::RegisterWorkerRequest& request,
                                     const ModelConfig& cluster) {
  const std::string& id = request.worker_id();
  if (id.empty() || request.address().empty() ||
      (request.role() != v1::WORKER_ROLE_PREFILL && request.role() != v1::WORKER_ROLE_DECODE &&
       request.role() != v1::WORKER_ROLE_COLOCATED)) {
    return absl::InvalidArgumentError("registration needs a worker id, an address and a role");
  }
  // Bounded and printable: ids and addresses go into logs, status replies and other workers.
  auto printable = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c <= '~'; });
  };
  if (id.size() > kMaxWorkerIdBytes || !printable(id) ||
      request.address().size() > kMaxWorkerAddressBytes || !printable(request.address()) ||
      request.kv_pool().transport_descriptor().size() > kMaxPoolDescriptorBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "registration of worker '", absl::CEscape(id.substr(0, kMaxWorkerIdBytes)),
        "': id (at most ", kMaxWorkerIdBytes, " printable bytes), address (",
        kMaxWorkerAddressBytes, ") or pool descriptor (", kMaxPoolDescriptorBytes,
        ") out of bounds"));
  }
  // Empty: a worker from before host ids. Otherwise bounded and printable like the id, since it
  // is logged and shown by `pdserve status`; the refusal quotes only an escaped prefix of it.
  if (!request.host_id().empty() && !service::ValidHostId(request.host_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "registration of worker ", id, ": host id '", absl::CEscape(request.host_id().substr(0, 64)),
        request.host_id().size() > 64 ? "'..." : "'", " is not 1 to ", service::kMaxHostIdBytes,
        " printable bytes without spaces"));
  }
  // Placement (doctor): a bus id is short and printable; a NUMA node is a small number.
  if (request.gpu().size() > kMaxGpuIdBytes ||
      (!request.gpu().empty() && !service::ValidHostId(request.gpu())) ||
      (request.has_numa_node() &&
       (request.numa_node() < 0 || request.numa_node() > kMaxNumaNode))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "registration of worker ", id, ": gpu (at most ", kMaxGpuIdBytes,
        " printable bytes) or numa_node (0 to ", kMaxNumaNode, ") out of bounds"));
  }
  v1::ModelSpec spec = request.model();
  if (!request.has_model()) spec.set_preset(request.preset());
  absl::StatusOr<ModelConfig> theirs = ModelConfigOf(spec);
  if (!theirs.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker ", id, " registered an invalid model: ", theirs.status().message()));
  }
  if (std::string diff = ModelDifference(*theirs, cluster); !diff.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", id, " serves model ", ModelSummary(*theirs), " but this router serves ",
        ModelSummary(cluster), " (", diff,
        "); start every process with the same --preset, --block-size and --dtype (or --config)"));
  }
  const v1::KvPoolDescriptor& pool = request.kv_pool();
  if (pool.num_blocks() == 0 || pool.block_size() != static_cast<uint32_t>(cluster.block_size) ||
      pool.block_bytes() != static_cast<uint64_t>(cluster.KvBytesPerBlock())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", id, ": KV pool of ", pool.num_blocks(), " blocks of ", pool.block_size(),
        " tokens / ", pool.block_bytes(), " bytes does not fit this router's model (blocks of ",
        cluster.block_size, " tokens / ", cluster.KvBytesPerBlock(), " bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::router
