#include "transfer/copy_plan.h"

#include <algorithm>
#include <map>
#include <random>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer {
namespace {

ModelConfig Small() { return *PresetConfig("small"); }  // 4 layers, 16 KiB fragments

std::vector<BlockCopy> BlockRun(BlockId src, BlockId dst, int n) {
  std::vector<BlockCopy> copies;
  for (int i = 0; i < n; ++i) copies.push_back({src + i, dst + i});
  return copies;
}

TEST(CopyPlanTest, BlockMajorContiguousRunIsOneOperation) {
  KvGeometry local(Small(), 32, KvLayout::kBlockMajor), remote(Small(), 64, KvLayout::kBlockMajor);
  std::vector<CopyOp> ops;
  ASSERT_TRUE(PlanCopies(local, remote, BlockRun(3, 40, 8), ops).ok());
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].src, static_cast<uint64_t>(3 * local.block_bytes()));
  EXPECT_EQ(ops[0].dst, static_cast<uint64_t>(40 * local.block_bytes()));
  EXPECT_EQ(ops[0].bytes, static_cast<uint64_t>(8 * local.block_bytes()));
}

TEST(CopyPlanTest, LayerMajorContiguousRunIsOneOperationPerLayer) {
  KvGeometry local(Small(), 32, KvLayout::kLayerMajor), remote(Small(), 64, KvLayout::kLayerMajor);
  std::vector<CopyOp> ops;
  ASSERT_TRUE(PlanCopies(local, remote, BlockRun(3, 40, 8), ops).ok());
  ASSERT_EQ(ops.size(), 4u);
  for (int layer = 0; layer < 4; ++layer) {
    EXPECT_EQ(ops[layer].src, static_cast<uint64_t>(local.FragmentOffset(3, layer)));
    EXPECT_EQ(ops[layer].dst, static_cast<uint64_t>(remote.FragmentOffset(40, layer)));
    EXPECT_EQ(ops[layer].bytes, static_cast<uint64_t>(8 * local.fragment_bytes()));
  }
}

TEST(CopyPlanTest, LayerMajorWholePoolIntoSameShapeIsOneOperation) {
  KvGeometry local(Small(), 16, KvLayout::kLayerMajor), remote(Small(), 16, KvLayout::kLayerMajor);
  std::vector<CopyOp> ops;
  ASSERT_TRUE(PlanCopies(local, remote, BlockRun(0, 0, 16), ops).ok());
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].bytes, static_cast<uint64_t>(local.region_bytes()));
}

TEST(CopyPlanTest, ScatteredBlocksAreOneOperationPerFragment) {
  KvGeometry local(Small(), 32, KvLayout::kLayerMajor), remote(Small(), 64, KvLayout::kLayerMajor);
  std::vector<BlockCopy> copies = {{0, 10}, {1, 3}, {2, 50}, {5, 6}};
  std::vector<CopyOp> ops;
  ASSERT_TRUE(PlanCopies(local, remote, copies, ops).ok());
  EXPECT_EQ(ops.size(), 16u);
  EXPECT_EQ(TotalBytes(ops), static_cast<uint64_t>(4 * local.block_bytes()));
}

TEST(CopyPlanTest, OrderOfCopiesDoesNotChangeThePlan) {
  KvGeometry local(Small(), 32, KvLayout::kBlockMajor), remote(Small(), 32, KvLayout::kBlockMajor);
  std::vector<BlockCopy> copies = BlockRun(4, 20, 6);
  std::reverse(copies.begin(), copies.end());
  std::vector<CopyOp> ops;
  ASSERT_TRUE(PlanCopies(local, remote, copies, ops).ok());
  EXPECT_EQ(ops.size(), 1u);
}

