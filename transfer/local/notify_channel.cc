#include "transfer/local/notify_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::transfer::local {
namespace {

constexpr char kHello = 'H';
constexpr char kNotify = 'N';
constexpr int kSendTimeoutSeconds = 5;

socklen_t AbstractAddress(const std::string& name, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);  // sun_path[0] == 0: abstract namespace
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

absl::StatusOr<std::unique_ptr<NotifyListener>> NotifyListener::Start(NotificationInbox* inbox,
                                                                      const std::string& agent) {
  const std::string address = absl::StrCat("pdserve-kv-", getpid(), "-", absl::Hex(RandomId()));
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoText()));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(address, addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 64) != 0) {
    absl::Status s = absl::InternalError(absl::StrCat("bind/listen ", address, ": ", ErrnoText()));
    close(fd);
    return s;
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", ErrnoText()));
  }
  return std::unique_ptr<NotifyListener>(new NotifyListener(inbox, agent, address, fd, wake));
}

NotifyListener::NotifyListener(NotificationInbox* inbox, std::string agent, std::string address,
                               int listen_fd, int wake_fd)
    : inbox_(inbox),
      agent_(std::move(agent)),
      address_(std::move(address)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      thread_([this] { Loop(); }) {}

NotifyListener::~NotifyListener() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void NotifyListener::Loop() {
  auto log = ComponentLogger("transfer");
  std::map<int, std::string> senders;  // fd -> agent name ("" until hello)
  std::vector<char> buffer(kMaxNotificationBytes + 1024);
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [fd, name] : senders) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log->error("agent {}: poll on notification socket failed: {}", agent_, ErrnoText());
      break;
    }
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) senders[fd] = "";
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
      if (n > 0 && buffer[0] == kHello) {
        senders[fd].assign(buffer.data() + 1, n - 1);
        log->info("agent {}: KV sender '{}' connected", agent_, senders[fd]);
      } else if (n > 0 && buffer[0] == kNotify) {
        inbox_->Push({senders[fd], std::string(buffer.data() + 1, n - 1)});
      } else if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
        // Orderly close or reset: the sender finished or died. Batches it had in flight never
        // produce a notification.
        log->info("agent {}: KV sender '{}' disconnected", agent_, senders[fd]);
        senders_lost_.fetch_add(1);
        close(fd);
        senders.erase(fd);
      }
    }
  }
  for (const auto& [fd, name] : senders) close(fd);
}

absl::StatusOr<std::unique_ptr<NotifySender>> NotifySender::Connect(const std::string& address,
                                                                    const std::string& agent) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoText()));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(address, addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    absl::Status s = absl::FailedPreconditionError(absl::StrCat(
        "KV peer notification socket ", address, " does not answer (", ErrnoText(),
        "): stale descriptor or the peer is gone"));
    close(fd);
    return s;
  }
  timeval tv{kSendTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto sender = std::unique_ptr<NotifySender>(new NotifySender(fd));
  std::string hello = std::string(1, kHello) + agent;
  if (send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV peer at ", address, " closed the connection: ", ErrnoText()));
  }
  return sender;
}

NotifySender::~NotifySender() { close(fd_); }

absl::Status NotifySender::Send(const std::string& message) {
  std::string packet;
  packet.reserve(message.size() + 1);
  packet.push_back(kNotify);
  packet.append(message);
  absl::MutexLock lock(&mu_);
  if (send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL) < 0) {
    return absl::UnavailableError(
        absl::StrCat("KV peer gone before notification '", message, "': ", ErrnoText()));
  }
  return absl::OkStatus();
}

bool NotifySender::PeerGone() const {
  pollfd p{fd_, POLLIN, 0};
  // The receiver never writes to this socket: readable means end of stream.
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace pdserve::transfer::local
