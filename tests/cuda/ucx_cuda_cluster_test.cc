// End to end on the GPU with `--compute cuda --transfer ucx`: the workers' pools are in device
// memory and UCX puts the KV device to device (cuda_ipc), no staging. The cluster returns
// reference_generate's tokens. Skips without a GPU, or when the linked UCX cannot use device
// memory (Debian's; build with PDSERVE_UCX_ROOT, see scripts/fetch-ucx-cuda.sh).
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "tests/e2e/e2e_cluster.h"
#include "transfer/kv_transport.h"

namespace pdserve::e2e {
namespace {

TEST(UcxCudaClusterTest, ConcurrentRequestsEqualReferenceGenerate) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device on this host";
  transfer::TransportOptions probe{.backend = "ucx", .agent_name = "probe"};
  probe.pool_memory = MemoryKind::kCuda;
  if (auto memory = transfer::AllocatePoolMemory(probe, 4096); !memory.ok()) {
    GTEST_SKIP() << "ucx cannot use device memory here: " << memory.status();
  }
  cluster::ClusterOptions options = Options("ucx", 1, 1);
  options.compute = "cuda";
  // Options() pins host transports; device memory needs UCX's CUDA ones as well.
  options.env = {{"UCX_TLS", "posix,cma,tcp,cuda_copy,cuda_ipc"}};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  constexpr int kRequests = 12;
  auto prompt_len = [](int i) { return 1 + 97 * i % 700; };
  auto max_tokens = [](int i) { return 1 + 13 * i % 40; };
  std::vector<Outcome> out(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      out[i] = client.Generate("g" + std::to_string(i), prompt_len(i), max_tokens(i), 300 + i);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << "g" << i << ": " << out[i].status.error_message();
    EXPECT_EQ(out[i].tokens, Expected(prompt_len(i), max_tokens(i), 300 + i)) << "g" << i;
  }
  ExpectAllBlocksFree(client);
}

}  // namespace
}  // namespace pdserve::e2e
