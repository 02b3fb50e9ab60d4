// The GPU kernels against the CPU path: same K/V bytes, same checksums and tokens, float outputs
// within bf16 tolerance. Every test that needs a device skips (with a message) without one.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/cuda/cuda_kernels.h"

namespace pdserve::cuda {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped"

ModelConfig Config(const std::string& preset) {
  ModelConfig c = *PresetConfig(preset);
  if (preset == "llama3-8b") c.num_layers = 2;  // the real head shape, a CPU reference that is quick
  return c;
}

// A CPU pool and a GPU pool of the same shape, and shuffled block tables valid in both.
struct Pools {
  Pools(const ModelConfig& config, KvLayout layout, uint32_t blocks) {
    cpu = *KvCache::CreateInHostMemory(config, blocks, layout);
    gpu = *CreateDeviceKvCache(config, blocks, layout);
    attention = *CudaAttention::Create(*gpu);
    free_blocks.resize(blocks);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(blocks));
  }
  std::vector<BlockId> Table(int tokens) {
    const size_t n = cpu->config().BlocksForTokens(tokens);
    EXPECT_LE(n, free_blocks.size());
    std::vector<BlockId> t(free_blocks.end() - n, free_blocks.end());
    free_blocks.resize(free_blocks.size() - n);
    return t;
  }
  std::vector<std::byte> GpuBytes() const {
    std::vector<std::byte> bytes(gpu->geometry().region_bytes());
    EXPECT_TRUE(CopyDeviceToHost(gpu->memory(), 0, bytes).ok());
    return bytes;
  }

  std::unique_ptr<KvCache> cpu, gpu;
  std::unique_ptr<CudaAttention> attention;
  std::vector<BlockId> free_blocks;
};

// max |a - b| and ||a - b|| / ||b||.
std::pair<double, double> Errors(std::span<const float> a, std::span<const float> b) {
  double max_abs = 0, num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return {INFINITY, INFINITY};
    const double d = static_cast<double>(a[i]) - b[i];
    max_abs = std::max(max_abs, std::abs(d));
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return {max_abs, std::sqrt(num / std::max(den, 1e-30))};
}

struct Shape {
  std::string preset;
  KvLayout layout;
};

class CudaKernelTest : public testing::TestWithParam<Shape> {
 protected:
  ModelConfig config_ = Config(GetParam().preset);
  KvLayout layout_ = GetParam().layout;
};

TEST_P(CudaKernelTest, WriteKvGivesTheCpuBytes) {
  SKIP_WITHOUT_GPU();
  Pools pools(config_, layout_, 64);
  const std::vector<int32_t> a = model::SyntheticPrompt(1, 45, config_.vocab_size);
  const std::vector<int32_t> b = model::SyntheticPrompt(2, 70, config_.vocab_size);
  std::vector<BlockId> ta = pools.Table(45), tb = pools.Table(90);
  // b is a continuation chunk: positions 20..89.
  std::vector<PrefillChunk> batch = {{ta, a, 0}, {tb, b, 20}};
  ASSERT_TRUE(pools.attention->WriteKv(batch).ok());
  ASSERT_TRUE(WriteKv(*pools.cpu, ta, a, 0).ok());
  ASSERT_TRUE(WriteKv(*pools.cpu, tb, b, 20).ok());
  const std::vector<std::byte> gpu = pools.GpuBytes();
  ASSERT_EQ(gpu.size(), static_cast<size_t>(pools.cpu->geometry().region_bytes()));
  EXPECT_TRUE(std::equal(gpu.begin(), gpu.end(), pools.cpu->base()));
}