// Whatever the layout and the order of the copies: every fragment of every copied block goes to
// the same fragment of its destination block and nothing else is copied, the operations come in
// source order, and no two of them could be one (the plan emits layer-major fragments in source
// order instead of sorting them; this checks it against the definition).
TEST(CopyPlanTest, ScatteredBatchMapsEveryFragmentOnceInSourceOrderFullyMerged) {
  std::mt19937 rng(7);
  for (KvLayout layout : {KvLayout::kLayerMajor, KvLayout::kBlockMajor}) {
    KvGeometry local(Small(), 96, layout), remote(Small(), 128, layout);
    std::vector<BlockId> dst(100);  // 100..109 take the run below
    for (BlockId b = 0; b < 100; ++b) dst[b] = b;
    std::shuffle(dst.begin(), dst.end(), rng);
    std::vector<BlockCopy> copies;
    for (BlockId b = 0; b < 60; ++b) copies.push_back({b + (b > 30 ? 20 : 0), dst[b]});
    for (BlockId b = 0; b < 10; ++b) copies.push_back({80 + b, 100 + b});  // one run of 10
    std::shuffle(copies.begin(), copies.end(), rng);
    std::vector<CopyOp> ops;
    ASSERT_TRUE(PlanCopies(local, remote, copies, ops).ok());
    const uint64_t unit = static_cast<uint64_t>(local.transfer_fragment_bytes());
    std::map<uint64_t, uint64_t> expected, planned;
    for (const BlockCopy& c : copies) {
      for (int f = 0; f < local.fragments_per_block(); ++f) {
        expected[local.FragmentOffset(c.src, f)] = remote.FragmentOffset(c.dst, f);
      }
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      ASSERT_EQ(ops[i].bytes % unit, 0u);
      for (uint64_t k = 0; k < ops[i].bytes; k += unit) {
        ASSERT_TRUE(planned.emplace(ops[i].src + k, ops[i].dst + k).second) << "copied twice";
      }
      if (i == 0) continue;
      EXPECT_LT(ops[i - 1].src, ops[i].src) << "operation " << i << " out of source order";
      EXPECT_FALSE(ops[i - 1].src + ops[i - 1].bytes == ops[i].src &&
                   ops[i - 1].dst + ops[i - 1].bytes == ops[i].dst)
          << "operations " << i - 1 << " and " << i << " are one";
    }
    EXPECT_EQ(planned, expected) << KvLayoutName(layout);
  }
}

