#include "common/synthetic_model.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::model {
namespace {

ModelConfig Tiny() { return *PresetConfig("tiny"); }

TEST(SyntheticModelTest, TinyGoldenTokensForFixedPrompt) {
  // Checked in on purpose: a change of any model function changes these.
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  EXPECT_THAT(ReferenceGenerate(prompt, 8, Tiny(), /*seed=*/42),
              testing::ElementsAre(603, 354, 194, 889, 971, 922, 3, 716));
}

TEST(SyntheticModelTest, ElementValuesAreExactInEveryDtype) {
  for (int d = 0; d < 64; ++d) {
    const float v = ElementValue(RowSeed(5, 9, 1, 0, kKey), d);
    EXPECT_GE(v, -2.0f);
    EXPECT_LT(v, 2.0f);
    EXPECT_EQ(Bf16BitsToFloat(FloatToBf16Bits(v)), v);
    EXPECT_EQ(Fp16BitsToFloat(FloatToFp16Bits(v)), v);
  }
}

TEST(SyntheticModelTest, KeyDependsOnTokenPositionLayerHeadAndKind) {
  const uint64_t base = RowSeed(1, 2, 3, 4, kKey);
  EXPECT_NE(base, RowSeed(9, 2, 3, 4, kKey));
  EXPECT_NE(base, RowSeed(1, 9, 3, 4, kKey));
  EXPECT_NE(base, RowSeed(1, 2, 9, 4, kKey));
  EXPECT_NE(base, RowSeed(1, 2, 3, 9, kKey));
  EXPECT_NE(base, RowSeed(1, 2, 3, 4, kValue));
}

TEST(SyntheticModelTest, FlippingOneByteOfARowChangesItsChecksum) {
  const ModelConfig c = Tiny();
  std::vector<unsigned char> row(c.RowBytes());
  WriteRow(c, 7, 3, 1, 0, kValue, row.data());
  const uint64_t good = RowChecksum(c, row.data(), 3, 1, 0, kValue);
  for (size_t i = 0; i < row.size(); ++i) {
    row[i] ^= 0x01;
    EXPECT_NE(RowChecksum(c, row.data(), 3, 1, 0, kValue), good) << "byte " << i;
    row[i] ^= 0x01;
  }
}

TEST(SyntheticModelTest, RightRowAtWrongPositionChangesChecksum) {
  const ModelConfig c = Tiny();
  std::vector<unsigned char> row(c.RowBytes());
  WriteRow(c, 7, 3, 1, 0, kKey, row.data());
  EXPECT_NE(RowChecksum(c, row.data(), 3, 1, 0, kKey), RowChecksum(c, row.data(), 4, 1, 0, kKey));
  EXPECT_NE(RowChecksum(c, row.data(), 3, 1, 0, kKey), RowChecksum(c, row.data(), 3, 0, 0, kKey));
}

TEST(SyntheticModelTest, TokensStayInsideVocabulary) {
  const ModelConfig c = Tiny();
  const std::vector<int32_t> out = ReferenceGenerate(SyntheticPrompt(3, 40, c.vocab_size), 64, c, 3);
  ASSERT_EQ(out.size(), 64u);
  for (int32_t t : out) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, c.vocab_size);
  }
  EXPECT_GT(std::set<int32_t>(out.begin(), out.end()).size(), 32u);
}

TEST(SyntheticModelTest, SeedChangesOutput) {
  const ModelConfig c = Tiny();
  const std::vector<int32_t> prompt = SyntheticPrompt(1, 20, c.vocab_size);
  EXPECT_NE(ReferenceGenerate(prompt, 8, c, 1), ReferenceGenerate(prompt, 8, c, 2));
}

TEST(SyntheticModelTest, PromptChangeInOneTokenChangesOutput) {
  const ModelConfig c = Tiny();
  std::vector<int32_t> prompt = SyntheticPrompt(1, 20, c.vocab_size);
  const std::vector<int32_t> a = ReferenceGenerate(prompt, 8, c, 1);
  prompt[5] = (prompt[5] + 1) % c.vocab_size;
  EXPECT_NE(ReferenceGenerate(prompt, 8, c, 1), a);
}

TEST(SyntheticModelTest, SyntheticPromptIsReproducible) {
  EXPECT_EQ(SyntheticPrompt(11, 30, 1000), SyntheticPrompt(11, 30, 1000));
  EXPECT_NE(SyntheticPrompt(11, 30, 1000), SyntheticPrompt(12, 30, 1000));
}

TEST(SyntheticModelTest, TokenizerMapsEqualWordsToEqualTokens) {
  const std::vector<int32_t> t = TokenizeText("the cat saw the  dog\n", 1024);
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[0], t[3]);
  EXPECT_NE(t[1], t[2]);
}

}  // namespace
}  // namespace pdserve::model
