// How UCX statuses map to ours: callers retry or fail over on Unavailable, not on Internal.
#include "gtest/gtest.h"
#include "transfer/ucx/ucx_context.h"

namespace pdserve::transfer::ucx {
namespace {

// A tcp peer that went away in the middle of a flush fails it with UCS_ERR_NOT_CONNECTED.
TEST(UcsErrorTest, NotConnectedIsUnavailable) {
  EXPECT_EQ(UcsError("flush", UCS_ERR_NOT_CONNECTED).code(), absl::StatusCode::kUnavailable);
}

// Endpoints skip the peer-failure attempt (and UCX's ERROR line) only where it must fail.
TEST(UcxContextTest, SharedMemoryOnlyTransportListsHaveNoPeerFailureHandling) {
  EXPECT_TRUE(UcxContext::OnlySharedMemory("posix"));
  EXPECT_TRUE(UcxContext::OnlySharedMemory("posix,sysv,cma,self"));
  EXPECT_FALSE(UcxContext::OnlySharedMemory(""));  // all transports
  EXPECT_FALSE(UcxContext::OnlySharedMemory("tcp"));
  EXPECT_FALSE(UcxContext::OnlySharedMemory("cma,tcp"));
  EXPECT_FALSE(UcxContext::OnlySharedMemory("^tcp"));
}

}  // namespace
}  // namespace pdserve::transfer::ucx
