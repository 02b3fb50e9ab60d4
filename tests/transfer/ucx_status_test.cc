// How UCX statuses map to ours: callers retry or fail over on Unavailable, not on Internal.
#include "gtest/gtest.h"
#include "transfer/ucx/ucx_config.h"
#include "transfer/ucx/ucx_context.h"

namespace pdserve::transfer::ucx {
namespace {

// A tcp peer that went away in the middle of a flush fails it with UCS_ERR_NOT_CONNECTED.
TEST(UcsErrorTest, NotConnectedIsUnavailable) {
  EXPECT_EQ(UcsError("flush", UCS_ERR_NOT_CONNECTED).code(), absl::StatusCode::kUnavailable);
}

// Same-host peers are connected without UCX's peer-failure handling (shared memory, pid watch)
// exactly when the UCX_TLS in force keeps a shared-memory transport.
TEST(AllowsSharedMemoryTest, ListsAndExclusionsThatKeepPosixOrCmaAllowIt) {
  EXPECT_TRUE(AllowsSharedMemory(""));       // UCX's default: all
  EXPECT_TRUE(AllowsSharedMemory("^sysv"));  // what pdserve makes of an unset UCX_TLS
  EXPECT_TRUE(AllowsSharedMemory("posix"));
  EXPECT_TRUE(AllowsSharedMemory("tcp,cma"));
  EXPECT_TRUE(AllowsSharedMemory("posix,cma"));
  EXPECT_TRUE(AllowsSharedMemory("^tcp,sysv"));
  EXPECT_TRUE(AllowsSharedMemory("^posix,sysv"));  // cma is left
  EXPECT_FALSE(AllowsSharedMemory("tcp"));
  EXPECT_FALSE(AllowsSharedMemory("tcp,self"));
  EXPECT_FALSE(AllowsSharedMemory("^sm,sysv"));
  EXPECT_FALSE(AllowsSharedMemory("^posix,cma,knem,xpmem,sysv"));
  EXPECT_FALSE(AllowsSharedMemory("^mm,cma,knem"));
}

}  // namespace
}  // namespace pdserve::transfer::ucx
