#include "common/cluster_secret.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pdserve {
namespace {

constexpr size_t kRandomBytes = 32;

// A file descriptor closed on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::Status CheckPeerIsSameUser(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  // Another user's process must not talk to us (nor receive our credential).
  if (cred.uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat("process ", cred.pid, " runs as uid ", cred.uid,
                                                    ", not as this user (uid ", geteuid(), ")"));
  }
  return absl::OkStatus();
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // volatile: the compiler may not turn the loop into a memcmp that stops at the first
  // difference.
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

absl::StatusOr<ClusterSecret> ClusterSecret::Generate() {
  unsigned char bytes[kRandomBytes];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    got += static_cast<size_t>(n);
  }
  return ClusterSecret(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

absl::StatusOr<ClusterSecret> ClusterSecret::FromText(std::string text) {
  absl::StripTrailingAsciiWhitespace(&text);
  if (text.size() < kMinChars || text.size() > kMaxChars) {
    return absl::InvalidArgumentError(absl::StrCat("a cluster secret must be ", kMinChars, " to ",
                                                   kMaxChars, " characters, not ", text.size(),
                                                   " (generate one with: openssl rand -hex 32)"));
  }
  for (char c : text) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "a cluster secret must be printable ASCII without spaces (generate one with: openssl "
          "rand -hex 32)");
    }
  }
  return ClusterSecret(std::move(text));
}

absl::StatusOr<ClusterSecret> ClusterSecret::ReadFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open cluster secret file ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stat cluster secret file ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cluster secret file ", path, " is not a regular file"));
  }
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat("cluster secret file ", path,
                                                      " belongs to uid ", st.st_uid,
                                                      ", not to this user (uid ", geteuid(), ")"));
  }
  // Anyone who can read the secret can join the cluster: refuse a file others can read.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cluster secret file ", path, " is accessible by group or others (mode ",
                     absl::StrFormat("%04o", st.st_mode & 07777), "); run: chmod 600 ", path));
  }
  std::string text(kMaxChars + 64, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read cluster secret file ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  absl::StatusOr<ClusterSecret> secret = FromText(std::move(text));
  if (!secret.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster secret file ", path, ": ", secret.status().message()));
  }
  return secret;
}

bool ClusterSecret::Matches(std::string_view presented) const {
  return ConstantTimeEquals(text_, presented);
}

absl::StatusOr<std::unique_ptr<SecretFile>> SecretFile::Create(const ClusterSecret& secret) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/pdserve-secret-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {  // mode 0700
    return absl::InternalError(absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
  }
  std::unique_ptr<SecretFile> file(new SecretFile(tmpl, tmpl + "/cluster.secret"));
  Fd fd(open(file->path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", file->path_, ": ", std::strerror(errno)));
  }
  const std::string text = secret.text() + "\n";
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(
        absl::StrCat("cannot write ", file->path_, ": ", std::strerror(errno)));
  }
  return file;
}

SecretFile::~SecretFile() {
  unlink(path_.c_str());
  rmdir(dir_.c_str());
}

}  // namespace pdserve
