#include "kvcache/kv_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace pdserve {
namespace {

TEST(KvMemoryTest, HostMemoryIsZeroedAndWritable) {
  auto mem = AllocateHostMemory(1 << 20);
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ((*mem)->size(), 1u << 20);
  EXPECT_EQ((*mem)->data()[12345], std::byte{0});
  (*mem)->data()[12345] = std::byte{7};
  EXPECT_EQ((*mem)->data()[12345], std::byte{7});
}

TEST(KvMemoryTest, SharedMemoryIsSeenByASecondMapping) {
  auto owner = CreateSharedMemory(4096);
  ASSERT_TRUE(owner.ok());
  auto peer = OpenSharedMemory((*owner)->shm_name(), 4096);
  ASSERT_TRUE(peer.ok()) << peer.status();
  std::memcpy((*peer)->data() + 100, "kv", 2);
  EXPECT_EQ(std::memcmp((*owner)->data() + 100, "kv", 2), 0);
}

TEST(KvMemoryTest, SharedMemoryIsUnlinkedWhenOwnerDies) {
  std::string name;
  {
    auto owner = CreateSharedMemory(4096);
    ASSERT_TRUE(owner.ok());
    name = (*owner)->shm_name();
  }
  EXPECT_EQ(OpenSharedMemory(name, 4096).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(KvMemoryTest, OpeningWithWrongSizeIsInvalidArgument) {
  auto owner = CreateSharedMemory(4096);
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(OpenSharedMemory((*owner)->shm_name(), 8192).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The pid of a process that has exited and been reaped: no process has it (until reused).
pid_t DeadPid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// A segment as a worker killed with SIGKILL leaves it: named after its owner, never unlinked.
std::string LeaveSegment(pid_t owner, int n) {
  const std::string name = absl::StrCat("/pdserve-kv-", owner, "-", n);
  const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  EXPECT_GE(fd, 0) << name;
  close(fd);
  return "/dev/shm" + name;
}

TEST(KvMemoryTest, SegmentsOfDeadOwnersAreReclaimedAndLiveOnesKept) {
  const std::string dead = LeaveSegment(DeadPid(), 0);
  const std::string live = LeaveSegment(getpid(), 1000);  // this process is alive
  EXPECT_GE(RemoveOrphanedSharedMemory(), 1);
  EXPECT_NE(access(dead.c_str(), F_OK), 0) << dead;
  EXPECT_EQ(access(live.c_str(), F_OK), 0) << live;
  EXPECT_EQ(RemoveSharedMemoryOf(getpid()), 1);
  EXPECT_NE(access(live.c_str(), F_OK), 0) << live;
}

// A pool the host cannot hold is refused before a page is touched (populating it would end in
// swap or the OOM killer), with a message that names the limit; a small one fits.
TEST(KvMemoryTest, PoolLargerThanTheHostIsRefusedUpFront) {
  constexpr size_t kHuge = size_t{1} << 50;  // 1 PiB
  for (bool shared : {false, true}) {
    absl::Status s = CheckHostMemoryFits(kHuge, shared);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_NE(s.message().find("--pool-gib"), std::string::npos) << s;
  }
  EXPECT_TRUE(CheckHostMemoryFits(1 << 20, true).ok());
  EXPECT_EQ(AllocateHostMemory(kHuge).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CreateSharedMemory(kHuge).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace pdserve
