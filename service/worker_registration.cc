#include "service/worker_registration.h"

#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
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
  reg.set_gpu(pool.gpu);
  if (const int node = NumaNodeOfAllowedCpus(); node >= 0) reg.set_numa_node(node);
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

int NumaNodeOfAllowedCpus() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return -1;
  int node = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    // /sys/devices/system/cpu/cpuN/nodeM links the CPU to its node (kernels with NUMA).
    int this_node = -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(
             absl::StrCat("/sys/devices/system/cpu/cpu", cpu), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("node", 0) == 0 && absl::SimpleAtoi(name.substr(4), &this_node)) break;
    }
    if (this_node < 0 || (node >= 0 && this_node != node)) return -1;
    node = this_node;
  }
  return node;
}

std::string DescribeWorkerPool(const WorkerProcessOptions& options, const WorkerPool& pool) {
  const uint64_t mib = static_cast<uint64_t>(pool.num_blocks) * pool.block_bytes >> 20;
  return absl::StrCat(pool.num_blocks, " blocks of ", pool.block_bytes, " bytes (", mib, " MiB, ",
                      pool.layout, "), transfer ", pool.transport_backend, ", compute ",
                      options.compute);
}

}  // namespace pdserve::service
