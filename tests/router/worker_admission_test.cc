// The router takes a worker only when it serves the router's model exactly.
#include "router/worker_admission.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_spec.h"

namespace pdserve::router {
namespace {

using ::testing::HasSubstr;

ModelConfig Model(int block_size, const std::string& dtype) {
  return *ResolveModelConfig({.preset = "tiny", .block_size = block_size, .dtype = dtype});
}

// A decode worker's registration as service/worker_registration.cc builds it for `model`.
v1::RegisterWorkerRequest Registration(const ModelConfig& model) {
  v1::RegisterWorkerRequest r;
  r.set_worker_id("decode-7");
  r.set_role(v1::WORKER_ROLE_DECODE);
  r.set_address("127.0.0.1:1");
  r.set_preset(model.name);
  *r.mutable_model() = ModelSpecOf(model);
  r.mutable_kv_pool()->set_num_blocks(64);
  r.mutable_kv_pool()->set_block_size(static_cast<uint32_t>(model.block_size));
  r.mutable_kv_pool()->set_block_bytes(static_cast<uint64_t>(model.KvBytesPerBlock()));
  return r;
}

TEST(WorkerAdmissionTest, WorkerServingTheRoutersModelIsTaken) {
  const ModelConfig cluster = Model(32, "fp32");
  EXPECT_TRUE(CheckWorkerRegistration(Registration(cluster), cluster).ok());
}

TEST(WorkerAdmissionTest, WorkerWithAnotherDtypeIsRefusedNamingBothDtypes) {
  absl::Status s = CheckWorkerRegistration(Registration(Model(32, "bf16")), Model(32, "fp32"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("worker decode-7 serves model tiny (block "
                                                  "size 32, bf16) but this router serves tiny "
                                                  "(block size 32, fp32) (dtype bf16 vs fp32)"));
}

TEST(WorkerAdmissionTest, WorkerWithAnotherBlockSizeIsRefusedNamingBothSizes) {
  absl::Status s = CheckWorkerRegistration(Registration(Model(16, "fp32")), Model(32, "fp32"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("(block_size 16 vs 32)"));
}

// The spec says one thing, the pool another: the pool's blocks decide what the KV looks like.
TEST(WorkerAdmissionTest, PoolWhoseBlocksAreNotTheModelsIsRefused) {
  const ModelConfig cluster = Model(32, "fp32");
  v1::RegisterWorkerRequest r = Registration(cluster);
  r.mutable_kv_pool()->set_block_bytes(static_cast<uint64_t>(Model(32, "bf16").KvBytesPerBlock()));
  absl::Status s = CheckWorkerRegistration(r, cluster);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("does not fit this router's model"));
}

// A worker that sends no model spec (older build) serves its preset's defaults.
TEST(WorkerAdmissionTest, RegistrationWithoutSpecIsThePresetsDefaults) {
  const ModelConfig defaults = Model(0, "");
  v1::RegisterWorkerRequest r = Registration(defaults);
  r.clear_model();
  EXPECT_TRUE(CheckWorkerRegistration(r, defaults).ok());
  EXPECT_EQ(CheckWorkerRegistration(r, Model(0, "fp32")).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerAdmissionTest, UnresolvableSpecIsInvalidArgument) {
  v1::RegisterWorkerRequest r = Registration(Model(16, "bf16"));
  r.mutable_model()->set_dtype("int3");
  absl::Status s = CheckWorkerRegistration(r, Model(16, "bf16"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown dtype 'int3'"));
  r.mutable_model()->set_dtype("bf16");
  r.mutable_model()->set_block_size(0xFFFFFFFFu);  // past int: must not wrap into a valid size
  EXPECT_EQ(CheckWorkerRegistration(r, Model(16, "bf16")).code(),
            absl::StatusCode::kInvalidArgument);
}

// The host id goes into logs and `pdserve status`: bounded, printable, and the refusal quotes it
// escaped and cut. Empty (a worker from before host ids) is taken.
TEST(WorkerAdmissionTest, HostIdOutOfBoundsIsRefusedAndQuotedEscaped) {
  const ModelConfig cluster = Model(16, "bf16");
  v1::RegisterWorkerRequest r = Registration(cluster);
  EXPECT_TRUE(CheckWorkerRegistration(r, cluster).ok());
  r.set_host_id("node-7");
  EXPECT_TRUE(CheckWorkerRegistration(r, cluster).ok());
  r.set_host_id("evil\n2026 router: fake line");
  absl::Status s = CheckWorkerRegistration(r, cluster);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("evil\\n2026"));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr("\n")));
  r.set_host_id(std::string(10000, 'h'));
  s = CheckWorkerRegistration(r, cluster);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 400u);
}

// The placement fields reach `pdserve doctor`'s output: a bus id bounded and printable, a NUMA
// node a small non-negative number; unset is taken.
TEST(WorkerAdmissionTest, GpuAndNumaNodeOutOfBoundsAreRefused) {
  const ModelConfig cluster = Model(16, "bf16");
  v1::RegisterWorkerRequest r = Registration(cluster);
  r.set_gpu("0000:1b:00.0");
  r.set_numa_node(1);
  EXPECT_TRUE(CheckWorkerRegistration(r, cluster).ok());
  r.set_gpu("bus\nid");
  EXPECT_EQ(CheckWorkerRegistration(r, cluster).code(), absl::StatusCode::kInvalidArgument);
  r.set_gpu(std::string(65, 'g'));
  EXPECT_EQ(CheckWorkerRegistration(r, cluster).code(), absl::StatusCode::kInvalidArgument);
  r.set_gpu("");
  r.set_numa_node(-2);
  EXPECT_EQ(CheckWorkerRegistration(r, cluster).code(), absl::StatusCode::kInvalidArgument);
  r.set_numa_node(1 << 20);
  EXPECT_EQ(CheckWorkerRegistration(r, cluster).code(), absl::StatusCode::kInvalidArgument);
  r.clear_numa_node();
  EXPECT_TRUE(CheckWorkerRegistration(r, cluster).ok());
}

}  // namespace
}  // namespace pdserve::router
