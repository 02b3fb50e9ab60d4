#pragma once

// The fast lane's wire format and socket helpers (service/fast_lane.h), shared by its server
// and client. Internal to service/.

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/socket_io.h"
#include "common/wire_status.h"

namespace pdserve::service::fast_lane_internal {

// kNudge (client -> server, header only, no answer): a request is coming (FastLaneClient::Nudge).
enum Kind : uint32_t {
  kHello = 1, kHelloOk = 2, kRequest = 3, kCancel = 4, kResponse = 5, kNudge = 6
};

// Native byte order: both ends are on one host.
struct Header {
  uint32_t length;  // payload bytes
  uint32_t kind;
  uint32_t method;  // requests
  uint32_t code;    // responses: absl::StatusCode
  uint64_t id;
  int64_t timeout_us;  // requests
};
static_assert(sizeof(Header) == 32);

inline constexpr size_t kMaxHello = 4096;
inline constexpr int kHelloTimeoutMs = 2000;
inline constexpr absl::Duration kMaxTimeout = absl::Hours(1);
// The longest the client's reader sleeps before it looks at its calls' deadlines again (it wakes
// at the earliest one, or when a call with an earlier one starts).
inline constexpr int64_t kMaxWaitMs = 1000;

inline sockaddr_un AbstractAddress(const std::string& name, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);  // sun_path[0] = 0: abstract
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return addr;
}

using ::pdserve::ReadAll;   // common/socket_io.h
using ::pdserve::WriteAll;

// One frame: header and payload gathered by one sendmsg where the socket takes it all (no copy
// into a frame buffer); callers hold the connection's write lock, so frames never interleave.
inline bool WriteFrame(int fd, Header h, const std::string& payload) {
  h.length = static_cast<uint32_t>(payload.size());
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<char*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  size_t left = sizeof(h) + payload.size();
  while (left > 0) {
    const ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    left -= static_cast<size_t>(w);
    // Skip what went out: whole iovecs, then part of the next.
    size_t done = static_cast<size_t>(w);
    while (done > 0 && msg.msg_iovlen > 0) {
      if (done >= msg.msg_iov[0].iov_len) {
        done -= msg.msg_iov[0].iov_len;
        msg.msg_iov++;
        msg.msg_iovlen--;
      } else {
        msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + done;
        msg.msg_iov[0].iov_len -= done;
        done = 0;
      }
    }
  }
  return true;
}

// A frame whose payload fits `max`; false (the connection is to be closed) otherwise.
inline bool ReadFrame(int fd, size_t max, Header* h, std::string* payload) {
  if (!ReadAll(fd, h, sizeof(*h)) || h->length > max) return false;
  payload->resize(h->length);
  return h->length == 0 || ReadAll(fd, payload->data(), h->length);
}

// The rest of n bytes whose first part has come: each wait for more ends at `deadline`
// (*timed_out then says so).
inline bool ReadRestBy(int fd, char* p, size_t n, std::chrono::steady_clock::time_point deadline,
                       bool* timed_out) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) == 0) {
      *timed_out = true;
      return false;
    }
  }
  return true;
}

// ReadFrame for a server's idle connection: the first bytes of a frame may take as long as they
// like (a connection waits between calls), the rest of the frame must come within `rest`. A
// peer that stops mid-frame, on purpose or not, would otherwise hold this reader thread forever.
inline bool ReadFrameWithin(int fd, size_t max, std::chrono::milliseconds rest, Header* h,
                            std::string* payload, bool* timed_out) {
  char* p = reinterpret_cast<char*>(h);
  ssize_t r;
  do {
    r = ::recv(fd, p, sizeof(*h), 0);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + rest;
  if (!ReadRestBy(fd, p + r, sizeof(*h) - static_cast<size_t>(r), deadline, timed_out) ||
      h->length > max) {
    return false;
  }
  payload->resize(h->length);
  return h->length == 0 || ReadRestBy(fd, payload->data(), h->length, deadline, timed_out);
}

inline void SetReceiveTimeout(int fd, int ms) {
  timeval tv{.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

inline absl::StatusCode CodeOf(uint32_t code) { return StatusCodeFromWire(code); }


}  // namespace pdserve::service::fast_lane_internal
