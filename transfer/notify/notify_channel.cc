#include "transfer/notify/notify_channel.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "transfer/notify/notify_peer.h"
#include "transfer/pool_descriptor.h"
#include "transfer/sender_credential.h"

namespace pdserve::transfer::notify {
namespace {

// Packet kinds on the socket.
constexpr char kHello = 'H';     // sender -> receiver: agent name
constexpr char kRing = 'R';      // receiver -> sender: the ring's memfd (SCM_RIGHTS)
constexpr char kNotify = 'N';    // sender -> receiver: a notification that did not take the ring
constexpr char kDoorbell = 'D';  // sender -> receiver: slots published while it was parked
constexpr int kSendTimeoutSeconds = 5;

// Repeats a socket call that a signal interrupted. Sockets with SO_RCVTIMEO / SO_SNDTIMEO (the
// sender's) return EINTR even for handlers installed with SA_RESTART (signal(7)), so any signal
// the process takes (a profiler's SIGPROF, a supervisor's SIGCHLD) would otherwise fail a
// Connect or a notification.
template <typename Call>
auto RetryOnEintr(Call call) {
  for (;;) {
    auto r = call();
    if (r >= 0 || errno != EINTR) return r;
  }
}

socklen_t AbstractAddress(const std::string& name, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);  // sun_path[0] == 0: abstract namespace
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

// A one-byte packet with room for one descriptor in its control data (SCM_RIGHTS); `kind` is
// the byte sent or received.
struct FdPacket {
  char kind = 0;
  // Aligned for the cmsghdr that CMSG_FIRSTHDR puts at its start (right after `kind` it sat at
  // an odd address: undefined behaviour, found by UBSan).
  alignas(cmsghdr) char cmsg_buffer[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&kind, 1};
  msghdr msg{};

  FdPacket() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buffer;
    msg.msg_controllen = sizeof(cmsg_buffer);
  }
  FdPacket(const FdPacket&) = delete;
  FdPacket& operator=(const FdPacket&) = delete;
};
static_assert(offsetof(FdPacket, cmsg_buffer) % alignof(cmsghdr) == 0);

// One packet `kind` carrying `fd` as SCM_RIGHTS.
bool SendWithFd(int socket, char kind, int fd) {
  FdPacket p;
  p.kind = kind;
  cmsghdr* c = CMSG_FIRSTHDR(&p.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return RetryOnEintr([&] { return sendmsg(socket, &p.msg, MSG_NOSIGNAL); }) == 1;
}

// Receives one packet; returns its kind and sets `fd` to the descriptor it carried (-1: none).
// 0 on error or end of stream.
char ReceiveWithFd(int socket, int& fd) {
  fd = -1;
  FdPacket p;
  if (RetryOnEintr([&] { return recvmsg(socket, &p.msg, MSG_CMSG_CLOEXEC); }) != 1) return 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&p.msg); c != nullptr; c = CMSG_NXTHDR(&p.msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    }
  }
  return p.kind;
}

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// One sender connection as the listener sees it.
struct Connection {
  std::string agent;                 // "" until hello
  std::unique_ptr<NotifyRing> ring;  // null until hello
  uint32_t next_seq = 0;             // the next message to deliver (NotifyRing: fallback)
  std::deque<std::pair<uint32_t, std::string>> packets;  // read from the socket, not delivered
  size_t packet_bytes = 0;                                // of `packets`
};

// A packet's sequence number follows its kind byte.
constexpr size_t kSeqBytes = sizeof(uint32_t);

}  // namespace

