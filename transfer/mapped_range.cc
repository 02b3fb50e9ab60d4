#include "transfer/mapped_range.h"

#include <cinttypes>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer {
namespace {

struct Mapping {
  uint64_t start = 0, end = 0, offset = 0, inode = 0;
  unsigned dev_major = 0, dev_minor = 0;
  bool writable = false;
  bool shared = false;  // MAP_SHARED: a segment another process can see
};

// One line of /proc/self/maps: "start-end perms offset major:minor inode [path]".
bool ParseLine(const char* line, Mapping& m) {
  char perms[8] = {};
  return std::sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64, &m.start,
                     &m.end, perms, &m.offset, &m.dev_major, &m.dev_minor, &m.inode) == 7 &&
         (m.writable = perms[1] == 'w', m.shared = perms[3] == 's', true);
}

bool SameFileContinued(const Mapping& a, const Mapping& b) {
  return b.start == a.end && b.inode == a.inode && b.dev_major == a.dev_major &&
         b.dev_minor == a.dev_minor && b.offset == a.offset + (a.end - a.start) && b.writable && b.shared;
}

}  // namespace

absl::Status CheckFileMapping(const void* p, uint64_t bytes, absl::string_view whose) {
  const auto begin = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
  if (bytes > UINT64_MAX - begin) {
    return absl::InvalidArgumentError(absl::StrCat(whose, " claims ", bytes, " bytes: too many"));
  }
  std::unique_ptr<FILE, int (*)(FILE*)> maps(std::fopen("/proc/self/maps", "r"), &std::fclose);
  if (maps == nullptr) return absl::InternalError("cannot read /proc/self/maps");
  char line[8192];  // a line is at most a path (PATH_MAX) and ~100 characters
  bool found = false;
  Mapping last;  // the last entry of the run that holds p (the same file, offsets continuing)
  while (std::fgets(line, sizeof(line), maps.get()) != nullptr) {
    Mapping m;
    if (!ParseLine(line, m)) continue;
    if (!found) {
      if (begin < m.start || begin >= m.end) continue;
      if (!m.writable || !m.shared) break;  // not a writable shared mapping: refused below
      found = true;
    } else if (!SameFileContinued(last, m)) {
      break;
    }
    last = m;
    if (last.end - begin >= bytes) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      whose, " claims ", bytes, " bytes, but ",
      found ? absl::StrCat("the shared mapping it names holds ", last.end - begin, " from there")
            : std::string("its address is not in a writable shared mapping of this process"),
      ": refused"));
}

}  // namespace pdserve::transfer
