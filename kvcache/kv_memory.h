#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pdserve {

enum class MemoryKind { kHost, kCuda };

// One contiguous region that backs a KV pool, so that it can be registered once for RDMA / IPC.
// Owning: the destructor unmaps / frees / unlinks.
class KvMemory {
 public:
  virtual ~KvMemory() = default;
  virtual std::byte* data() const = 0;
  virtual size_t size() const = 0;
  virtual MemoryKind kind() const = 0;
  // POSIX shared-memory name ("/pdserve-..."), empty for private memory.
  virtual std::string shm_name() const { return {}; }
  // CUDA device ordinal for device memory, -1 for host memory.
  virtual int device() const { return -1; }
};

// OK when `bytes` of host memory can be made resident: at most the kernel's MemAvailable and,
// for a POSIX shared-memory pool (`shared`), the free space of /dev/shm (a tmpfs, sized at half
// of RAM by default). Pools are populated up front, so a pool larger than that would push the
// host into swap or the OOM killer while it fills; ResourceExhausted says which limit and by how
// much. Unknown limits (no /proc) pass.
absl::Status CheckHostMemoryFits(size_t bytes, bool shared);

// Private, page-aligned, zeroed host memory (CheckHostMemoryFits first).
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateHostMemory(size_t bytes);

// Zeroed POSIX shared memory, created under `name` (a fresh unique name when empty) and
// unlinked when the returned object dies. Fresh names carry the owner's pid
// ("/pdserve-kv-<pid>-<n>"): a peer maps the segment by name after its creation, so it cannot
// be unlinked at once, and an owner killed with SIGKILL leaves it behind. The first creation in
// a process therefore removes the segments of owners that are gone
// (RemoveOrphanedSharedMemory), and the cluster launcher removes a dead child's at once.
absl::StatusOr<std::unique_ptr<KvMemory>> CreateSharedMemory(size_t bytes, std::string name = {});

// Unlinks the KV pool segments named after `pid`; returns how many. For a process known dead.
int RemoveSharedMemoryOf(pid_t pid);

// Unlinks every KV pool segment whose owner pid names no process; returns how many. A segment
// of a live process (or one we cannot tell about) is kept. Assumes one pid namespace per
// /dev/shm, as on a host or in one container.
int RemoveOrphanedSharedMemory();

// Maps an existing segment created by another process (does not unlink it).
absl::StatusOr<std::unique_ptr<KvMemory>> OpenSharedMemory(const std::string& name,
                                                           size_t expected_bytes);

}  // namespace pdserve
