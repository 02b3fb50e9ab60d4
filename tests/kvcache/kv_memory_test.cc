#include "kvcache/kv_memory.h"

#include <sys/mman.h>

#include <cstring>

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

}  // namespace
}  // namespace pdserve
