// How a worker's --compute and --transfer decide its kernels, transfer backend and where its KV
// pool lives (no processes: the resolution alone).
#include "service/worker_process.h"
#include "transfer/kv_transport.h"
#include "gtest/gtest.h"

namespace pdserve::service {
namespace {

absl::StatusOr<WorkerCompute> Resolve(const std::string& compute, const std::string& transfer,
                                      bool built_with_cuda = true) {
  WorkerProcessOptions o;
  o.compute = compute;
  o.transfer = transfer;
  return ResolveWorkerCompute(o, *PresetConfig("tiny"), built_with_cuda,
                              transfer::KvTransportCapabilities);
}

TEST(WorkerComputeTest, UcxWithCudaComputeKeepsThePoolInDeviceMemory) {
  // A build without CUDA (the sanitizer builds) has no device pool for ucx.
  if (!transfer::KvTransportCapabilities("ucx")->device_pools) GTEST_SKIP() << "built without CUDA";
  absl::StatusOr<WorkerCompute> c = Resolve("cuda", "ucx");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->cuda);
  EXPECT_EQ(c->transport_backend, "ucx");
  EXPECT_EQ(c->pool_memory, MemoryKind::kCuda);
}

TEST(WorkerComputeTest, CudaIpcKeepsThePoolInDeviceMemory) {
  if (!transfer::KvTransportCapabilities("cuda-ipc").ok()) GTEST_SKIP() << "built without CUDA";
  absl::StatusOr<WorkerCompute> c = Resolve("cuda", "cuda-ipc");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport_backend, "cuda-ipc");
  EXPECT_EQ(c->pool_memory, MemoryKind::kCuda);
}

TEST(WorkerComputeTest, UcxStagedRunsOverUcxWithAHostPool) {
  absl::StatusOr<WorkerCompute> c = Resolve("cuda", "ucx-staged");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport_backend, "ucx");
  EXPECT_EQ(c->pool_memory, MemoryKind::kHost);
}

TEST(WorkerComputeTest, CpuComputeKeepsUcxPoolsInHostMemory) {
  absl::StatusOr<WorkerCompute> c = Resolve("real", "ucx");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->cuda);
  EXPECT_EQ(c->pool_memory, MemoryKind::kHost);
}

TEST(WorkerComputeTest, CudaIpcWithoutCudaComputeIsInvalid) {
  if (!transfer::KvTransportCapabilities("cuda-ipc").ok()) GTEST_SKIP() << "built without CUDA";
  EXPECT_EQ(Resolve("real", "cuda-ipc").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkerComputeTest, CudaComputeInABuildWithoutCudaIsAFailedPrecondition) {
  EXPECT_EQ(Resolve("cuda", "ucx", /*built_with_cuda=*/false).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerComputeTest, LocalWithCudaComputeKeepsItsPoolInHostMemory) {
  // local has no device pool: its capabilities say so, not its name.
  absl::StatusOr<WorkerCompute> c = Resolve("cuda", "local");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pool_memory, MemoryKind::kHost);
}

TEST(WorkerComputeTest, AnUnknownBackendIsInvalid) {
  EXPECT_EQ(Resolve("real", "carrier-pigeon").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The rules read the capabilities, not the names: a backend that declares device-only pools
// needs --compute cuda whatever it is called.
absl::StatusOr<TransportCapabilities> DeviceOnly(const std::string&) {
  return TransportCapabilities{.host_pools = false, .device_pools = true,
                               .device_pools_only = true};
}
absl::StatusOr<TransportCapabilities> HostOnly(const std::string&) {
  return TransportCapabilities{};
}

TEST(WorkerComputeTest, TheRulesFollowTheCapabilitiesNotTheName) {
  WorkerProcessOptions o;
  o.transfer = "nccl";
  o.compute = "real";
  EXPECT_EQ(ResolveWorkerCompute(o, *PresetConfig("tiny"), true, DeviceOnly).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.compute = "cuda";
  absl::StatusOr<WorkerCompute> c = ResolveWorkerCompute(o, *PresetConfig("tiny"), true, DeviceOnly);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pool_memory, MemoryKind::kCuda);
  o.transfer = "cuda-ipc";  // a name the old rules knew; these capabilities say host only
  c = ResolveWorkerCompute(o, *PresetConfig("tiny"), true, HostOnly);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pool_memory, MemoryKind::kHost);
}

}  // namespace
}  // namespace pdserve::service
