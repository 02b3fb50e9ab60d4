// The model flags end to end, with real processes: a cluster started with --block-size 32
// --dtype fp32 serves that model in every process and reports it; `pdserve generate --verify`
// and `pdserve loadgen --verify` check tokens against it (not against the preset's defaults); a
// worker started with another dtype or block size is refused with an error naming both models.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

ModelConfig Fp32Blocks32() {
  return *ResolveModelConfig({.preset = "tiny", .block_size = 32, .dtype = "fp32"});
}

cluster::ClusterOptions Fp32Blocks32Cluster() {
  cluster::ClusterOptions o = Options("local", 1, 1);
  o.block_size = 32;
  o.dtype = "fp32";
  o.prefill_blocks = 64;  // 64 x 32 tokens
  o.decode_blocks = 64;
  return o;
}

TEST(ModelE2eTest, UnresolvableModelIsInvalidArgumentBeforeAnythingStarts) {
  cluster::ClusterOptions o = Fp32Blocks32Cluster();
  o.dtype = "int3";
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> c = cluster::Cluster::Start(o);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("unknown dtype 'int3'"));
}

TEST(ModelE2eTest, Fp32Blocks32ClusterServesAndReportsItsModel) {
  auto cluster = Start(Fp32Blocks32Cluster());
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->model().preset(), "tiny");
  EXPECT_EQ(status->model().block_size(), 32u);
  EXPECT_EQ(status->model().dtype(), "fp32");
  EXPECT_EQ(status->workers_size(), 2);

  const ModelConfig model = Fp32Blocks32();
  const ModelConfig bf16 = *PresetConfig("tiny");
  int differ_from_bf16 = 0;
  // Prompts around the 32-token block edge; outputs that cross into further blocks.
  for (int prompt_len : {1, 31, 32, 33, 70}) {
    Outcome out = client.Generate("m" + std::to_string(prompt_len), prompt_len, 40, 7);
    ASSERT_TRUE(out.status.ok()) << prompt_len << ": " << out.status.error_message();
    EXPECT_EQ(out.tokens, Expected(prompt_len, 40, 7, model)) << prompt_len;
    if (out.tokens != Expected(prompt_len, 40, 7, bf16)) differ_from_bf16++;
    // The prompt's KV moved as whole blocks of this model: 32 tokens of fp32 K and V each.
    EXPECT_EQ(out.timeline.kv_bytes(),
              static_cast<uint64_t>(model.BlocksForTokens(prompt_len) * model.KvBytesPerBlock()))
        << prompt_len;
  }
  EXPECT_EQ(differ_from_bf16, 5);  // the dtype reached the KV bytes the tokens depend on
  ExpectAllBlocksFree(client);
}

TEST(ModelE2eTest, WorkerWithAnotherDtypeOrBlockSizeIsRefusedWithAClearError) {
  auto cluster = Start(Fp32Blocks32Cluster());
  ASSERT_NE(cluster, nullptr);
  const std::vector<std::string> common = {"--router",       cluster->internal_endpoint(),
                                           "--cluster-secret-file", cluster->secret_file(),
                                           "--port",         "0",
                                           "--num-blocks",   "16"};
  std::vector<std::string> args = {"decode", "--worker-id", "odd-dtype", "--block-size", "32",
                                   "--dtype", "bf16"};
  args.insert(args.end(), common.begin(), common.end());
  Exit decode = RunPdserve(args);
  EXPECT_EQ(decode.code, 1) << decode.output;
  EXPECT_THAT(decode.output,
              HasSubstr("FAILED_PRECONDITION: worker odd-dtype serves model tiny (block size 32, "
                        "bf16) but this router serves tiny (block size 32, fp32) (dtype bf16 vs "
                        "fp32)"));

  args = {"prefill", "--worker-id", "odd-blocks", "--dtype", "fp32"};  // blocks of 16
  args.insert(args.end(), common.begin(), common.end());
  Exit prefill = RunPdserve(args);
  EXPECT_EQ(prefill.code, 1) << prefill.output;
  EXPECT_THAT(prefill.output, HasSubstr("worker odd-blocks serves model tiny (block size 16, "
                                        "fp32) but this router serves tiny (block size 32, fp32) "
                                        "(block_size 16 vs 32)"));

  absl::StatusOr<v1::ClusterStatus> status = cluster->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->workers_size(), 2);  // neither joined
  EXPECT_TRUE(cluster->CheckChildren().ok());
}

TEST(ModelE2eTest, GenerateAndLoadgenVerifyWithTheClustersModel) {
  auto cluster = Start(Fp32Blocks32Cluster());
  ASSERT_NE(cluster, nullptr);
  const std::string endpoint = cluster->endpoint();
  Exit generate = RunPdserve({"generate", "--endpoint", endpoint, "--prompt-len", "45",
                              "--max-tokens", "20", "--seed", "3", "--verify"});
  EXPECT_EQ(generate.code, 0) << generate.output;
  EXPECT_THAT(generate.output, HasSubstr("verify: OK, tokens equal reference_generate (model "
                                         "tiny (block size 32, fp32), seed 3)"));

  const std::string json = testing::TempDir() + "/" + std::to_string(getpid()) + "-model_e2e_loadgen.json";
  Exit load = RunPdserve({"loadgen", "--target", endpoint, "--num-prompts", "6",
                          "--random-input-len", "40", "--random-output-len", "10", "--verify",
                          "--save-token-ids", "--output-json", json, "--progress", "off"});
  EXPECT_EQ(load.code, 0) << load.output;
  EXPECT_THAT(load.output, HasSubstr("serves model tiny (block size 32, fp32)"));

  Exit offline = RunPdserve({"loadgen", "verify", "--result", json});
  EXPECT_EQ(offline.code, 0) << offline.output;
  EXPECT_THAT(offline.output, HasSubstr("verify: OK, 6 checked requests equal "
                                        "model::ReferenceGenerate for model tiny (block size 32, "
                                        "fp32)"));
  std::filesystem::remove(json);
  std::filesystem::remove(std::filesystem::path(json).replace_extension(".csv"));
}

}  // namespace
}  // namespace pdserve::e2e
