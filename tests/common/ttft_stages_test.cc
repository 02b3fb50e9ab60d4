// common/ttft_stages.h: the eight stages partition arrival -> first token relayed, on one clock
// exactly, and with skewed clocks still without a negative stage or a lost microsecond.

#include "common/ttft_stages.h"

#include <numeric>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve {
namespace {

using ::testing::ElementsAre;

// One request on one host: every event after the previous one.
TtftEvents OneHost() {
  return {.arrival_us = 1'000'000,
          .scheduled_us = 1'002'000,          // queue 2000
          .allocated_us = 1'002'300,          // allocate 300
          .prefill_start_us = 1'002'500,      // dispatch 200
          .prefill_end_us = 1'012'500,        // prefill 10000
          .transfer_end_us = 1'015'500,       // kv_transfer 3000
          .decode_join_us = 1'015'600,        // decode_admit 100
          .first_token_us = 1'017'600,        // first_step 2000
          .first_token_relayed_us = 1'017'650};  // relay 50
}

int64_t Sum(const std::array<int64_t, kNumTtftStages>& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{0});
}

TEST(TtftStagesTest, NamesAreTheMetricLabelsInPathOrder) {
  EXPECT_THAT(TtftStageNames(), ElementsAre("queue", "allocate", "dispatch", "prefill",
                                            "kv_transfer", "decode_admit", "first_step", "relay"));
}

TEST(TtftStagesTest, OneClockSplitsExactlyAtTheEvents) {
  const auto s = SplitTtft(OneHost());
  ASSERT_TRUE(s.has_value());
  EXPECT_THAT(*s, ElementsAre(2000, 300, 200, 10000, 3000, 100, 2000, 50));
  EXPECT_EQ(Sum(*s), 17650);  // first_token_relayed - arrival
}

TEST(TtftStagesTest, KvStreamedDuringThePrefillCountsOnlyItsExposedPart) {
  // The transfer started at 1'005'000, under the prefill: only prefill_end -> transfer_end shows.
  TtftEvents e = OneHost();
  e.transfer_end_us = 1'012'900;
  e.decode_join_us = 1'013'000;
  e.first_token_us = 1'015'000;
  e.first_token_relayed_us = 1'015'050;
  const auto s = SplitTtft(e);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ((*s)[4], 400);
  EXPECT_EQ(Sum(*s), 15050);
}

TEST(TtftStagesTest, SkewedWorkerClocksAreClampedAndTheSumKept) {
  TtftEvents e = OneHost();
  // The decode worker's clock is 5 ms behind: its join and its first token both read before
  // the transfer's end on the prefill worker's clock.
  e.decode_join_us -= 5000;
  e.first_token_us -= 5000;
  const auto s = SplitTtft(e);
  ASSERT_TRUE(s.has_value());
  for (int64_t v : *s) EXPECT_GE(v, 0);
  EXPECT_EQ((*s)[5], 0);      // decode_admit: join clamped up to transfer_end
  EXPECT_EQ((*s)[6], 0);      // first_step: the token, too
  EXPECT_EQ((*s)[7], 2150);   // relay absorbs what the skew took from them
  EXPECT_EQ(Sum(*s), 17650);

  // A prefill worker 1 s ahead: its events clamp down to the router's relay time.
  e = OneHost();
  e.prefill_start_us += 1'000'000;
  e.prefill_end_us += 1'000'000;
  e.transfer_end_us += 1'000'000;
  const auto t = SplitTtft(e);
  ASSERT_TRUE(t.has_value());
  for (int64_t v : *t) EXPECT_GE(v, 0);
  EXPECT_EQ((*t)[2], 17650 - 2300);  // dispatch runs to the relay
  EXPECT_EQ(Sum(*t), 17650);
}

TEST(TtftStagesTest, UnrecordedOptionalEventsGiveEmptyStages) {
  TtftEvents e = OneHost();
  e.allocated_us = 0;     // an older router
  e.transfer_end_us = 0;  // colocated: no KV moved
  const auto s = SplitTtft(e);
  ASSERT_TRUE(s.has_value());
  EXPECT_THAT(*s, ElementsAre(2000, 0, 500, 10000, 0, 3100, 2000, 50));
  EXPECT_EQ(Sum(*s), 17650);
}

TEST(TtftStagesTest, NoSplitWithoutARequiredEventOrWithRelayBeforeArrival) {
  for (int64_t TtftEvents::*field :
       {&TtftEvents::arrival_us, &TtftEvents::scheduled_us, &TtftEvents::prefill_start_us,
        &TtftEvents::prefill_end_us, &TtftEvents::decode_join_us, &TtftEvents::first_token_us,
        &TtftEvents::first_token_relayed_us}) {
    TtftEvents e = OneHost();
    e.*field = 0;
    EXPECT_FALSE(SplitTtft(e).has_value());
  }
  TtftEvents e = OneHost();
  e.first_token_relayed_us = e.arrival_us - 1;
  EXPECT_FALSE(SplitTtft(e).has_value());
}

}  // namespace
}  // namespace pdserve
