// End to end on the GPU: a cluster whose workers run the CUDA kernels on pools in device memory
// (--compute cuda) returns reference_generate's tokens, with the KV moved by cuda-ipc (device to
// device) and by ucx-staged (device -> pinned host pool -> UCX -> host pool -> device). Skips
// without a GPU.
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

class CudaClusterTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device on this host";
  }
};

TEST_P(CudaClusterTest, ConcurrentRequestsEqualReferenceGenerate) {
  cluster::ClusterOptions options = Options(GetParam(), 1, 1);
  options.compute = "cuda";
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

INSTANTIATE_TEST_SUITE_P(Transfers, CudaClusterTest,
                         ::testing::Values("cuda-ipc", "ucx-staged"),
                         [](const auto& info) {
                           return info.param == "cuda-ipc" ? std::string("cuda_ipc")
                                                           : std::string("ucx_staged");
                         });

}  // namespace
}  // namespace pdserve::e2e