absl::StatusOr<std::unique_ptr<NotifyListener>> NotifyListener::Start(
    NotificationInbox* inbox, const std::string& agent, const std::string& credential) {
  const std::string address = absl::StrCat("pdserve-kv-", getpid(), "-", absl::Hex(RandomId()));
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(address, addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 64) != 0) {
    absl::Status s = absl::InternalError(absl::StrCat("bind/listen ", address, ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  return std::unique_ptr<NotifyListener>(
      new NotifyListener(inbox, agent, credential, address, fd, wake));
}

NotifyListener::NotifyListener(NotificationInbox* inbox, std::string agent, std::string credential,
                               std::string address, int listen_fd, int wake_fd)
    : inbox_(inbox),
      agent_(std::move(agent)),
      credential_(std::move(credential)),
      address_(std::move(address)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      thread_([this] {
        NameThisThread("kv-notify");
        Loop();
      }) {}

NotifyListener::~NotifyListener() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void NotifyListener::Loop() {
  auto log = ComponentLogger("transfer");
  std::map<int, Connection> senders;  // by socket fd
  std::vector<char> buffer(kMaxNotificationBytes + 1024);
  std::vector<pollfd> fds;
  // Delivers what is next in the sender's order, from the ring or from the packets read, until
  // the next message is not here yet (a slot further on waits for its packet).
  auto drain = [&](Connection& c) {
    if (c.ring == nullptr) return 0;
    int n = 0;
    uint32_t seq = 0;
    std::string_view slot;
    for (;; ++n, ++c.next_seq) {
      if (!c.packets.empty() && c.packets.front().first == c.next_seq) {
        c.packet_bytes -= c.packets.front().second.size();
        inbox_->Push({c.agent, std::move(c.packets.front().second)});
        c.packets.pop_front();
      } else if (c.ring->Front(seq, slot) && seq == c.next_seq) {
        inbox_->Push({c.agent, std::string(slot)});
        c.ring->Pop();
      } else {
        return n;
      }
    }
  };
  auto drain_all = [&] {
    int n = 0;
    for (auto& [fd, c] : senders) n += drain(c);
    return n;
  };
  auto socket_pending = [&] {
    for (const auto& [fd, c] : senders) {
      if (c.ring != nullptr && c.ring->SocketPending()) return true;
    }
    return false;
  };
  auto set_parked = [&](bool parked) {
    for (auto& [fd, c] : senders) {
      if (c.ring != nullptr) c.ring->SetParked(parked);
    }
  };
  // Closes a sender for who it is or what it sent; its rings and packets go with it.
  auto refuse = [&](int fd, const std::string& why) {
    const Connection& c = senders[fd];
    log->warn("agent {}: refused KV notification sender '{}': {}", agent_,
              absl::CEscape(c.agent), why);
    senders_refused_.fetch_add(1);
    close(fd);
    senders.erase(fd);
  };
  // Reads what the sender `fd` queued (all of it, up to a bound, so that a sender whose
  // messages went to the socket is caught up with quickly and returns to its ring); erases the
  // connection when it closed. True when a packet came.
  auto read_packets = [&](int fd) {
    Connection& c = senders[fd];
    bool got = false;
    for (int packet = 0; packet < 1024; ++packet) {
      const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Orderly close or reset: the sender finished or died. What it published before is
        // delivered; batches it had in flight never produce a notification.
        drain(c);
        log->info("agent {}: KV sender '{}' disconnected", agent_, absl::CEscape(c.agent));
        senders_lost_.fetch_add(1);
        if (c.ring != nullptr) inbox_->SenderLost(c.agent);
        close(fd);
        senders.erase(fd);  // releases the ring (and its liveness lock) on this thread
        break;
      }
      got = true;
      if (buffer[0] == kHello && c.ring == nullptr) {
        absl::StatusOr<SenderHeader> hello =
            DecodeSenderHeader(std::string_view(buffer.data() + 1, n - 1));
        if (!hello.ok()) {
          refuse(fd, hello.status().ToString());
          break;
        }
        c.agent = std::move(hello->agent);
        if (absl::Status ok = CheckSenderCredential(credential_, hello->credential); !ok.ok()) {
          refuse(fd, ok.ToString());
          break;
        }
        int memfd = -1;
        absl::StatusOr<std::unique_ptr<NotifyRing>> ring = NotifyRing::Create(memfd);
        const bool sent = ring.ok() && SendWithFd(fd, kRing, memfd);
        if (memfd >= 0) close(memfd);
        if (!sent) {
          // The sender's Connect fails: it never got a ring.
          log->error("agent {}: cannot give KV sender '{}' a notification ring: {}", agent_,
                     absl::CEscape(c.agent),
                     ring.ok() ? std::strerror(errno) : ring.status().ToString());
          close(fd);
          senders.erase(fd);
          break;
        }
        c.ring = std::move(*ring);
        log->info("agent {}: KV sender '{}' connected", agent_, absl::CEscape(c.agent));
      } else if (buffer[0] == kNotify && c.ring != nullptr &&
                 n >= static_cast<ssize_t>(1 + kSeqBytes)) {
        // Delivered in its turn by the drain (NotifyRing: fallback).
        uint32_t seq = 0;
        std::memcpy(&seq, buffer.data() + 1, kSeqBytes);
        const size_t bytes = static_cast<size_t>(n) - 1 - kSeqBytes;
        // Kept until its turn: bounded, so that a sender cannot grow this process by sending
        // packets whose turn never comes.
        if (c.packets.size() >= kMaxPendingPackets || c.packet_bytes + bytes > kMaxPendingBytes) {
          refuse(fd, absl::StrCat("more than ", kMaxPendingPackets, " packets / ",
                                  kMaxPendingBytes, " bytes waiting for their turn (next ",
                                  c.next_seq, ", got ", seq, ")"));
          break;
        }
        c.packet_bytes += bytes;
        c.packets.emplace_back(seq, std::string(buffer.data() + 1 + kSeqBytes, bytes));
        c.ring->NoteSocketReceived();
      }
      // kDoorbell: nothing to read here, the drain after the poll takes the slots.
    }
    return got;
  };
  int64_t spin_until = 0;
  for (;;) {
    // Park when the spin window closed: publish "parked" in every ring, then look once more
    // (Dekker with NotifyRing::TryPush): a slot published before the sender saw the flag is
    // seen here; one published after makes the sender ring the doorbell.
    int timeout_ms = 0;
    bool parked = false;
    if (MonotonicNanos() >= spin_until) {
      set_parked(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      bool work = false;
      for (const auto& [fd, c] : senders) work = work || (c.ring != nullptr && c.ring->HasWork());
      if (work) {
        set_parked(false);
      } else {
        parked = true;
        timeout_ms = -1;
      }
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& [fd, c] : senders) fds.push_back({fd, POLLIN, 0});
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (parked) set_parked(false);
    if (ready < 0) {
      if (errno == EINTR) continue;
      log->error("agent {}: poll on notification socket failed: {}", agent_, std::strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;
    bool activity = false;
    if (fds[1].revents & POLLIN) {
      int fd = RetryOnEintr([&] { return accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC); });
      if (fd >= 0) {
        senders[fd] = Connection{};
        if (absl::Status same = CheckPeerIsSameUser(fd); !same.ok()) {
          refuse(fd, same.ToString());
        } else if (senders.size() > kMaxSenders) {
          refuse(fd, absl::StrCat("already ", kMaxSenders, " senders connected"));
        }
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents != 0 && read_packets(fds[i].fd)) activity = true;
    }
    if (drain_all() > 0) activity = true;
    int64_t now = MonotonicNanos();
    if (activity) spin_until = now + kSpinNanos;
    // Spin on the rings: no syscall per notification while senders keep us busy. Back to
    // poll() (without sleeping) every kSocketCheckNanos for hellos and hang-ups, and at once
    // when a sender put a message on the socket.
    const int64_t check_sockets_at = now + kSocketCheckNanos;
    for (uint32_t turn = 1; now < spin_until && now < check_sockets_at; ++turn) {
      if (drain_all() > 0) {
        spin_until = MonotonicNanos() + kSpinNanos;
      } else if (socket_pending()) {
        break;
      } else if (turn % 32 == 0) {
        sched_yield();  // let whatever else wants this core run
      } else {
        CpuRelax();
      }
      now = MonotonicNanos();
    }
  }
  for (const auto& [fd, c] : senders) close(fd);
  senders.clear();  // releases the rings' liveness locks on this thread: senders see us gone
}

absl::StatusOr<std::unique_ptr<NotifySender>> NotifySender::Connect(const std::string& address,
                                                                    const std::string& agent,
                                                                    const std::string& credential) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_un addr;
  const socklen_t len = AbstractAddress(address, addr);
  // A connect interrupted by a signal goes on in the background: retried, it says EISCONN.
  int connected = RetryOnEintr([&] { return connect(fd, reinterpret_cast<sockaddr*>(&addr), len); });
  if (connected != 0 && errno == EISCONN) connected = 0;
  if (connected != 0) {
    absl::Status s = absl::FailedPreconditionError(
        absl::StrCat("KV peer notification socket ", address, " does not answer (", std::strerror(errno),
                     "): stale descriptor or the peer is gone"));
    close(fd);
    return s;
  }
  // The receive timeout bounds the wait for the ring at Connect; the send timeout bounds a
  // fallback packet to a receiver that stopped reading.
  timeval tv{kSendTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto fail = [&](const std::string& what) {
    absl::Status s = absl::FailedPreconditionError(
        absl::StrCat("KV peer at ", address, " ", what, ": ", std::strerror(errno)));
    close(fd);
    return s;
  };
  // The credential goes only to a listener of this user: an abstract socket name is anyone's
  // to bind.
  if (absl::Status same = CheckPeerIsSameUser(fd); !same.ok()) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("KV peer notification socket ", address, ": ", same.message()));
  }
  const std::string hello = std::string(1, kHello) + EncodeSenderHeader(credential, agent);
  if (RetryOnEintr([&] { return send(fd, hello.data(), hello.size(), MSG_NOSIGNAL); }) < 0) {
    return fail("closed the connection");
  }
  int memfd = -1;
  if (ReceiveWithFd(fd, memfd) != kRing || memfd < 0) {
    if (memfd >= 0) close(memfd);
    return fail("did not answer with a notification ring (refused our cluster credential?)");
  }
  absl::StatusOr<std::unique_ptr<NotifyRing>> ring = NotifyRing::Map(memfd);
  close(memfd);
  if (!ring.ok()) {
    close(fd);
    return ring.status();
  }
  return std::unique_ptr<NotifySender>(new NotifySender(fd, std::move(*ring)));
}

NotifySender::~NotifySender() { close(fd_); }

absl::Status NotifySender::SendNotifyPacket(const std::string& message, uint32_t seq) {
  std::string packet(1 + kSeqBytes, kNotify);
  std::memcpy(packet.data() + 1, &seq, kSeqBytes);
  packet.append(message);
  if (RetryOnEintr([&] { return send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL); }) < 0) {
    return absl::UnavailableError(
        absl::StrCat("KV peer gone before notification '", message, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status NotifySender::Send(const std::string& message) {
  std::lock_guard lock(mu_);
  const NotifyRing::Push push = ring_->TryPush(message, next_seq_);
  if (push == NotifyRing::Push::kUseSocket) {
    // Too long for a slot, or the ring is full: a packet, which also wakes a parked receiver.
    // The send fails when the receiver is gone; then the number is not used (the receiver
    // never waits for a message that was not sent).
    RETURN_IF_ERROR(SendNotifyPacket(message, next_seq_));
    ring_->NoteSocketSent();
    ++next_seq_;
    return absl::OkStatus();
  }
  ++next_seq_;
  // In the ring. The receiver's liveness costs no syscall; a dead receiver fails the batch
  // here (its slot is never read, like a packet left in a dead socket).
  if (!ring_->ReceiverAlive()) {
    return absl::UnavailableError(absl::StrCat("KV peer gone before notification '", message, "'"));
  }
  if (push == NotifyRing::Push::kDoneRingDoorbell) {
    // The receiver was parked: one byte wakes it (the only syscall on the ring path). EAGAIN:
    // the socket is full of unread packets, so the receiver is woken anyway.
    const char doorbell = kDoorbell;
    if (RetryOnEintr([&] { return send(fd_, &doorbell, 1, MSG_NOSIGNAL | MSG_DONTWAIT); }) < 0 &&
        errno != EAGAIN) {
      return absl::UnavailableError(absl::StrCat("KV peer gone before notification '", message,
                                                 "' (doorbell): ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

bool NotifySender::PeerGone() {
  std::lock_guard lock(mu_);
  return !ring_->ReceiverAlive();
}

}  // namespace pdserve::transfer::notify
