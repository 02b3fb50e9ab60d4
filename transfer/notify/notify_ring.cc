#include "transfer/notify/notify_ring.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer::notify {
namespace {

constexpr uint32_t kMagic = 0x6b76726e;  // "kvrn"
constexpr uint32_t kVersion = 2;
constexpr size_t kCacheLine = 64;

}  // namespace

// Fields written by one side sit on their own cache lines, so the other side's reads do not
// bounce the writer's line more than the protocol needs.
struct NotifyRing::Header {
  uint32_t magic;
  uint32_t version;
  uint32_t slots;
  uint32_t slot_bytes;
  pthread_mutex_t receiver_alive;                    // robust, process-shared; held by the receiver
  alignas(kCacheLine) std::atomic<uint64_t> head;    // sender: slots published
  std::atomic<uint64_t> socket_sent;                 // sender: packets sent
  alignas(kCacheLine) std::atomic<uint64_t> tail;    // receiver: slots consumed
  std::atomic<uint64_t> socket_received;             // receiver: packets read
  alignas(kCacheLine) std::atomic<uint32_t> parked;  // receiver sets, sender clears
};

struct NotifyRing::Slot {
  uint32_t bytes;
  uint32_t seq;
  char data[kRingPayloadBytes];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring counters must be address-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free);

namespace {
constexpr size_t kSlotsOffset = 8 * kCacheLine;  // past the header, cache-line aligned
}  // namespace

absl::StatusOr<std::unique_ptr<NotifyRing>> NotifyRing::Create(int& memfd) {
  static_assert(sizeof(Header) <= kSlotsOffset);
  static_assert(sizeof(Slot) == kRingSlotBytes);
  const size_t bytes = kSlotsOffset + size_t{kRingSlots} * kRingSlotBytes;
  int fd = memfd_create("pdserve-kv-notify-ring", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    absl::Status s =
        absl::InternalError(absl::StrCat("ftruncate notification ring: ", std::strerror(errno)));
    close(fd);
    return s;
  }
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) {
    absl::Status s = absl::InternalError(absl::StrCat("mmap notification ring: ", std::strerror(errno)));
    close(fd);
    return s;
  }
  Header* h = new (memory) Header;
  h->magic = kMagic;
  h->version = kVersion;
  h->slots = kRingSlots;
  h->slot_bytes = kRingSlotBytes;
  h->head.store(0);
  h->socket_sent.store(0);
  h->tail.store(0);
  h->socket_received.store(0);
  h->parked.store(0);
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(&h->receiver_alive, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc == 0) rc = pthread_mutex_lock(&h->receiver_alive);
  if (rc != 0) {
    munmap(memory, bytes);
    close(fd);
    return absl::InternalError(
        absl::StrCat("notification ring liveness lock: ", std::strerror(rc)));
  }
  memfd = fd;
  return std::unique_ptr<NotifyRing>(new NotifyRing(memory, bytes, /*receiver=*/true));
}

absl::StatusOr<std::unique_ptr<NotifyRing>> NotifyRing::Map(int memfd) {
  struct stat st;
  if (fstat(memfd, &st) != 0) return absl::InternalError(absl::StrCat("fstat: ", std::strerror(errno)));
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < kSlotsOffset) return absl::InternalError("notification ring too small");
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (memory == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap notification ring: ", std::strerror(errno)));
  }
  const Header* h = static_cast<const Header*>(memory);
  if (h->magic != kMagic || h->version != kVersion || h->slots != kRingSlots ||
      h->slot_bytes != kRingSlotBytes || bytes < kSlotsOffset + size_t{h->slots} * h->slot_bytes) {
    munmap(memory, bytes);
    return absl::FailedPreconditionError(
        "KV peer's notification ring has another layout (a different pdserve build?)");
  }
  return std::unique_ptr<NotifyRing>(new NotifyRing(memory, bytes, /*receiver=*/false));
}

