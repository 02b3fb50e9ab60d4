// GPU placement of cluster workers (cluster/gpu_placement.h): each worker's own GPU comes first
// in its CUDA_VISIBLE_DEVICES (its device 0), the cluster's other GPUs after it, ids mapped
// through the launcher's own CUDA_VISIBLE_DEVICES.
#include "cluster/gpu_placement.h"

#include "gtest/gtest.h"

namespace pdserve::cluster {
namespace {

TEST(GpuPlacementTest, AWorkersOwnGpuComesFirstThenTheClustersOthers) {
  EXPECT_EQ(*VisibleDevicesFor(1, {0, 1}, ""), "1,0");
  EXPECT_EQ(*VisibleDevicesFor(0, {0, 1}, ""), "0,1");
  EXPECT_EQ(*VisibleDevicesFor(2, {3, 2, 0, 3}, ""), "2,0,3");
  EXPECT_EQ(*VisibleDevicesFor(5, {}, ""), "5");
}

TEST(GpuPlacementTest, IdsIndexTheLaunchersVisibleDevices) {
  // Slurm gave the job GPUs 4 and 6: id 0 is GPU 4, id 1 GPU 6.
  EXPECT_EQ(*VisibleDevicesFor(1, {0, 1}, "4,6"), "6,4");
  EXPECT_EQ(*VisibleDevicesFor(0, {0, 1}, "GPU-aa, GPU-bb"), "GPU-aa,GPU-bb");
  absl::StatusOr<std::string> past = VisibleDevicesFor(2, {0, 2}, "4,6");
  EXPECT_EQ(past.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(past.status().message().find("CUDA_VISIBLE_DEVICES=4,6"), std::string::npos);
  EXPECT_EQ(VisibleDevicesFor(-1, {}, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GpuPlacementTest, WorkersCycleThroughTheirRolesList) {
  GpuPlacement p{.prefill = {0}, .decode = {1, 2}};
  EXPECT_EQ(WorkerGpuEnv(p, "prefill", 3, "")->at(0).second, "0,1,2");
  EXPECT_EQ(WorkerGpuEnv(p, "decode", 0, "")->at(0).second, "1,0,2");
  EXPECT_EQ(WorkerGpuEnv(p, "decode", 1, "")->at(0).second, "2,0,1");
  EXPECT_EQ(WorkerGpuEnv(p, "decode", 2, "")->at(0).second, "1,0,2");
  // A role without a placement keeps the launcher's environment.
  EXPECT_TRUE(WorkerGpuEnv(p, "colocated", 0, "")->empty());
  EXPECT_TRUE(WorkerGpuEnv(GpuPlacement{}, "prefill", 0, "")->empty());
}

TEST(GpuPlacementTest, ListsParse) {
  EXPECT_EQ(*ParseGpuList("0,1, 3"), (std::vector<int>{0, 1, 3}));
  EXPECT_TRUE(ParseGpuList("")->empty());
  EXPECT_EQ(ParseGpuList("0,x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseGpuList("-1").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::cluster
