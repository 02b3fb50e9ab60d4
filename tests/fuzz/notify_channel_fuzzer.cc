// libFuzzer target: what a `local` receiver reads from a KV sender, another process it must
// treat as hostile (transfer/notify/notify_channel.h, notify_ring.h): the packets on the
// notification socket (hello, notify with a sequence number, doorbell, anything else) and the
// shared ring, including a sender that writes the ring's header and slots behind the protocol's
// back. A real NotifyListener receives; the input is a script of sender actions:
//   byte op, then by op: 0 packet (u8 length, bytes), 1 notify packet (u32 seq, u8 length,
//   bytes), 2 doorbell, 3 ring push through NotifyRing (u32 seq, u8 length, bytes),
//   4 raw write into the ring's memory (u16 offset, u8 value), 5 wait for the listener to go
//   idle.
// The first action is always the hello (it is what gives the sender a ring). Checks: no crash,
// no UB, no hang (the listener notices the close and its destructor returns), and nothing is
// delivered that the sender did not produce as a ring push or notify packet (a message is at
// most a slot's payload or a packet's bytes).

#include <cstdio>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "transfer/notify/notify_channel.h"
#include "transfer/notify/notify_ring.h"
#include "transfer/notification_inbox.h"
#include "transfer/sender_credential.h"

namespace {

using pdserve::transfer::NotificationInbox;
using pdserve::transfer::notify::NotifyListener;
using pdserve::transfer::notify::NotifyRing;

// Reads the script; runs out to zeros.
struct Script {
  const uint8_t* data;
  size_t size;
  size_t at = 0;
  bool done() const { return at >= size; }
  uint8_t U8() { return at < size ? data[at++] : 0; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{U8()} << (8 * i);
    return v;
  }
  std::string Bytes() {
    const size_t n = U8();
    std::string out;
    for (size_t i = 0; i < n && !done(); ++i) out.push_back(static_cast<char>(U8()));
    return out;
  }
};

int Connect(const std::string& address) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, address.data(), address.size());
  const socklen_t len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + address.size());
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  } while (rc != 0 && errno == EINTR);
  if (fd < 0 || rc != 0) std::abort();
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// The receiver's answer to the hello: the ring's memfd (-1: none).
int ReceiveRing(int fd) {
  char kind = 0;
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&kind, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  // libFuzzer's -timeout alarm interrupts blocking calls (EINTR): retry.
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || kind != 'R') return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return -1;
  int memfd = -1;
  std::memcpy(&memfd, CMSG_DATA(c), sizeof(int));
  return memfd;
}

void Send(int fd, const std::string& packet) {
  while (send(fd, packet.data(), packet.size(), MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script script{data, size};
  NotificationInbox inbox;
  // No credential: any sender of this user (the hostile sender is one).
  auto listener = NotifyListener::Start(&inbox, "fuzz-receiver", "");
  if (!listener.ok()) std::abort();
  const int fd = Connect((*listener)->address());
  Send(fd, "H" + pdserve::transfer::EncodeSenderHeader("", "fuzz-sender"));
  const int memfd = ReceiveRing(fd);
  if (memfd < 0) std::abort();
  auto ring = NotifyRing::Map(memfd);
  if (!ring.ok()) std::abort();
  // The sender's own view of the ring's memory, for writes behind the protocol's back (the
  // header's liveness lock excepted: scribbling it would only hang glibc, in this process).
  constexpr size_t kLockEnd = 64;
  const size_t ring_bytes = 64 * 8 + size_t{pdserve::transfer::notify::kRingSlots} *
                                         pdserve::transfer::notify::kRingSlotBytes;
  auto* raw = static_cast<uint8_t*>(
      mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
  close(memfd);
  if (raw == MAP_FAILED) std::abort();

  size_t longest = 0;  // the longest message the sender produced
  for (int action = 0; action < 256 && !script.done(); ++action) {
    switch (script.U8() % 6) {
      case 0: {
        const std::string packet = script.Bytes();
        // A raw packet that happens to be a notify packet ('N', a u32 seq, bytes) is one the
        // sender produced: its message may be delivered (when its seq comes up, which depends
        // on timing), so it counts towards the longest. Not counting it made the final check
        // abort now and then, for a message of up to 250 bytes (> a slot's 120).
        if (packet.size() >= 5 && packet[0] == 'N') longest = std::max(longest, packet.size() - 5);
        Send(fd, packet);
        break;
      }
      case 1: {
        std::string packet(1, 'N');
        const uint32_t seq = script.U32();
        packet.append(reinterpret_cast<const char*>(&seq), sizeof(seq));
        const std::string message = script.Bytes();
        longest = std::max(longest, message.size());
        Send(fd, packet + message);
        (*ring)->NoteSocketSent();
        break;
      }
      case 2:
        Send(fd, "D");
        break;
      case 3: {
        const uint32_t seq = script.U32();
        const std::string message = script.Bytes();
        if ((*ring)->TryPush(message, seq) == NotifyRing::Push::kDoneRingDoorbell) Send(fd, "D");
        break;
      }
      case 4: {
        const size_t offset = (size_t{script.U8()} | size_t{script.U8()} << 8) % ring_bytes;
        const uint8_t value = script.U8();
        if (offset >= 16 && offset < kLockEnd) break;  // the liveness lock
        raw[offset] = value;
        break;
      }
      case 5:
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        break;
    }
  }
  // Hostile slot lengths are clamped to the payload: nothing longer than a slot or a packet.
  longest = std::max<size_t>(longest, pdserve::transfer::notify::kRingPayloadBytes);
  close(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*listener)->senders_lost() == 0) {
    if (std::chrono::steady_clock::now() > deadline) std::abort();  // never saw the close
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  listener->reset();
  munmap(raw, ring_bytes);
  for (const auto& n : inbox.TakeAll()) {
    if (n.sender != "fuzz-sender" || n.message.size() > longest) {
      // Say which rule broke: a run once aborted here and its input did not reproduce it.
      std::fprintf(stderr, "notification from '%s' of %zu bytes (longest sent or allowed %zu)\n",
                   n.sender.c_str(), n.message.size(), longest);
      std::abort();
    }
  }
  return 0;
}
