// Issue 16: a KV pool's notification endpoint accepts only senders of this user that present
// the cluster credential, and bounds what it keeps for any sender. Each hostile case is refused
// and a legitimate sender keeps working next to it.

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/transfer/transfer_test_util.h"
#include "transfer/notify/notify_peer.h"
#include "transfer/notification_inbox.h"
#include "transfer/pool_descriptor.h"
#include "transfer/sender_credential.h"

namespace pdserve::transfer {
namespace {

using testing::BackendCase;

const std::string kSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kWrong = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

struct Endpoint {
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> transport;
};

Endpoint MakeEndpoint(const BackendCase& c, const std::string& agent,
                      const std::string& credential) {
  if (!c.tls.empty()) setenv("UCX_TLS", c.tls.c_str(), 1);
  TransportOptions options;
  options.backend = c.backend;
  options.agent_name = agent;
  options.peer_credential = credential;
  Endpoint e;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, *PresetConfig("tiny"), 8, KvLayout::kLayerMajor);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return e;
  e.cache = std::move(*cache);
  absl::StatusOr<std::unique_ptr<KvTransport>> t = MakeKvTransport(options);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return e;
  e.transport = std::move(*t);
  EXPECT_TRUE(e.transport->RegisterPool(*e.cache).ok());
  return e;
}

// Waits (bounded) until the receiver counted `n` refused senders / dropped notifications.
uint64_t WaitForRefused(KvTransport& receiver, uint64_t n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (receiver.counters().senders_refused < n && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return receiver.counters().senders_refused;
}

// A legitimate sender still gets its notification through.
void ExpectDelivers(const BackendCase& c, KvTransport& receiver, const std::string& descriptor,
                    const std::string& message) {
  Endpoint sender = MakeEndpoint(c, "good-sender", kSecret);
  absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
  ASSERT_TRUE(peer.ok()) << peer.status();
  const BlockCopy copy{0, 1};
  absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, {&copy, 1}, message);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(sender.transport->Wait(*id, absl::Seconds(10)).ok());
  EXPECT_TRUE(receiver.WaitForNotification(message, absl::Seconds(10)).ok());
}

// ---------------------------------------------------------------------------------------------
// local: the unix socket
// ---------------------------------------------------------------------------------------------

const BackendCase kLocal{"local", "", "local"};

std::string SocketOf(const std::string& descriptor) {
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(descriptor);
  EXPECT_TRUE(d.ok());
  return d.ok() ? d->Field("socket").value_or("") : "";
}

// A raw connection to the listener, as a hostile local process would open it.
int ConnectRaw(const std::string& name) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), std::min(name.size(), sizeof(addr.sun_path) - 2));
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                               std::min(name.size(), sizeof(addr.sun_path) - 2));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends the hello; true when the listener answered with its ring (one byte 'R' + an fd).
bool HelloGetsRing(int fd, const std::string& credential) {
  const std::string hello = "H" + EncodeSenderHeader(credential, "intruder");
  if (send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0) return false;
  char kind = 0;
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&kind, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (recvmsg(fd, &msg, MSG_CMSG_CLOEXEC) != 1 || kind != 'R') return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_type == SCM_RIGHTS) {
      int ring = -1;
      std::memcpy(&ring, CMSG_DATA(c), sizeof(int));
      close(ring);
    }
  }
  return true;
}

TEST(NotifyAuthTest, LocalSenderWithoutOrWithAWrongCredentialIsRefused) {
  Endpoint receiver = MakeEndpoint(kLocal, "receiver", kSecret);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();

  Endpoint none = MakeEndpoint(kLocal, "no-credential", "");
  absl::StatusOr<PeerId> refused = none.transport->LoadPeer(descriptor);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(WaitForRefused(*receiver.transport, 1), 1u);

  Endpoint wrong = MakeEndpoint(kLocal, "wrong-credential", kWrong);
  refused = wrong.transport->LoadPeer(descriptor);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(WaitForRefused(*receiver.transport, 2), 2u);

  ExpectDelivers(kLocal, *receiver.transport, descriptor, "req-1:1");
  EXPECT_EQ(receiver.transport->counters().senders_refused, 2u);
}

TEST(NotifyAuthTest, LocalProcessOfAnotherUserIsRefusedEvenWithTheCredential) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a process as another user";
  Endpoint receiver = MakeEndpoint(kLocal, "receiver", kSecret);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();
  const std::string name = SocketOf(descriptor);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);  // nobody
    const int fd = ConnectRaw(name);
    if (fd < 0) _exit(2);
    _exit(HelloGetsRing(fd, kSecret) ? 1 : 0);  // 0: refused, as it must be
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: another user's process got a notification ring";
  EXPECT_EQ(WaitForRefused(*receiver.transport, 1), 1u);
  ExpectDelivers(kLocal, *receiver.transport, descriptor, "req-2:1");
}

