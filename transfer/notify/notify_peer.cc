#include "transfer/notify/notify_peer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer::notify {

absl::Status CheckPeerIsSameUser(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("SO_PEERCRED: ", std::strerror(errno)));
  }
  // Another user's process must not inject notifications (nor receive our credential): the
  // pool, the ring and the secret are this user's only.
  if (cred.uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat("process ", cred.pid, " runs as uid ", cred.uid,
                                                    ", not as this user (uid ", geteuid(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::transfer::notify
