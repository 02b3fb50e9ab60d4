#include "kvcache/kv_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <dirent.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"

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

constexpr char kSegmentPrefix[] = "pdserve-kv-";

// Names in /dev/shm of KV pool segments: "pdserve-kv-<pid>-<n>", with the owner's pid.
std::vector<std::pair<std::string, pid_t>> PoolSegments() {
  std::vector<std::pair<std::string, pid_t>> out;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return out;
  while (dirent* entry = readdir(dir)) {
    const absl::string_view name(entry->d_name);
    if (!absl::StartsWith(name, kSegmentPrefix)) continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(name.substr(sizeof(kSegmentPrefix) - 1), '-');
    int pid = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &pid) || pid <= 0) continue;
    out.emplace_back(std::string(name), static_cast<pid_t>(pid));
  }
  closedir(dir);
  return out;
}

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

namespace {

// /proc/meminfo's MemAvailable in bytes; 0 when unknown.
uint64_t MemAvailableBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::string GiB(uint64_t bytes) { return absl::StrCat(bytes / (1 << 20) / 1024.0, " GiB"); }

}  // namespace

absl::Status CheckHostMemoryFits(size_t bytes, bool shared) {
  if (const uint64_t available = MemAvailableBytes(); available != 0 && bytes > available) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a KV pool of ", GiB(bytes), " does not fit in the ", GiB(available),
        " of memory this host has available (MemAvailable): choose a smaller pool (--pool-gib)"));
  }
  struct statvfs fs {};
  if (shared && statvfs("/dev/shm", &fs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (bytes > free_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a KV pool of ", GiB(bytes), " does not fit in the ", GiB(free_bytes),
          " free in /dev/shm (shared-memory pools live there): choose a smaller pool "
          "(--pool-gib) or enlarge /dev/shm"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateHostMemory(size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  if (absl::Status s = CheckHostMemoryFits(bytes, /*shared=*/false); !s.ok()) return s;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | kPopulate, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of ", bytes, " bytes failed: ", std::strerror(errno)));
  }
  return std::make_unique<MappedMemory>(p, bytes, "", false);
}

int RemoveSharedMemoryOf(pid_t pid) {
  int removed = 0;
  for (const auto& [name, owner] : PoolSegments()) {
    if (owner == pid && shm_unlink(absl::StrCat("/", name).c_str()) == 0) removed++;
  }
  return removed;
}

int RemoveOrphanedSharedMemory() {
  int removed = 0;
  for (const auto& [name, owner] : PoolSegments()) {
    const bool gone = kill(owner, 0) != 0 && errno == ESRCH;
    if (gone && shm_unlink(absl::StrCat("/", name).c_str()) == 0) removed++;
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<KvMemory>> CreateSharedMemory(size_t bytes, std::string name) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  if (absl::Status s = CheckHostMemoryFits(bytes, /*shared=*/true); !s.ok()) return s;
  // A worker killed with SIGKILL (started by hand, no launcher to clean up) left its pool: the
  // next worker to start reclaims it.
  static std::once_flag reclaimed;
  std::call_once(reclaimed, [] {
    if (const int n = RemoveOrphanedSharedMemory(); n > 0) {
      ComponentLogger("kvcache")->info("removed {} KV pool segments of processes that are gone", n);
    }
  });
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
