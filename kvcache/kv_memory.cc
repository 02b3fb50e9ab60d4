#include "kvcache/kv_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pdserve {
namespace {

class MappedMemory final : public KvMemory {
 public:
  MappedMemory(void* data, size_t size, std::string shm_name, bool unlink_on_close)
      : data_(static_cast<std::byte*>(data)),
        size_(size),
        shm_name_(std::move(shm_name)),
        unlink_(unlink_on_close) {}
  ~MappedMemory() override {
    if (data_ != nullptr) munmap(data_, size_);
    if (unlink_) shm_unlink(shm_name_.c_str());
  }
  std::byte* data() const override { return data_; }
  size_t size() const override { return size_; }
  MemoryKind kind() const override { return MemoryKind::kHost; }
  std::string shm_name() const override { return shm_name_; }

 private:
  std::byte* data_;
  size_t size_;
  std::string shm_name_;
  bool unlink_;
};

absl::Status Errno(std::string_view what, const std::string& name) {
  return absl::InternalError(absl::StrCat(std::string(what), " ", name, ": ", std::strerror(errno)));
}

}  // namespace

// Every mapping of a pool is populated up front: a GPU's memory is resident, and a first-touch
// page fault (page allocation and zeroing in the owner, a page-table entry in each process that
// maps a peer's pool) inside a KV transfer or a decode step would be the host's cost, measured
// as the transfer's or the model's. Serving runs showed local transfers at ~4 GB/s while the
// same copies of warm pages ran at 20+ GB/s.
constexpr int kPopulate = MAP_POPULATE;

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateHostMemory(size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | kPopulate, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of ", bytes, " bytes failed: ", std::strerror(errno)));
  }
  return std::make_unique<MappedMemory>(p, bytes, "", false);
}

absl::StatusOr<std::unique_ptr<KvMemory>> CreateSharedMemory(size_t bytes, std::string name) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  if (name.empty()) {
    static std::atomic<int> counter{0};
    name = absl::StrCat("/pdserve-kv-", getpid(), "-", counter.fetch_add(1));
  }
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return Errno("shm_open", name);
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    absl::Status s = Errno("ftruncate", name);
    close(fd);
    shm_unlink(name.c_str());
    return s;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | kPopulate, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    absl::Status s = Errno("mmap", name);
    shm_unlink(name.c_str());
    return s;
  }
  return std::make_unique<MappedMemory>(p, bytes, name, true);
}

absl::StatusOr<std::unique_ptr<KvMemory>> OpenSharedMemory(const std::string& name,
                                                           size_t expected_bytes) {
  int fd = shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open shared memory ", name, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != expected_bytes) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("shared memory ", name, " has ", st.st_size,
                                                   " bytes, descriptor says ", expected_bytes));
  }
  void* p = mmap(nullptr, expected_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | kPopulate, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return Errno("mmap", name);
  return std::make_unique<MappedMemory>(p, expected_bytes, name, false);
}

}  // namespace pdserve
