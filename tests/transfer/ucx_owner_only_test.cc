// Issue 16: a ucx KV pool and UCX's own shared memory are this user's only. UCX 1.13's sysv
// transport makes group-writable (0660) segments; the ucx backend never uses it, whatever the
// operator's UCX_TLS says, and everything it maps from /dev/shm is mode 0600.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {
namespace {

// SysV segments this process created (/proc/sysvipc/shm: key shmid perms size cpid ...).
std::vector<std::string> OwnSysvSegments() {
  std::ifstream in("/proc/sysvipc/shm");
  std::vector<std::string> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key, shmid, perms, size, cpid;
    fields >> key >> shmid >> perms >> size >> cpid;
    if (cpid == std::to_string(getpid())) out.push_back(line);
  }
  return out;
}

// Files under /dev/shm this process maps, with their modes.
std::vector<std::pair<std::string, mode_t>> MappedShmFiles() {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::pair<std::string, mode_t>> out;
  for (std::string line; std::getline(maps, line);) {
    const size_t at = line.find("/dev/shm/");
    if (at == std::string::npos) continue;
    std::string path = line.substr(at);
    if (const size_t del = path.find(" (deleted)"); del != std::string::npos) path.resize(del);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) out.emplace_back(path, st.st_mode & 0777);
  }
  return out;
}

TEST(UcxOwnerOnlyTest, PoolsAndFifosNeverUseGroupWritableSysvSegments) {
  // UCX_TLS naming sysv first, as an operator might: the backend must still not use it.
  setenv("UCX_TLS", "sysv,posix,cma,tcp", 1);
  TransportOptions options;
  options.backend = "ucx";
  options.agent_name = "owner-only";
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, *PresetConfig("tiny"), 16, KvLayout::kLayerMajor);
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<std::unique_ptr<KvTransport>> transport = MakeKvTransport(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  ASSERT_TRUE((*transport)->RegisterPool(**cache).ok());
  ASSERT_TRUE((*transport)->ExportDescriptor().ok());

  const std::vector<std::string> sysv = OwnSysvSegments();
  EXPECT_TRUE(sysv.empty()) << "SysV segments of this process:\n" << sysv.front();
  for (const auto& [path, mode] : MappedShmFiles()) {
    EXPECT_EQ(mode & 077, 0u) << path << " has mode " << std::oct << mode;
  }
  unsetenv("UCX_TLS");
}

}  // namespace
}  // namespace pdserve::transfer
