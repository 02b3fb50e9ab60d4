// CheckFileMapping: a peer's pool size is believed only as far as the shared mapping that holds
// it reaches (transfer/mapped_range.h).
#include "transfer/mapped_range.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <vector>

#include "gtest/gtest.h"

namespace pdserve::transfer {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// A shared memfd mapping of `pages` pages, unmapped and closed on destruction.
class SharedPages {
 public:
  explicit SharedPages(size_t pages) : bytes_(pages * kPage) {
    fd_ = memfd_create("mapped-range-test", 0);
    if (fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(bytes_)) == 0) {
      void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
      if (p != MAP_FAILED) base_ = static_cast<std::byte*>(p);
    }
  }
  ~SharedPages() {
    if (base_ != nullptr) munmap(base_, bytes_);
    if (fd_ >= 0) close(fd_);
  }
  std::byte* base() const { return base_; }

 private:
  size_t bytes_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
};

TEST(MappedRangeTest, ARangeInsideItsSharedMappingIsAccepted) {
  SharedPages m(4);
  ASSERT_NE(m.base(), nullptr);
  EXPECT_TRUE(CheckFileMapping(m.base(), 4 * kPage, "pool").ok());
  EXPECT_TRUE(CheckFileMapping(m.base() + kPage + 16, 3 * kPage - 16, "pool").ok());
}

TEST(MappedRangeTest, ARangePastItsMappingIsRefusedWithBothSizes) {
  SharedPages m(4);
  ASSERT_NE(m.base(), nullptr);
  absl::Status s = CheckFileMapping(m.base(), 4 * kPage + 1, "KV pool of agent 'd'");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("KV pool of agent 'd' claims"), std::string::npos) << s;
  EXPECT_NE(s.message().find(std::to_string(4 * kPage)), std::string::npos) << s;
  EXPECT_EQ(CheckFileMapping(m.base() + kPage, 3 * kPage + kPage, "pool").code(),
            absl::StatusCode::kInvalidArgument);
}

// A mapping that merely sits next to the pool's (here: the same memfd mapped again, right after
// it, but at offset 0) is not the pool's continuation.
TEST(MappedRangeTest, ANeighbouringMappingDoesNotExtendThePool) {
  const int fd = memfd_create("mapped-range-neighbour", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(8 * kPage)), 0);
  // Reserve 4 pages, then map the file's first 2 pages twice into them, back to back.
  void* area = mmap(nullptr, 4 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  auto* a = static_cast<std::byte*>(area);
  ASSERT_NE(mmap(a, 2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0), MAP_FAILED);
  ASSERT_NE(mmap(a + 2 * kPage, 2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0),
            MAP_FAILED);
  EXPECT_TRUE(CheckFileMapping(a, 2 * kPage, "pool").ok());
  EXPECT_EQ(CheckFileMapping(a, 3 * kPage, "pool").code(), absl::StatusCode::kInvalidArgument);
  // Mapped at the continuing offset, the second half is the same segment's continuation.
  ASSERT_NE(mmap(a + 2 * kPage, 2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                 static_cast<off_t>(2 * kPage)),
            MAP_FAILED);
  EXPECT_TRUE(CheckFileMapping(a, 4 * kPage, "pool").ok());
  munmap(area, 4 * kPage);
  close(fd);
}

TEST(MappedRangeTest, PrivateOrUnmappedMemoryIsRefused) {
  std::vector<std::byte> heap(4 * kPage);
  EXPECT_EQ(CheckFileMapping(heap.data(), kPage, "pool").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckFileMapping(reinterpret_cast<void*>(uintptr_t{16}), kPage, "pool").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pdserve::transfer
