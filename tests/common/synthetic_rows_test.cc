#include "common/synthetic_rows.h"

#include <cstring>
#include <vector>

#include "common/synthetic_model.h"
#include "gtest/gtest.h"

namespace pdserve::model {
namespace {

// The vector path (where the CPU has it) must write the bytes and sums of the definitions.
TEST(SyntheticRowsTest, FastRowsEqualTheElementDefinitionInEveryDtype) {
  for (DType dtype : {DType::kBF16, DType::kFP16, DType::kFP32}) {
    for (int head_dim : {8, 16, 24, 64, 128, 256}) {
      const uint64_t seed = RowSeed(11, 3, 2, 1, kKey) + head_dim;
      std::vector<unsigned char> fast(head_dim * 4), slow(head_dim * 4);
      GenerateRow(seed, head_dim, dtype, fast.data());
      rows_internal::GenerateRowPortable(seed, head_dim, dtype, slow.data());
      for (int d = 0; d < head_dim; ++d) {
        const float want = ElementValue(seed, d);
        ASSERT_EQ(DecodeElement(fast.data(), d, dtype), want) << "dim " << d;
        ASSERT_EQ(DecodeElement(slow.data(), d, dtype), want) << "dim " << d;
        if (dtype != DType::kFP32) {
          ASSERT_EQ(static_cast<const uint16_t*>(static_cast<const void*>(fast.data()))[d],
                    EncodeElement(want, dtype));
        }
      }
      const int words = head_dim * DTypeBytes(dtype) / 8;
      EXPECT_EQ(ChecksumRow(fast.data(), words, 77), rows_internal::ChecksumRowPortable(fast.data(), words, 77));
    }
  }
}

// The vector probe score must equal the scalar definition bit for bit, tails included.
TEST(SyntheticRowsTest, FastProbeDotEqualsThePortableOneInEveryDtype) {
  for (DType dtype : {DType::kBF16, DType::kFP16, DType::kFP32}) {
    for (int head_dim : {8, 16, 24, 64, 128, 136, 256}) {
      std::vector<unsigned char> key(head_dim * 4);
      std::vector<float> query(head_dim);
      for (int row = 0; row < 20; ++row) {
        GenerateRow(RowSeed(row, 7, 1, 0, kKey), head_dim, dtype, key.data());
        GenerateRow(RowSeed(row, 9, 1, 3, kQuery), head_dim, DType::kFP32, query.data());
        float want = 0;
        for (int d = 0; d < head_dim; ++d) want += query[d] * DecodeElement(key.data(), d, dtype);
        ASSERT_EQ(ProbeDot(query.data(), key.data(), head_dim, dtype), want)
            << "dim " << head_dim << " row " << row;
        ASSERT_EQ(rows_internal::ProbeDotPortable(query.data(), key.data(), head_dim, dtype), want);
      }
    }
  }
}

TEST(SyntheticRowsTest, ChecksumIsTheSumOfWordTerms) {
  std::vector<uint64_t> words(37);
  for (size_t i = 0; i < words.size(); ++i) words[i] = Mix64(i + 5);
  uint64_t want = 0;
  for (size_t i = 0; i < words.size(); ++i) want += WordTerm(words[i], 1234, static_cast<int>(i));
  EXPECT_EQ(ChecksumRow(words.data(), 37, 1234), want);
  EXPECT_EQ(rows_internal::ChecksumRowPortable(words.data(), 37, 1234), want);
}

// A plain multiply per term let the same bit flipped in two words (two bf16 sign bits) cancel.
TEST(SyntheticRowsTest, SameBitFlippedInTwoWordsChangesTheChecksum) {
  std::vector<uint64_t> words(32);
  for (size_t i = 0; i < words.size(); ++i) words[i] = Mix64(i * 3 + 1);
  const uint64_t good = ChecksumRow(words.data(), 32, 99);
  for (int bit : {63, 31, 15, 0}) {
    for (int a = 0; a < 32; a += 5) {
      for (int b = a + 1; b < 32; b += 7) {
        std::vector<uint64_t> bad = words;
        bad[a] ^= uint64_t{1} << bit;
        bad[b] ^= uint64_t{1} << bit;
        EXPECT_NE(ChecksumRow(bad.data(), 32, 99), good) << "bit " << bit << " words " << a << "," << b;
      }
    }
  }
}

TEST(SyntheticRowsTest, ProbeScoresAreExactInAnyOrder) {
  ModelConfig c = *PresetConfig("llama3-8b");
  std::vector<float> q(c.head_dim), k(c.head_dim);
  GenerateRow(RowSeed(5, 6, 7, 8, kQuery), c.head_dim, DType::kFP32, q.data());
  GenerateRow(RowSeed(9, 6, 7, 1, kKey), c.head_dim, DType::kFP32, k.data());
  c.dtype = DType::kFP32;
  double exact = 0;
  float backwards = 0;
  for (int d = 0; d < c.head_dim; ++d) exact += double{q[d]} * k[d];
  for (int d = c.head_dim - 1; d >= 0; --d) backwards += q[d] * k[d];
  EXPECT_EQ(ProbeScore(c, q.data(), k.data()), exact);
  EXPECT_EQ(backwards, exact);
}

TEST(SyntheticRowsTest, ProbeArgmaxTakesTheLowestPositionOnTies) {
  ProbeArgmax a;
  a.Offer(1.0f, 7);
  a.Offer(2.0f, 9);
  a.Offer(2.0f, 3);
  a.Offer(2.0f, 5);
  EXPECT_EQ(a.pos, 3);
  ProbeArgmax b;  // the same offers in another order
  b.Offer(2.0f, 5);
  b.Offer(2.0f, 3);
  b.Offer(1.0f, 7);
  b.Offer(2.0f, 9);
  EXPECT_EQ(b.pos, 3);
}

// The token depends on the probe: the same KV bytes with another query give other tokens.
TEST(SyntheticRowsTest, TokenDependsOnTheProbe) {
  int differ = 0;
  for (int probe = 0; probe < 16; ++probe) {
    differ += NextToken(3, 40, 0x1234, probe, 1 << 20) != NextToken(3, 40, 0x1234, 0, 1 << 20);
  }
  EXPECT_EQ(differ, 15);
}

}  // namespace
}  // namespace pdserve::model
