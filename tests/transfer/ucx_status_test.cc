// How UCX statuses map to ours: callers retry or fail over on Unavailable, not on Internal.
#include "gtest/gtest.h"
#include "transfer/ucx/ucx_context.h"

namespace pdserve::transfer::ucx {
namespace {

// A tcp peer that went away in the middle of a flush fails it with UCS_ERR_NOT_CONNECTED.
TEST(UcsErrorTest, NotConnectedIsUnavailable) {
  EXPECT_EQ(UcsError("flush", UCS_ERR_NOT_CONNECTED).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pdserve::transfer::ucx
