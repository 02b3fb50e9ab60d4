#include "common/model_config.h"

#include <cstdio>
#include <unistd.h>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/scoped_temp_path.h"

namespace pdserve {
namespace {

TEST(ModelConfigTest, Llama3_8bCarries128KiBOfKvPerToken) {
  absl::StatusOr<ModelConfig> c = PresetConfig("llama3-8b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->KvBytesPerToken(), 131072);
  EXPECT_EQ(c->KvBytesPerBlock(), 131072 * 16);
  EXPECT_EQ(c->QueryHeadsPerKvHead(), 4);
}

TEST(ModelConfigTest, Llama3_70bShapes) {
  absl::StatusOr<ModelConfig> c = PresetConfig("llama3-70b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_layers, 80);
  EXPECT_EQ(c->num_q_heads, 64);
  EXPECT_EQ(c->KvBytesPerToken(), 2 * 80 * 8 * 128 * 2);
}

TEST(ModelConfigTest, EveryPresetValidates) {
  for (const std::string& name : PresetNames()) {
    absl::StatusOr<ModelConfig> c = PresetConfig(name);
    ASSERT_TRUE(c.ok()) << name;
    EXPECT_TRUE(c->Validate().ok()) << name;
  }
}

TEST(ModelConfigTest, UnknownPresetIsInvalidArgumentNamingIt) {
  absl::StatusOr<ModelConfig> c = PresetConfig("gpt-5");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("gpt-5"), std::string::npos);
}

TEST(ModelConfigTest, OverridesChangeDtypeAndBlockSize) {
  ModelOverrides o{.preset = "llama3-8b", .block_size = 32, .dtype = "fp32"};
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->KvBytesPerToken(), 262144);
  EXPECT_EQ(c->KvBytesPerBlock(), 262144 * 32);
}

TEST(ModelConfigTest, ZeroOrHugeBlockSizeIsRejected) {
  ModelOverrides o{.preset = "tiny", .block_size = -4};
  EXPECT_EQ(ResolveModelConfig(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.block_size = 4096;
  EXPECT_EQ(ResolveModelConfig(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelConfigTest, UnknownDtypeIsRejected) {
  ModelOverrides o{.preset = "tiny", .dtype = "int3"};
  EXPECT_EQ(ResolveModelConfig(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelConfigTest, JsonFileOverridesPresetAndBlockSize) {
  const testing_util::ScopedTempPath file("model.json");
  const std::string& path = file.path();
  std::ofstream(path) << R"({"preset": "small", "block_size": 8, "dtype": "fp16"})";
  absl::StatusOr<ModelOverrides> o = LoadModelOverridesFile(path);
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(*o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name, "small");
  EXPECT_EQ(c->block_size, 8);
  EXPECT_EQ(c->dtype, DType::kFP16);
}

TEST(ModelConfigTest, MalformedJsonFileIsInvalidArgument) {
  const testing_util::ScopedTempPath file("bad.json");
  const std::string& path = file.path();
  std::ofstream(path) << "{preset: ";
  EXPECT_EQ(LoadModelOverridesFile(path).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelConfigTest, OverridesOfResolveToTheSameConfig) {
  ModelOverrides o{.preset = "small", .block_size = 32, .dtype = "fp32", .num_layers = 3};
  absl::StatusOr<ModelConfig> c = ResolveModelConfig(o);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<ModelConfig> again = ResolveModelConfig(OverridesOf(*c));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ModelDifference(*c, *again), "");
  EXPECT_EQ(again->block_size, 32);
  EXPECT_EQ(again->dtype, DType::kFP32);
  EXPECT_EQ(again->num_layers, 3);
}

TEST(ModelConfigTest, DifferenceNamesEveryFieldThatDiffers) {
  const ModelConfig tiny = *PresetConfig("tiny");
  ModelConfig other = tiny;
  other.block_size = 32;
  other.dtype = DType::kFP32;
  EXPECT_EQ(ModelDifference(tiny, other), "block_size 16 vs 32, dtype bf16 vs fp32");
  EXPECT_EQ(ModelDifference(tiny, *PresetConfig("tiny")), "");
}

TEST(ModelConfigTest, SummaryShowsBlockSizeDtypeAndLayersOnlyWhenNotThePresets) {
  ModelConfig c = *PresetConfig("tiny");
  EXPECT_EQ(ModelSummary(c), "tiny (block size 16, bf16)");
  c.num_layers = 5;
  c.dtype = DType::kFP16;
  EXPECT_EQ(ModelSummary(c), "tiny (block size 16, fp16, 5 layers)");
}

}  // namespace
}  // namespace pdserve