NotifyRing::NotifyRing(void* memory, size_t bytes, bool receiver)
    : memory_(memory), bytes_(bytes), header_(static_cast<Header*>(memory)), receiver_(receiver) {}

NotifyRing::~NotifyRing() {
  // The sender then sees the receiver gone (trylock succeeds) even if the socket lingers.
  if (receiver_) pthread_mutex_unlock(&header_->receiver_alive);
  munmap(memory_, bytes_);
}

NotifyRing::Slot* NotifyRing::slot(uint64_t index) const {
  return reinterpret_cast<Slot*>(static_cast<char*>(memory_) + kSlotsOffset +
                                 (index % kRingSlots) * kRingSlotBytes);
}

NotifyRing::Push NotifyRing::TryPush(const std::string& message, uint32_t seq) {
  if (message.size() > kRingPayloadBytes) return Push::kUseSocket;
  if (head_ - tail_seen_ >= kRingSlots) {
    // acquire: the receiver finished reading a slot before we overwrite it.
    tail_seen_ = header_->tail.load(std::memory_order_acquire);
    if (head_ - tail_seen_ >= kRingSlots) return Push::kUseSocket;
  }
  Slot* s = slot(head_);
  s->bytes = static_cast<uint32_t>(message.size());
  s->seq = seq;
  std::memcpy(s->data, message.data(), message.size());
  // release: the batch's bytes (copied before this, on this thread or ordered before it by the
  // copy engine's share count), the slot and `socket_sent` are visible before the receiver
  // sees `head`.
  header_->head.store(++head_, std::memory_order_release);
  // Dekker with the receiver's park: store head; fence; load parked.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (header_->parked.load(std::memory_order_relaxed) != 0 &&
      header_->parked.exchange(0, std::memory_order_acq_rel) != 0) {
    return Push::kDoneRingDoorbell;
  }
  return Push::kDone;
}

void NotifyRing::NoteSocketSent() {
  header_->socket_sent.store(++socket_sent_, std::memory_order_release);
}

bool NotifyRing::ReceiverAlive() {
  if (!alive_) return false;
  // EBUSY: the receiver's listener holds it (no syscall on this path). 0: it released it
  // (closed the connection); EOWNERDEAD / ENOTRECOVERABLE: it died holding it.
  const int rc = pthread_mutex_trylock(&header_->receiver_alive);
  if (rc == EBUSY) return true;
  // Ours now (or not recoverable): let go, so it is not on this thread's robust list.
  if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(&header_->receiver_alive);
  alive_ = false;
  return false;
}

bool NotifyRing::Front(uint32_t& seq, std::string_view& message) {
  if (tail_ == head_seen_) {
    head_seen_ = header_->head.load(std::memory_order_acquire);
    if (tail_ == head_seen_) return false;
  }
  const Slot* s = slot(tail_);
  seq = s->seq;
  message = std::string_view(s->data, std::min<uint32_t>(s->bytes, kRingPayloadBytes));
  return true;
}

void NotifyRing::Pop() {
  // release: done reading the slot before the sender may reuse it.
  header_->tail.store(++tail_, std::memory_order_release);
}

bool NotifyRing::HasWork() const {
  return header_->head.load(std::memory_order_acquire) != tail_ || SocketPending();
}

bool NotifyRing::SocketPending() const {
  return header_->socket_sent.load(std::memory_order_acquire) !=
         header_->socket_received.load(std::memory_order_relaxed);
}

void NotifyRing::NoteSocketReceived() {
  // Only this thread writes it: a plain increment, no read-modify-write on a shared line.
  header_->socket_received.store(header_->socket_received.load(std::memory_order_relaxed) + 1,
                                 std::memory_order_relaxed);
}

void NotifyRing::SetParked(bool parked) {
  header_->parked.store(parked ? 1 : 0, std::memory_order_relaxed);
}

}  // namespace pdserve::transfer::notify