TEST(NotifyAuthTest, LocalSenderFloodingOutOfTurnPacketsIsClosedAndOthersStillDeliver) {
  Endpoint receiver = MakeEndpoint(kLocal, "receiver", kSecret);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();
  const int fd = ConnectRaw(SocketOf(descriptor));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(HelloGetsRing(fd, kSecret));
  // Packets numbered far ahead of the sender's next message are kept until their turn, which
  // never comes: without a bound the receiver grows by every one of them.
  const std::string body(3000, 'x');
  size_t sent = 0;
  for (uint32_t i = 0; i < 2 * notify::kMaxPendingPackets; ++i) {
    std::string packet(1, 'N');
    const uint32_t seq = 1'000'000 + i;
    packet.append(reinterpret_cast<const char*>(&seq), sizeof(seq));
    packet.append(body);
    if (send(fd, packet.data(), packet.size(), MSG_NOSIGNAL) < 0) break;
    ++sent;
  }
  EXPECT_EQ(WaitForRefused(*receiver.transport, 1), 1u) << sent << " packets sent";
  // The receiver closed the connection: reading ends (0) or fails with a reset.
  char byte = 0;
  EXPECT_LE(recv(fd, &byte, 1, 0), 0);
  close(fd);
  EXPECT_EQ(receiver.transport->counters().notifications_received, 0u);
  ExpectDelivers(kLocal, *receiver.transport, descriptor, "req-3:1");
}

TEST(NotifyAuthTest, InboxDropsPastItsBoundAndKeepsWhatItHas) {
  NotificationInbox inbox;
  for (size_t i = 0; i < NotificationInbox::kMaxPending; ++i) {
    ASSERT_TRUE(inbox.Push({"s", std::to_string(i)}));
  }
  EXPECT_FALSE(inbox.Push({"s", "one too many"}));
  EXPECT_EQ(inbox.dropped(), 1u);
  EXPECT_TRUE(inbox.WaitFor("7", absl::ZeroDuration()).ok());
  EXPECT_TRUE(inbox.Push({"s", "room again"}));
  EXPECT_EQ(inbox.TakeAll().size(), NotificationInbox::kMaxPending);
}

TEST(NotifyAuthTest, SenderHeaderRefusesOversizedFields) {
  const std::string header = EncodeSenderHeader(kSecret, "prefill-0");
  absl::StatusOr<SenderHeader> ok = DecodeSenderHeader(header);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->credential, kSecret);
  EXPECT_EQ(ok->agent, "prefill-0");
  std::string lying = header;
  const uint16_t huge = 60000;
  std::memcpy(lying.data(), &huge, sizeof(huge));
  EXPECT_EQ(DecodeSenderHeader(lying).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSenderHeader("x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeSenderHeader(header + std::string(kMaxAgentBytes, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckSenderCredential("", "").ok());  // authentication off
  EXPECT_EQ(CheckSenderCredential(kSecret, kWrong).code(), absl::StatusCode::kPermissionDenied);
}

// ---------------------------------------------------------------------------------------------
// ucx: the notification active message
// ---------------------------------------------------------------------------------------------

TEST(NotifyAuthTest, UcxNotificationWithoutOrWithAWrongCredentialIsDropped) {
  const BackendCase ucx{"ucx", "tcp,posix,cma", "ucx"};
  Endpoint receiver = MakeEndpoint(ucx, "receiver", kSecret);
  ASSERT_NE(receiver.transport, nullptr);
  const std::string descriptor = *receiver.transport->ExportDescriptor();
  uint64_t refused = 0;
  for (const std::string& credential : {std::string(), kWrong}) {
    Endpoint sender = MakeEndpoint(ucx, "intruder", credential);
    absl::StatusOr<PeerId> peer = sender.transport->LoadPeer(descriptor);
    ASSERT_TRUE(peer.ok()) << peer.status();
    const BlockCopy copy{0, 2};
    absl::StatusOr<TransferId> id = sender.transport->Submit(*peer, {&copy, 1}, "forged:1");
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(sender.transport->Wait(*id, absl::Seconds(10)).ok());
    EXPECT_EQ(WaitForRefused(*receiver.transport, ++refused), refused);
  }
  EXPECT_EQ(receiver.transport->counters().notifications_received, 0u);
  EXPECT_TRUE(receiver.transport->TakeNotifications().empty());
  ExpectDelivers(ucx, *receiver.transport, descriptor, "req-4:1");
}

}  // namespace
}  // namespace pdserve::transfer