// Prefill of a whole prompt and of a prompt in two chunks (the second attends over the first's
// cached K/V) against the CPU path, with the given kernel.
void ExpectPrefillMatchesCpu(const ModelConfig& config, KvLayout layout, PrefillKernel kernel) {
  Pools pools(config, layout, 64);
  pools.attention->set_prefill_kernel(kernel);
  const std::vector<int32_t> a = model::SyntheticPrompt(3, 37, config.vocab_size);
  const std::vector<int32_t> b = model::SyntheticPrompt(4, 200, config.vocab_size);
  std::vector<BlockId> ta = pools.Table(37), tb = pools.Table(200);
  const size_t row = static_cast<size_t>(config.num_layers) * config.num_q_heads * config.head_dim;
  // GPU: a whole, and b in two chunks (the second attends over the first's cached K/V).
  std::vector<float> gpu_first((37 + 130) * row), gpu_second(70 * row);
  std::span<const int32_t> b_head(b.data(), 130), b_tail(b.data() + 130, 70);
  std::vector<PrefillChunk> first = {{ta, a, 0}, {tb, b_head, 0}};
  ASSERT_TRUE(pools.attention->Prefill(first, gpu_first).ok());
  std::vector<PrefillChunk> second = {{tb, b_tail, 130}};
  ASSERT_TRUE(pools.attention->Prefill(second, gpu_second).ok());

  std::vector<float> cpu_a(37 * row), cpu_b_head(130 * row), cpu_b_tail(70 * row);
  ASSERT_TRUE(PrefillAttention(*pools.cpu, ta, a, 0, cpu_a).ok());
  ASSERT_TRUE(PrefillAttention(*pools.cpu, tb, b_head, 0, cpu_b_head).ok());
  ASSERT_TRUE(PrefillAttention(*pools.cpu, tb, b_tail, 130, cpu_b_tail).ok());
  std::vector<float> cpu_first = cpu_a;
  cpu_first.insert(cpu_first.end(), cpu_b_head.begin(), cpu_b_head.end());

  for (auto [gpu, cpu] : {std::pair{std::span<const float>(gpu_first), std::span<const float>(cpu_first)},
                          std::pair{std::span<const float>(gpu_second), std::span<const float>(cpu_b_tail)}}) {
    auto [max_abs, rel] = Errors(gpu, cpu);
    // bf16 probabilities in P V: about 3 significant digits.
    EXPECT_LT(max_abs, 3e-2);
    EXPECT_LT(rel, 1e-2);
  }
  // K/V written on the way are the CPU's bytes.
  const std::vector<std::byte> bytes = pools.GpuBytes();
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), pools.cpu->base()));
}

TEST_P(CudaKernelTest, PrefillOutputsMatchCpuWithinTolerance) {
  SKIP_WITHOUT_GPU();
  ExpectPrefillMatchesCpu(config_, layout_, PrefillKernel::kAuto);
}

TEST_P(CudaKernelTest, MmaSyncPrefillMatchesCpuWithinTolerance) {
  SKIP_WITHOUT_GPU();
  ExpectPrefillMatchesCpu(config_, layout_, PrefillKernel::kMmaSync);
}

TEST_P(CudaKernelTest, DecodeBatchOfMixedLengthsGivesCpuTokensAndOutputs) {
  SKIP_WITHOUT_GPU();
  Pools pools(config_, layout_, 160);
  const std::vector<int> lens = {1, 17, 300, 1000};
  const size_t row = static_cast<size_t>(config_.num_layers) * config_.num_q_heads * config_.head_dim;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<BlockId>> tables;
  std::vector<std::vector<float>> gpu_out(lens.size(), std::vector<float>(row));
  std::vector<std::vector<float>> cpu_out(lens.size(), std::vector<float>(row));
  std::vector<DecodeSequence> gpu_batch, cpu_batch;
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(model::SyntheticPrompt(10 + i, lens[i], config_.vocab_size));
    tables.push_back(pools.Table(lens[i]));
  }
  std::vector<PrefillChunk> chunks;
  for (size_t i = 0; i < lens.size(); ++i) {
    chunks.push_back({tables[i], prompts[i], 0});
    ASSERT_TRUE(WriteKv(*pools.cpu, tables[i], prompts[i], 0).ok());
    gpu_batch.push_back({tables[i], prompts[i].back(), lens[i], 100 + i, gpu_out[i]});
    cpu_batch.push_back({tables[i], prompts[i].back(), lens[i], 100 + i, cpu_out[i]});
  }
  ASSERT_TRUE(pools.attention->WriteKv(chunks).ok());
  auto gpu = pools.attention->Decode(gpu_batch);
  auto cpu = DecodeAttention(*pools.cpu, cpu_batch);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  for (size_t i = 0; i < lens.size(); ++i) {
    EXPECT_EQ((*gpu)[i].checksum, (*cpu)[i].checksum) << "sequence of " << lens[i];
    EXPECT_EQ((*gpu)[i].token, (*cpu)[i].token) << "sequence of " << lens[i];
    auto [max_abs, rel] = Errors(gpu_out[i], cpu_out[i]);
    EXPECT_LT(max_abs, 1e-3) << "sequence of " << lens[i];  // fp32 on both sides
  }
}

