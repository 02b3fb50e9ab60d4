#pragma once

// The cluster's shared secret: what every process of one cluster holds and nobody else should.
// The cluster-internal gRPC API (router <-> workers) and the KV notification endpoints accept a
// caller only when it presents it (docs/security.md).
//
//   launcher:  secret = ClusterSecret::Generate();              // 32 bytes from getrandom
//              file = SecretFile::Create(*secret);              // 0600 file in a 0700 folder
//              ... pass --cluster-secret-file <file->path()> to each child (never the secret
//              itself: /proc/<pid>/cmdline is world-readable) ...
//   process:   secret = ClusterSecret::ReadFile(path);          // refuses group/other access
//              secret->Matches(presented)                       // constant time
//
// The secret is text (printable ASCII, at least kMinChars characters, e.g. `openssl rand -hex
// 32`), so that it can travel as gRPC metadata unchanged. No gRPC here: transfer backends use it.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "absl/status/statusor.h"

namespace pdserve {

class ClusterSecret {
 public:
  static constexpr size_t kMinChars = 32;
  static constexpr size_t kMaxChars = 1024;

  // 32 bytes from getrandom(2), hex-encoded (64 characters). Internal on failure.
  static absl::StatusOr<ClusterSecret> Generate();
  // Reads a secret file. FailedPrecondition (naming the file and the fix) when it is not a
  // regular file owned by this user, or group / other may read or write it; InvalidArgument
  // when its text (trailing whitespace removed) is shorter than kMinChars, longer than
  // kMaxChars, or not printable ASCII without spaces.
  static absl::StatusOr<ClusterSecret> ReadFile(const std::string& path);
  // InvalidArgument on the same rules as ReadFile's text.
  static absl::StatusOr<ClusterSecret> FromText(std::string text);

  // What a caller presents (gRPC metadata, the KV notification hello).
  const std::string& text() const { return text_; }
  // Constant time in the presented text's content (its length is not secret).
  bool Matches(std::string_view presented) const;

 private:
  explicit ClusterSecret(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Compares without an early exit, so that the time taken does not say how many leading bytes
// matched. Different lengths: false.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// OK when the process at the other end of the unix socket `fd` runs as this process's
// effective user; PermissionDenied naming its uid and pid otherwise. Both same-host channels
// (the KV notifications, transfer/notify; the workers' fast lane, service/fast_lane.h) check it
// on both ends: the abstract socket namespace has no file permissions.
absl::Status CheckPeerIsSameUser(int fd);

// A secret written to <TMPDIR or /tmp>/pdserve-secret-XXXXXX/cluster.secret: the folder 0700,
// the file 0600, both removed on destruction. The children of a launcher read it at start.
class SecretFile {
 public:
  static absl::StatusOr<std::unique_ptr<SecretFile>> Create(const ClusterSecret& secret);
  ~SecretFile();
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  SecretFile(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}
  std::string dir_;
  std::string path_;
};

}  // namespace pdserve
