// How a worker's --compute and --transfer decide its kernels, transfer backend and where its KV
// pool lives (no processes: the resolution alone).
#include "service/worker_process.h"
#include "gtest/gtest.h"

namespace pdserve::service {
namespace {

absl::StatusOr<WorkerCompute> Resolve(const std::string& compute, const std::string& transfer,
                                      bool built_with_cuda = true) {
  WorkerProcessOptions o;
  o.compute = compute;
  o.transfer = transfer;
  return ResolveWorkerCompute(o, *PresetConfig("tiny"), built_with_cuda);
}

TEST(WorkerComputeTest, UcxWithCudaComputeKeepsThePoolInDeviceMemory) {
  absl::StatusOr<WorkerCompute> c = Resolve("cuda", "ucx");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->cuda);
  EXPECT_EQ(c->transport_backend, "ucx");
  EXPECT_EQ(c->pool_memory, MemoryKind::kCuda);
}

TEST(WorkerComputeTest, CudaIpcKeepsThePoolInDeviceMemory) {
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
  EXPECT_EQ(Resolve("real", "cuda-ipc").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorkerComputeTest, CudaComputeInABuildWithoutCudaIsAFailedPrecondition) {
  EXPECT_EQ(Resolve("cuda", "ucx", /*built_with_cuda=*/false).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pdserve::service
