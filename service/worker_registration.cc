#include "service/worker_registration.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "proto/model_spec.h"

namespace pdserve::service {

RouterLinkOptions WorkerLinkOptions(const WorkerProcessOptions& options, const ModelConfig& config,
                                    v1::WorkerRole role, const std::string& address,
                                    const WorkerPool& pool) {
  RouterLinkOptions link;
  link.router_address = options.router;
  v1::RegisterWorkerRequest& reg = link.registration;
  reg.set_worker_id(options.worker_id);
  reg.set_role(role);
  reg.set_address(address);
  reg.set_host_id(options.host_id);
  reg.set_preset(config.name);
  *reg.mutable_model() = ModelSpecOf(config);
  reg.set_pid(getpid());
  // The router then reserves no prefill blocks for its requests (zero-copy).
  reg.set_writes_in_place(role == v1::WORKER_ROLE_PREFILL && options.zero_copy);
  v1::KvPoolDescriptor* kv = reg.mutable_kv_pool();
  kv->set_transfer_backend(options.transfer == "ucx-staged" ? options.transfer
                                                            : pool.transport_backend);
  kv->set_transport_descriptor(pool.transport_descriptor);
  kv->set_num_blocks(pool.num_blocks);
  kv->set_block_bytes(pool.block_bytes);
  kv->set_layout(pool.layout);
  kv->set_block_size(pool.block_size);
  return link;
}

std::string DescribeWorkerPool(const WorkerProcessOptions& options, const WorkerPool& pool) {
  const uint64_t mib = static_cast<uint64_t>(pool.num_blocks) * pool.block_bytes >> 20;
  return absl::StrCat(pool.num_blocks, " blocks of ", pool.block_bytes, " bytes (", mib, " MiB, ",
                      pool.layout, "), transfer ", pool.transport_backend, ", compute ",
                      options.compute);
}

}  // namespace pdserve::service
