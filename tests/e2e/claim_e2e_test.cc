// Claimed prompt checksums end to end (docs/model.md): a roofline prefill worker sends the
// checksum of the KV it wrote, the router passes it on, the decode worker starts from it and
// checks the landed blocks in the background. Every token must still be the model's, every
// claim must have been checked, and none refuted.
#include <string>

#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

struct Claims {
  uint64_t checked = 0;
  uint64_t refuted = 0;
};

Claims DecodeClaims(Client& client) {
  Claims c;
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok()) return c;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() != v1::WORKER_ROLE_DECODE) continue;
    c.checked += w.engine().claimed_checks();
    c.refuted += w.engine().claims_refuted();
  }
  return c;
}

void ServeVerified(Client& client, int* served) {
  const ModelConfig model = *PresetConfig("tiny");
  for (int prompt_len : {1, 17, 40, 70, 129}) {
    Outcome out = client.Generate("claim-" + std::to_string(prompt_len), prompt_len, 24, 5);
    ASSERT_TRUE(out.status.ok()) << prompt_len << ": " << out.status.error_message();
    EXPECT_EQ(out.tokens, Expected(prompt_len, 24, 5, model)) << prompt_len;
    ++*served;
  }
}

TEST(ClaimE2eTest, EveryClaimIsCheckedAndTheTokensAreTheModels) {
  for (const char* transfer : {"local", "ucx"}) {
    SCOPED_TRACE(transfer);
    cluster::ClusterOptions o = Options(transfer, 1, 1);
    o.compute = "roofline";
    o.prefill_args = {"--claim-checksum-mib", "0.0001"};  // every tiny prompt claims
    auto cluster = Start(o);
    ASSERT_NE(cluster, nullptr);
    Client client(cluster->endpoint());
    int served = 0;
    ServeVerified(client, &served);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    Claims claims = DecodeClaims(client);
    while (claims.checked < static_cast<uint64_t>(served) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      claims = DecodeClaims(client);
    }
    EXPECT_EQ(claims.checked, static_cast<uint64_t>(served));
    EXPECT_EQ(claims.refuted, 0u);
    ExpectAllBlocksFree(client);
  }
}

TEST(ClaimE2eTest, SmallPromptsSendNoClaimByDefault) {
  cluster::ClusterOptions o = Options("local", 1, 1);
  o.compute = "roofline";
  auto cluster = Start(o);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  int served = 0;
  ServeVerified(client, &served);
  EXPECT_EQ(DecodeClaims(client).checked, 0u);
}

}  // namespace
}  // namespace pdserve::e2e
