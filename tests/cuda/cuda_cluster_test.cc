// End to end on the GPU: a cluster whose workers run the CUDA kernels (--compute cuda) returns
// reference_generate's tokens, with the KV moved by cuda-ipc (device to device), by ucx on
// device-memory pools (UCX's cuda_ipc; needs a UCX with CUDA transports, the PDSERVE_UCX_ROOT
// build) and by ucx-staged (device -> pinned host pool -> UCX -> host pool -> device). Skips
// without a GPU, and the ucx case where the linked UCX cannot use device memory.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "tests/e2e/doctor_findings.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"
#include "transfer/kv_transport.h"

namespace pdserve::e2e {
namespace {

class CudaClusterTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device on this host";
    if (GetParam() == "ucx") {
      transfer::TransportOptions probe{.backend = "ucx", .agent_name = "probe"};
      probe.pool_memory = MemoryKind::kCuda;
      if (auto memory = transfer::AllocatePoolMemory(probe, 4096); !memory.ok()) {
        GTEST_SKIP() << "ucx cannot use device memory here: " << memory.status();
      }
    }
  }
};

TEST_P(CudaClusterTest, ConcurrentRequestsEqualReferenceGenerate) {
  cluster::ClusterOptions options = Options(GetParam(), 1, 1);
  options.compute = "cuda";
  // Options() pins host transports; device memory needs UCX's CUDA ones as well.
  if (GetParam() == "ucx") options.env = {{"UCX_TLS", "posix,cma,tcp,cuda_copy,cuda_ipc"}};
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
                         ::testing::Values("cuda-ipc", "ucx", "ucx-staged"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// `pdserve doctor --endpoint` on GPU clusters, the staging cause provoked for real: ucx-staged
// moves every KV byte device -> pinned host -> UCX -> host -> device, and the doctor must say so
// with the bytes; cuda-ipc moves device to device and must read ok. Returns item -> "verdict:
// figure".
std::map<std::string, std::string> DoctorOn(const std::string& transfer) {
  cluster::ClusterOptions options = Options(transfer, 1, 1);
  options.compute = "cuda";
  std::unique_ptr<cluster::Cluster> c = Start(options);
  if (c == nullptr) {
    ADD_FAILURE() << "cluster did not start";
    return {};
  }
  std::map<std::string, std::string> found;
  for (const auto& [item, f] : DoctorFindings(*c, 200, 70)) found[item] = f.verdict + ": " + f.figure;
  return found;
}

TEST(CudaDoctorTest, UcxStagedIsAStagingWarningAndCudaIpcIsNot) {
  if (!cuda::CudaAvailable()) GTEST_SKIP() << "no CUDA device on this host";
  std::map<std::string, std::string> staged = DoctorOn("ucx-staged");
  EXPECT_THAT(staged["staging"], ::testing::StartsWith("warn: "));
  EXPECT_THAT(staged["staging"], ::testing::HasSubstr("through host memory"));
  std::map<std::string, std::string> ipc = DoctorOn("cuda-ipc");
  EXPECT_THAT(ipc["staging"], ::testing::StartsWith("ok: "));
  EXPECT_THAT(ipc["transports"], ::testing::StartsWith("ok: "));
  // Device pools register their GPU: both workers on this one (ucx-staged's pools are host
  // memory, so its placement names the host and NUMA node only).
  EXPECT_THAT(ipc["placement"], ::testing::HasSubstr("same GPU"));
}

}  // namespace
}  // namespace pdserve::e2e