TEST(CopyPlanTest, OutOfRangeDuplicateOrEmptyIsInvalidArgument) {
  KvGeometry local(Small(), 8, KvLayout::kBlockMajor), remote(Small(), 4, KvLayout::kBlockMajor);
  std::vector<CopyOp> ops;
  std::vector<BlockCopy> bad_dst = {{0, 4}}, bad_src = {{8, 0}}, twice = {{0, 1}, {2, 1}};
  EXPECT_EQ(PlanCopies(local, remote, bad_dst, ops).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanCopies(local, remote, bad_src, ops).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanCopies(local, remote, twice, ops).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanCopies(local, remote, {}, ops).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PoolDescriptorTest, SerializeParseRoundTrip) {
  KvGeometry g(Small(), 48, KvLayout::kLayerMajor);
  PoolDescriptor d = DescribePool("local", "decode-0", g);
  d.fields["shm_name"] = "/x";
  absl::StatusOr<PoolDescriptor> back = PoolDescriptor::Parse(d.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->backend, "local");
  EXPECT_EQ(back->agent, "decode-0");
  EXPECT_EQ(back->pool_id, d.pool_id);
  EXPECT_EQ(back->num_blocks, 48u);
  EXPECT_EQ(back->region_bytes(), g.region_bytes());
  EXPECT_EQ(*back->Field("shm_name"), "/x");
  EXPECT_TRUE(CheckCompatible(g, "local", *back).ok());
}

TEST(PoolDescriptorTest, MismatchedGeometryOrBackendIsInvalidArgument) {
  KvGeometry g(Small(), 48, KvLayout::kLayerMajor);
  KvGeometry other_layout(Small(), 48, KvLayout::kBlockMajor);
  KvGeometry other_shape(*PresetConfig("tiny"), 48, KvLayout::kLayerMajor);
  PoolDescriptor d = DescribePool("local", "decode-0", g);
  EXPECT_EQ(CheckCompatible(other_layout, "local", d).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCompatible(other_shape, "local", d).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCompatible(g, "ucx", d).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PoolDescriptor::Parse("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PoolDescriptor::Parse("{\"format\":\"pdserve-kv-pool/1\"}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A descriptor comes from another process: a number that does not fit its field is refused,
// not cast (-1 blocks read as 4294967295, 4294967360 as 64, 1e300 layers undefined).
std::string DescriptorWith(const std::string& key, const std::string& json_value) {
  nlohmann::json j =
      nlohmann::json::parse(DescribePool("local", "decode-0", KvGeometry(Small(), 48, KvLayout::kLayerMajor)).Serialize());
  j[key] = nlohmann::json::parse(json_value);
  return j.dump();
}

TEST(PoolDescriptorTest, NumberOutsideItsFieldIsInvalidArgument) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"num_blocks", "-1"},      {"num_blocks", "4294967360"}, {"num_blocks", "1.5"},
      {"num_layers", "1e300"},   {"num_layers", "4294967298"}, {"pool_id", "-5"},
      {"pool_id", "18446748147419103230"},  // above 2^64: a double (pool_descriptor_fuzzer)
      {"fragment_bytes", "\"16384\""}, {"fragment_bytes", "16384.5"}};
  for (const auto& [key, value] : cases) {
    absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(DescriptorWith(key, value));
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << key << " = " << value;
  }
  EXPECT_TRUE(PoolDescriptor::Parse(DescriptorWith("num_blocks", "4294967295")).ok());
}

// A format that is not a string is refused, not thrown (pool_descriptor_fuzzer: an uncaught
// nlohmann::json::type_error ended the process that loaded the peer).
TEST(PoolDescriptorTest, FormatOfAnotherTypeIsInvalidArgument) {
  for (const std::string& format : {"0", "null", "[\"pdserve-kv-pool/1\"]", "{}"}) {
    EXPECT_EQ(PoolDescriptor::Parse(DescriptorWith("format", format)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << format;
  }
}

// block_bytes() and region_bytes() of an accepted descriptor never overflow.
TEST(PoolDescriptorTest, GeometryTooLargeToAddressIsInvalidArgument) {
  nlohmann::json j = nlohmann::json::parse(DescriptorWith("fragment_bytes", "4611686018427387904"));
  EXPECT_EQ(PoolDescriptor::Parse(j.dump()).status().code(), absl::StatusCode::kInvalidArgument);
  j["fragment_bytes"] = int64_t{1} << 40;
  j["num_blocks"] = uint32_t{1} << 31;
  EXPECT_EQ(PoolDescriptor::Parse(j.dump()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CopyPlanTest, CutSharesSplitsOperationsIntoPiecesOfEqualBytes) {
  const std::vector<CopyOp> ops = {{0, 1000, 300}, {500, 0, 100}};  // 400 bytes in all
  const std::vector<std::vector<CopyOp>> shares = CutShares(ops, 2);
  ASSERT_EQ(shares.size(), 2u);
  ASSERT_EQ(shares[0].size(), 1u);
  EXPECT_EQ(shares[0][0].src, 0u);
  EXPECT_EQ(shares[0][0].dst, 1000u);
  EXPECT_EQ(shares[0][0].bytes, 200u);
  ASSERT_EQ(shares[1].size(), 2u);
  EXPECT_EQ(shares[1][0].src, 200u);  // the rest of the first operation
  EXPECT_EQ(shares[1][0].dst, 1200u);
  EXPECT_EQ(shares[1][0].bytes, 100u);
  EXPECT_EQ(shares[1][1].src, 500u);
  EXPECT_EQ(shares[1][1].bytes, 100u);
}

TEST(CopyPlanTest, CutSharesIntoOneIsTheOperationsThemselves) {
  const std::vector<CopyOp> ops = {{0, 8, 16}, {64, 0, 8}};
  const std::vector<std::vector<CopyOp>> shares = CutShares(ops, 1);
  ASSERT_EQ(shares.size(), 1u);
  ASSERT_EQ(shares[0].size(), 2u);
  EXPECT_EQ(shares[0][1].src, 64u);
  EXPECT_EQ(shares[0][1].bytes, 8u);
}

}  // namespace
}  // namespace pdserve::transfer
