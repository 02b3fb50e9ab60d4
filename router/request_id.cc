#include "router/request_id.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pdserve::router {

absl::StatusOr<std::string> NewServerRequestId() {
  uint8_t bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("no random bytes for a request id: getrandom: ", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  return absl::StrCat(kServerRequestIdPrefix,
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

absl::Status CheckClientRequestId(absl::string_view id) {
  if (!absl::StartsWith(id, kServerRequestIdPrefix)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "request id '", absl::CEscape(id.substr(0, 64)), "': ids starting with '",
      kServerRequestIdPrefix, "' are the server's; leave request_id empty to get one"));
}

}  // namespace pdserve::router
