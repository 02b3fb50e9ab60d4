#pragma once

// Whole-buffer send and receive on a connected stream socket, retried across EINTR and short
// transfers. Shared by the fast lane's frames (service/fast_lane_frames.h) and the control-plane
// bench's hand-off chain (bench/handoff_floor.cc).

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

namespace pdserve {

// False when the peer is gone or the socket failed; never raises SIGPIPE.
inline bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// False on end-of-file before `n` bytes, or a failed socket.
inline bool ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace pdserve