TEST_P(CudaKernelTest, GenerationEqualsReferenceGenerate) {
  SKIP_WITHOUT_GPU();
  Pools pools(config_, layout_, 32);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(6, 50, config_.vocab_size);
  std::vector<BlockId> table = pools.Table(70);
  std::vector<PrefillChunk> chunk = {{table, prompt, 0}};
  ASSERT_TRUE(pools.attention->Prefill(chunk).ok());
  std::vector<int32_t> seq = prompt, generated;
  for (int step = 0; step < 12; ++step) {
    DecodeSequence s{table, seq.back(), static_cast<int>(seq.size()), 77, {}};
    auto r = pools.attention->Decode(std::span(&s, 1), {}, /*write_last_kv=*/step > 0);
    ASSERT_TRUE(r.ok()) << r.status();
    seq.push_back((*r)[0].token);
    generated.push_back((*r)[0].token);
  }
  EXPECT_EQ(generated, model::ReferenceGenerate(prompt, 12, config_, 77));
}

TEST_P(CudaKernelTest, ChecksumOnlyDecodeGivesTheSameTokens) {
  SKIP_WITHOUT_GPU();
  Pools pools(config_, layout_, 64);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(8, 333, config_.vocab_size);
  std::vector<BlockId> table = pools.Table(333);
  std::vector<PrefillChunk> chunk = {{table, prompt, 0}};
  ASSERT_TRUE(pools.attention->WriteKv(chunk).ok());
  DecodeSequence s{table, prompt.back(), 333, 5, {}};
  auto full = pools.attention->Decode(std::span(&s, 1));
  auto light = pools.attention->Decode(std::span(&s, 1), {.compute_attention = false});
  ASSERT_TRUE(full.ok() && light.ok());
  EXPECT_EQ((*full)[0].checksum, (*light)[0].checksum);
  EXPECT_EQ((*full)[0].token, (*light)[0].token);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaKernelTest,
    testing::Values(Shape{"tiny", KvLayout::kLayerMajor}, Shape{"tiny", KvLayout::kBlockMajor},
                    Shape{"small", KvLayout::kLayerMajor}, Shape{"small", KvLayout::kBlockMajor},
                    Shape{"llama3-8b", KvLayout::kLayerMajor},
                    Shape{"llama3-8b", KvLayout::kBlockMajor}),
    [](const testing::TestParamInfo<Shape>& info) {
      std::string name = info.param.preset + "_" + std::string(KvLayoutName(info.param.layout));
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(CudaDecodeTest, LongSingleSequenceIsSplitAndStillMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const ModelConfig config = Config("llama3-8b");
  Pools pools(config, KvLayout::kLayerMajor, 200);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(9, 3000, config.vocab_size);
  std::vector<BlockId> table = pools.Table(3000);
  const size_t row = static_cast<size_t>(config.num_layers) * config.num_q_heads * config.head_dim;
  std::vector<float> gpu_out(row), cpu_out(row);
  std::vector<PrefillChunk> chunk = {{table, prompt, 0}};
  ASSERT_TRUE(pools.attention->WriteKv(chunk).ok());
  ASSERT_TRUE(WriteKv(*pools.cpu, table, prompt, 0).ok());
  DecodeSequence g{table, prompt.back(), 3000, 3, gpu_out};
  DecodeSequence c{table, prompt.back(), 3000, 3, cpu_out};
  auto gpu = pools.attention->Decode(std::span(&g, 1));
  auto cpu = DecodeAttention(*pools.cpu, std::span(&c, 1));
  ASSERT_TRUE(gpu.ok() && cpu.ok());
  EXPECT_GT(pools.attention->last_decode_max_splits(), 1);
  EXPECT_EQ((*gpu)[0].checksum, (*cpu)[0].checksum);
  EXPECT_EQ((*gpu)[0].token, (*cpu)[0].token);
  EXPECT_LT(Errors(gpu_out, cpu_out).first, 1e-3);
}

// The mma decode kernel's other paths: eight query heads per KV head (llama3-70b's group), and
// blocks of 4 tokens, where one warp's 16 keys span four entries of the block table.
TEST(CudaDecodeTest, EightHeadGroupsAndSmallBlocksMatchCpu) {
  SKIP_WITHOUT_GPU();
  ModelConfig wide = *PresetConfig("llama3-70b");
  wide.num_layers = 2;
  ModelConfig small_blocks = Config("llama3-8b");
  small_blocks.block_size = 4;
  for (const ModelConfig& config : {wide, small_blocks}) {
    SCOPED_TRACE(config.name + " block size " + std::to_string(config.block_size));
    Pools pools(config, KvLayout::kBlockMajor, 512);
    const size_t row = static_cast<size_t>(config.num_layers) * config.num_q_heads * config.head_dim;
    const std::vector<int> lens = {3, 100, 700};
    std::vector<std::vector<float>> gpu_out(lens.size(), std::vector<float>(row));
    std::vector<std::vector<float>> cpu_out(lens.size(), std::vector<float>(row));
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::vector<BlockId>> tables;  // filled before the spans below point into them
    std::vector<DecodeSequence> gpu_batch, cpu_batch;
    std::vector<PrefillChunk> chunks;
    for (size_t i = 0; i < lens.size(); ++i) {
      prompts.push_back(model::SyntheticPrompt(20 + i, lens[i], config.vocab_size));
      tables.push_back(pools.Table(lens[i]));
    }
    for (size_t i = 0; i < lens.size(); ++i) {
      chunks.push_back({tables[i], prompts[i], 0});
      ASSERT_TRUE(WriteKv(*pools.cpu, tables[i], prompts[i], 0).ok());
      gpu_batch.push_back({tables[i], prompts[i].back(), lens[i], 40 + i, gpu_out[i]});
      cpu_batch.push_back({tables[i], prompts[i].back(), lens[i], 40 + i, cpu_out[i]});
    }
    const absl::Status written = pools.attention->WriteKv(chunks);
    ASSERT_TRUE(written.ok()) << written;
    auto gpu = pools.attention->Decode(gpu_batch);
    auto cpu = DecodeAttention(*pools.cpu, cpu_batch);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    for (size_t i = 0; i < lens.size(); ++i) {
      EXPECT_EQ((*gpu)[i].checksum, (*cpu)[i].checksum) << "sequence of " << lens[i];
      EXPECT_EQ((*gpu)[i].probe, (*cpu)[i].probe) << "sequence of " << lens[i];
      EXPECT_EQ((*gpu)[i].token, (*cpu)[i].token) << "sequence of " << lens[i];
      EXPECT_LT(Errors(gpu_out[i], cpu_out[i]).first, 1e-3) << "sequence of " << lens[i];
    }
  }
}

TEST(CudaDecodeTest, FlippingOneDeviceByteChangesTheChecksum) {
  SKIP_WITHOUT_GPU();
  const ModelConfig config = Config("tiny");
  Pools pools(config, KvLayout::kBlockMajor, 16);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(7, 30, config.vocab_size);
  std::vector<BlockId> table = pools.Table(30);
  std::vector<PrefillChunk> chunk = {{table, prompt, 0}};
  ASSERT_TRUE(pools.attention->WriteKv(chunk).ok());
  DecodeSequence s{table, prompt.back(), 30, 3, {}};
  const uint64_t before = (*pools.attention->Decode(std::span(&s, 1)))[0].checksum;
  const size_t offset = pools.gpu->geometry().RowOffset(table[1], 1, 1, 1, model::kValue) + 5;
  std::byte b{};
  ASSERT_TRUE(CopyDeviceToHost(pools.gpu->memory(), offset, std::span(&b, 1)).ok());
  b ^= std::byte{0x10};
  ASSERT_TRUE(CopyHostToDevice(std::span(&b, 1), pools.gpu->memory(), offset).ok());
  EXPECT_NE((*pools.attention->Decode(std::span(&s, 1)))[0].checksum, before);
}

TEST(CudaMemoryTest, DeviceKvCacheIsZeroedDeviceMemory) {
  SKIP_WITHOUT_GPU();
  auto cache = CreateDeviceKvCache(*PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->memory().kind(), MemoryKind::kCuda);
  EXPECT_EQ((*cache)->memory().device(), 0);
  std::vector<std::byte> bytes((*cache)->geometry().region_bytes(), std::byte{1});
  ASSERT_TRUE(CopyDeviceToHost((*cache)->memory(), 0, bytes).ok());
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte x) { return x == std::byte{0}; }));
}

TEST(CudaMemoryTest, HostPoolIsRejectedByTheKernels) {
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  EXPECT_EQ(CudaAttention::Create(*cache).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::cuda
