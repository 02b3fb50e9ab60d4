#include "router/request_id.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

TEST(RequestIdTest, ServerIdsAreCmplAnd128BitsOfHexAllDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<std::string> id = NewServerRequestId();
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_THAT(*id, ::testing::MatchesRegex("cmpl-[0-9a-f]{32}"));
    seen.insert(*id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(RequestIdTest, ClientIdsInTheServerNamespaceAreInvalidArgument) {
  EXPECT_EQ(CheckClientRequestId("cmpl-1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckClientRequestId(*NewServerRequestId()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckClientRequestId("req-1").ok());
  EXPECT_TRUE(CheckClientRequestId("my-cmpl-1").ok());
  EXPECT_TRUE(CheckClientRequestId("").ok());
}

}  // namespace
}  // namespace pdserve::router
