#include "transfer/ucx/ucx_transport.h"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <ucp/api/ucp.h>
#if defined(PDSERVE_HAS_CUDA)
#include <cuda_runtime.h>

#include "kvcache/cuda/cuda_kernels.h"
#endif

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/logging.h"
#include "transfer/batch_table.h"
#include "transfer/copy_plan.h"
#include "transfer/notification_inbox.h"
#include "transfer/sender_credential.h"
#include "transfer/pool_descriptor.h"
#include "transfer/ucx/stream_copy.h"
#include "transfer/ucx/ucx_context.h"

namespace pdserve::transfer::ucx {
namespace {

constexpr char kBackend[] = "ucx";
constexpr uint16_t kNotifyAmId = 0x4b56;  // "KV"
// A batch's data as active messages (peers without a put lane, see UcxPeer::am_data): header
// is the destination offset in the receiver's pool, the body the bytes.
constexpr uint16_t kDataAmId = 0x4b44;  // "KD"
// Runs longer than this go as several data messages: the receiver assembles each whole message
// in a buffer of its size before copying it into the pool.
constexpr size_t kMaxDataAmBytes = size_t{256} << 10;
const absl::Duration kCommandTimeout = absl::Seconds(30);
constexpr int64_t kConnectTimeoutNs = 5'000'000'000;
// After activity the thread keeps polling this long before it sleeps: a stream of batches
// never pays for a wake-up.
constexpr int64_t kSpinNs = 200'000;

// UCX maps a shared-memory peer's pool (posix: mmap of its segment) without populating the
// mapping, so the first write to each of its pages inside a batch took a page fault: at 4 req/s,
// where requests reach blocks not written before, a 16 MiB ucx-posix transfer took 9-12 ms
// against 1.4 ms in the microbenchmark, whose few blocks are mapped after its first pass. The
// page tables are filled once here, when the peer is loaded, as the local backend's MAP_POPULATE
// does; MADV_POPULATE_WRITE (Linux 5.14) maps the pages writable without changing a byte.
void PopulateForWrite(void* mapped, size_t bytes) {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;
#endif
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(mapped) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(mapped) + bytes;
  // Best effort: an older kernel refuses the advice, and batches then fault as before.
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}
constexpr int kIdleSleepMs = 100;  // bounded sleep: keepalive runs from progress
constexpr int64_t kLivenessCheckNs = 100'000'000;
constexpr int64_t kAliveReuseNs = 20'000;  // see StartBatch
// Host-memory batches up to this many bytes may be issued on the submitting thread (see
// IssueInline; ~300 us of copying over shared memory); PDSERVE_UCX_INLINE_BYTES overrides it
// (0: every batch goes to the progress thread). Larger ones go to the progress thread, so that
// Submit returns at once and the caller overlaps them with its own work.
constexpr uint64_t kDefaultInlineBytes = uint64_t{4} << 20;
// Batches above this size are copied with streaming stores even where the last-level cache
// looks larger: a VM's reported cache need not be what it gets (the 2-core Xeon VM reports
// 260 MiB of L3; 32 MiB batches ran at 5-8 GB/s with puts and 12-13.6 with streaming stores,
// 64 MiB ones at ~5 against 6.5-8.6), and the receiver does not read a KV batch right away.
constexpr uint64_t kMaxCachedBatchBytes = uint64_t{16} << 20;
// Wait polls the handle this long (yielding the CPU between looks) before it blocks: a batch
// about to complete costs no futex wake-up on either side.
constexpr int64_t kWaitSpinNs = 50'000;

uint64_t BytesFromEnv(const char* name, uint64_t fallback) {
  uint64_t bytes = fallback;
  if (const char* env = std::getenv(name); env != nullptr && !absl::SimpleAtoi(env, &bytes)) {
    bytes = fallback;
  }
  return bytes;
}

// This boot's id: tells whether a descriptor's pid means anything here.
std::string BootId() {
  static const std::string id = [] {
    std::string text;
    if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof(buf), f) != nullptr) text = buf;
      std::fclose(f);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
  }();
  return id;
}

// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22), 0 when it is gone:
// with the pid it names one process even if the pid is reused.
uint64_t ProcessStartTime(pid_t pid) {
  std::string path = absl::StrCat("/proc/", pid, "/stat");
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  std::string stat(buf, n);
  size_t pos = stat.rfind(')');  // the command name may hold spaces
  if (pos == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(pos + 2), ' ');
  uint64_t start = 0;
  // Field 3 (state) is fields[0], so field 22 is fields[19].
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start)) return 0;
  if (!fields[0].empty() && (fields[0][0] == 'Z' || fields[0][0] == 'X')) return 0;  // zombie
  return start;
}

std::string Base64(const void* data, size_t size) {
  return absl::Base64Escape(absl::string_view(static_cast<const char*>(data), size));
}

// State of one connected peer; touched only by the progress thread (except `dead`).
struct UcxPeer {
  std::string agent;
  ucp_ep_h ep = nullptr;
  ucp_rkey_h rkey = nullptr;
  uint64_t remote_base = 0;
  size_t remote_bytes = 0;  // the peer pool's size
  bool remote_host = false;  // its descriptor says its pool is in host memory
  // UCX has no put lane to this peer (tcp): it would emulate puts with active messages that the
  // receiver acknowledges one by one, and UCX 1.13 aborts the receiver ("Fatal: unexpected
  // error: Endpoint timeout" under ucp_put_handler) when it handles such a put after the
  // sender died, as the acknowledgement cannot be sent. The batch's runs go as our own eager
  // active messages instead (kDataAmId), which the receiver copies into its pool and never
  // answers.
  bool am_data = false;
  // The peer's pool mapped into this process (ucp_rkey_ptr: shared-memory transports, host
  // pools on both sides), for batches copied with streaming stores; null: puts only. Valid
  // until the rkey is destroyed, which happens on the progress thread, like the copies.
  std::byte* direct = nullptr;
  // Same host: the owner process, watched because shared-memory transports have no peer
  // failure handler (UCX refuses UCP_ERR_HANDLING_MODE_PEER for posix / sysv).
  pid_t pid = 0;
  uint64_t start_time = 0;
  // pidfd of that process (readable once it exits): checking it before every batch is one
  // poll(), where reading /proc/PID/stat is an open, a read, a close and a parse. -1: not open.
  int pidfd = -1;
  // MonotonicNanos() of the last liveness check that found the process alive (see StartBatch).
  int64_t alive_at_ns = 0;
  UcxPeer() = default;
  UcxPeer(const UcxPeer&) = delete;
  UcxPeer& operator=(const UcxPeer&) = delete;
  ~UcxPeer() {
    if (pidfd >= 0) close(pidfd);
  }
  absl::Status error;  // set by the endpoint's error handler or the pid watch
  std::shared_ptr<std::atomic<bool>> dead = std::make_shared<std::atomic<bool>>(false);
};

// What callers need to validate a Submit without asking the progress thread.
struct PeerInfo {
  KvGeometry geometry;
  std::string agent;
  std::shared_ptr<std::atomic<bool>> dead;
};

class UcxTransport;

struct Batch {
  UcxTransport* owner;
  TransferId id;
  std::shared_ptr<UcxPeer> peer;
  std::string notification;
  // Destination offsets of the batch's data messages (am_data): UCX may read a message's
  // header until the send completes, and the flush covers those sends.
  std::vector<uint64_t> data_headers;
};

class UcxTransport final : public KvTransport {
 public:
  static absl::StatusOr<std::unique_ptr<KvTransport>> Create(const TransportOptions& options) {
    absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get(options.listen_host);
    if (!context.ok()) return context.status();
    std::unique_ptr<UcxTransport> t(new UcxTransport(options, *context));
    if (absl::Status s = t->Init(); !s.ok()) return s;
    return std::unique_ptr<KvTransport>(std::move(t));
  }

  ~UcxTransport() override {
    if (thread_.joinable()) {
      Post([this] { stopping_ = true; });
      thread_.join();
    }
    if (worker_ != nullptr) ucp_worker_destroy(worker_);
    if (own_memh_ != nullptr) ucp_mem_unmap(context_->handle(), own_memh_);
    if (command_fd_ >= 0) close(command_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  std::string backend() const override { return kBackend; }

  absl::Status RegisterPool(const KvCache& cache) override {
    if (cache.memory().kind() == MemoryKind::kCuda) {
      if (!context_->cuda_memory()) return NoCudaMemoryError(*context_);
      // Before taking mu_: the progress thread may need it.
      if (absl::Status s = UseDevice(cache.memory().device()); !s.ok()) return s;
    }
    std::lock_guard lock(mu_);
    if (pool_ != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent '", options_.agent_name, "' already registered a KV pool"));
    }
    const size_t bytes = static_cast<size_t>(cache.geometry().region_bytes());
    ucp_mem_h memh = nullptr;
    auto* ucx_memory = dynamic_cast<UcxPoolMemory*>(&cache.memory());
    if (ucx_memory != nullptr && ucx_memory->context() == context_) {
      memh = ucx_memory->memh();  // registered when UCX allocated it
    } else {
      const bool on_device = cache.memory().kind() == MemoryKind::kCuda;
      ucp_mem_map_params_t params{};
      params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                          UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
      params.address = cache.base();
      params.length = bytes;
      params.memory_type = on_device ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
      if (ucs_status_t s = ucp_mem_map(context_->handle(), &params, &memh); s != UCS_OK) {
        return UcsError(on_device ? "ucp_mem_map of the KV pool (CUDA memory)"
                                  : "ucp_mem_map of the KV pool", s);
      }
      own_memh_ = memh;
      pool_memory_type_ = params.memory_type;
    }
    void* rkey = nullptr;
    size_t rkey_size = 0;
    if (ucs_status_t s = ucp_rkey_pack(context_->handle(), memh, &rkey, &rkey_size); s != UCS_OK) {
      return UcsError("ucp_rkey_pack", s);
    }
    descriptor_ = DescribePool(kBackend, options_.agent_name, cache.geometry());
    descriptor_.fields["rkey"] = Base64(rkey, rkey_size);
    ucp_rkey_buffer_release(rkey);
    descriptor_.fields["worker_address"] = worker_address_;
    descriptor_.fields["base"] = absl::StrCat(reinterpret_cast<uintptr_t>(cache.base()));
    descriptor_.fields["memory"] = pool_memory_type_ == UCS_MEMORY_TYPE_HOST ? "host" : "device";
    descriptor_.fields["boot_id"] = BootId();
    descriptor_.fields["pid"] = absl::StrCat(getpid());
    descriptor_.fields["start_time"] = absl::StrCat(ProcessStartTime(getpid()));
    pool_ = &cache;
    if (pool_memory_type_ == UCS_MEMORY_TYPE_HOST) {
      // For the data handler (progress thread); set before the descriptor can reach a sender.
      pool_bytes_.store(bytes, std::memory_order_relaxed);
      pool_data_.store(cache.base(), std::memory_order_release);
    }
    ++registrations_;
    log_->info("agent {}: registered KV pool of {} blocks x {} bytes ({}, {} memory) with UCX "
               "(UCX_TLS={})",
               options_.agent_name, cache.geometry().num_blocks(), cache.geometry().block_bytes(),
               std::string(KvLayoutName(cache.geometry().layout())),
               pool_memory_type_ == UCS_MEMORY_TYPE_CUDA ? "device" : "host",
               context_->tls().empty() ? "all" : context_->tls());
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ExportDescriptor() const override {
    std::lock_guard lock(mu_);
    if (pool_ == nullptr) return absl::FailedPreconditionError("no KV pool registered");
    return descriptor_.Serialize();
  }

  absl::StatusOr<PeerId> LoadPeer(const std::string& bytes) override {
    absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(bytes);
    if (!d.ok()) return d.status();
    const KvCache* pool;
    {
      std::lock_guard lock(mu_);
      pool = pool_;
    }
    if (pool == nullptr) return absl::FailedPreconditionError("register a KV pool before LoadPeer");
    if (absl::Status s = CheckCompatible(pool->geometry(), kBackend, *d); !s.ok()) return s;
    std::string address, rkey;
    uint64_t base = 0;
    absl::StatusOr<std::string> f_address = d->Field("worker_address");
    absl::StatusOr<std::string> f_rkey = d->Field("rkey");
    absl::StatusOr<std::string> f_base = d->Field("base");
    if (!f_address.ok() || !f_rkey.ok() || !f_base.ok() ||
        !absl::Base64Unescape(*f_address, &address) || !absl::Base64Unescape(*f_rkey, &rkey) ||
        !absl::SimpleAtoi(*f_base, &base)) {
      return absl::InvalidArgumentError(
          absl::StrCat("UCX descriptor of agent '", d->agent, "' lacks a valid address / rkey"));
    }
    const PeerId id = next_peer_.fetch_add(1);
    auto peer = std::make_shared<UcxPeer>();
    peer->agent = d->agent;
    peer->remote_base = base;
    peer->remote_bytes = static_cast<size_t>(d->region_bytes());
    if (auto memory = d->fields.find("memory"); memory != d->fields.end()) {
      peer->remote_host = memory->second == "host";
    }
    if (auto boot = d->fields.find("boot_id"); boot != d->fields.end() && boot->second == BootId()) {
      int pid = 0;
      uint64_t start = 0;
      if (absl::SimpleAtoi(d->fields["pid"], &pid) && absl::SimpleAtoi(d->fields["start_time"], &start)) {
        peer->pid = pid;
        peer->start_time = start;
        if (ProcessStartTime(pid) != start) {
          return absl::FailedPreconditionError(absl::StrCat(
              "KV peer '", d->agent, "' (pid ", pid, ") is gone: stale descriptor"));
        }
      }
    }
    absl::StatusOr<absl::Status> connected =
        RunOnWorker([&] { return Connect(id, peer, address, rkey); });
    if (!connected.ok()) return connected.status();
    if (!connected->ok()) return *connected;
    std::lock_guard lock(mu_);
    peer_info_.emplace(id, std::make_shared<const PeerInfo>(PeerInfo{
                               KvGeometry(pool->config(), d->num_blocks, d->layout), d->agent,
                               peer->dead}));
    ++peers_loaded_;
    return id;
  }

  absl::Status RemovePeer(PeerId id) override {
    {
      std::lock_guard lock(mu_);
      if (peer_info_.erase(id) == 0) {
        return absl::FailedPreconditionError(absl::StrCat("unknown KV peer ", id));
      }
    }
    absl::StatusOr<absl::Status> closed = RunOnWorker([&] {
      ClosePeer(id);
      return absl::OkStatus();
    });
    return closed.ok() ? absl::OkStatus() : closed.status();
  }

  absl::StatusOr<TransferId> Submit(PeerId peer, std::span<const BlockCopy> copies,
                                    const std::string& notification) override {
    const KvCache* pool;
    std::shared_ptr<const PeerInfo> info;  // a pointer, not a copy of the geometry per batch
    {
      std::lock_guard lock(mu_);
      auto it = peer_info_.find(peer);
      if (it == peer_info_.end()) {
        return absl::FailedPreconditionError(absl::StrCat("unknown or removed KV peer ", peer));
      }
      info = it->second;
      pool = pool_;
    }
    if (notification.size() > kMaxNotificationBytes) {
      return absl::InvalidArgumentError("KV transfer notification too long");
    }
    // Reused per thread: planning a batch allocates nothing once warm (a batch posted to the
    // progress thread takes a copy).
    thread_local std::vector<CopyOp> ops;
    if (absl::Status s = PlanCopies(pool->geometry(), info->geometry, copies, ops); !s.ok()) {
      return s;
    }
    if (info->dead->load()) {
      return absl::UnavailableError(absl::StrCat("KV peer '", info->agent, "' is gone (request ",
                                                 notification, ")"));
    }
    const uint64_t bytes = TotalBytes(ops);
    absl::StatusOr<TransferId> id = table_.Begin(bytes, static_cast<uint32_t>(ops.size()));
    if (!id.ok()) return id.status();
    if (bytes <= inline_bytes_ && pool_memory_type_ == UCS_MEMORY_TYPE_HOST &&
        IssueInline(peer, *id, pool->base(), ops, notification)) {
      return *id;
    }
    Post([this, peer, id = *id, ops = ops, notification,
          base = pool->base()]() mutable { StartBatch(peer, id, base, ops, notification); });
    return *id;
  }

  absl::StatusOr<bool> Poll(TransferId id) override { return table_.Poll(id); }
  absl::Status Wait(TransferId id, absl::Duration timeout) override {
    // A batch issued inline is usually complete already; one on the progress thread often
    // completes within microseconds. Look a few times (yielding, so that on a small host the
    // progress thread gets the core) before blocking on the table.
    const int64_t spin_until =
        MonotonicNanos() + std::min<int64_t>(kWaitSpinNs, absl::ToInt64Nanoseconds(timeout));
    do {
      absl::StatusOr<bool> done = table_.Poll(id);
      if (!done.ok()) return done.status();
      if (*done) return absl::OkStatus();  // Poll reaped it; a failure came back as its status
      sched_yield();
    } while (MonotonicNanos() < spin_until);
    return table_.Wait(id, timeout);
  }
  absl::StatusOr<TransferStats> Stats(TransferId id) const override { return table_.Stats(id); }
  std::vector<Notification> TakeNotifications() override { return inbox_.TakeAll(); }
  absl::Status WaitForNotification(const std::string& message, absl::Duration timeout) override {
    return inbox_.WaitFor(message, timeout);
  }

  TransportCounters counters() const override {
    TransportCounters c;
    table_.FillCounters(c);
    c.notifications_received = inbox_.received();
    c.senders_refused = notifications_refused_.load() + inbox_.dropped();
    std::lock_guard lock(mu_);
    c.registrations = registrations_;
    c.peers_loaded = peers_loaded_;
    c.transports = lanes_.empty()
                       ? absl::StrCat("UCX_TLS=", context_->tls().empty() ? "all" : context_->tls())
                       : absl::StrJoin(lanes_, ",");
    return c;
  }

 private:
  UcxTransport(const TransportOptions& options, std::shared_ptr<UcxContext> context)
      : options_(options),
        log_(ComponentLogger("transfer")),
        table_(std::max(1, options.max_inflight_batches)),
        context_(std::move(context)) {}

  absl::Status Init() {
    ucp_worker_params_t params{};
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    // Serialized: the progress thread and submitting threads (inline batches) take turns,
    // always under worker_mu_.
    params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
    if (ucs_status_t s = ucp_worker_create(context_->handle(), &params, &worker_); s != UCS_OK) {
      worker_ = nullptr;
      return UcsError("ucp_worker_create", s);
    }
    ucp_address_t* address = nullptr;
    size_t length = 0;
    if (ucs_status_t s = ucp_worker_get_address(worker_, &address, &length); s != UCS_OK) {
      return UcsError("ucp_worker_get_address", s);
    }
    worker_address_ = Base64(address, length);
    ucp_worker_release_address(worker_, address);

    ucp_am_handler_param_t am{};
    am.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                    UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    am.id = kNotifyAmId;
    am.flags = UCP_AM_FLAG_WHOLE_MSG;
    am.cb = &UcxTransport::OnNotification;
    am.arg = this;
    if (ucs_status_t s = ucp_worker_set_am_recv_handler(worker_, &am); s != UCS_OK) {
      return UcsError("ucp_worker_set_am_recv_handler", s);
    }
    am.id = kDataAmId;
    am.cb = &UcxTransport::OnData;
    if (ucs_status_t s = ucp_worker_set_am_recv_handler(worker_, &am); s != UCS_OK) {
      return UcsError("ucp_worker_set_am_recv_handler (data)", s);
    }

    command_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (command_fd_ < 0 || epoll_fd_ < 0) return absl::InternalError("eventfd / epoll_create");
    epoll_event ev{};
    ev.events = EPOLLIN;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, command_fd_, &ev);
    if (context_->wakeup()) {
      int worker_fd = -1;
      if (ucp_worker_get_efd(worker_, &worker_fd) == UCS_OK) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, worker_fd, &ev);
        can_sleep_ = true;
      }
    }
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
  }

  // Makes `device` current on the progress thread, which issues every put (UCX's CUDA
  // transports copy in the calling thread's context).
  absl::Status UseDevice(int device) {
#if defined(PDSERVE_HAS_CUDA)
    absl::StatusOr<absl::Status> set = RunOnWorker([device] {
      const cudaError_t e = cudaSetDevice(device);
      return e == cudaSuccess ? absl::OkStatus()
                              : absl::FailedPreconditionError(absl::StrCat(
                                    "cudaSetDevice(", device, "): ", cudaGetErrorString(e)));
    });
    if (!set.ok()) return set.status();
    return *set;
#else
    return absl::FailedPreconditionError(
        "a KV pool in device memory in a pdserve built without CUDA");
#endif
  }

  // ---- commands from caller threads ----

  // Issues a host-memory batch on the calling thread, the way a UCX application would: over
  // shared memory the puts are the copies, the flush completes at once and the notification is
  // an inline send, so the batch usually completes before Submit returns, with no hand-off to
  // the progress thread and no wake-up of the caller (on a 2-core host the two threads shared
  // a core). Declines (false: post it instead) when the progress thread holds the worker (it
  // may be in the middle of a long batch; the caller must not block behind it), when it has
  // commands queued (issue order stays submit order, so one sender's notifications keep their
  // order), and for peers reached with data active messages (tcp: those stay on the progress
  // thread). A batch left in flight (the flush or the send completes later) is finished by the
  // progress thread.
  bool IssueInline(PeerId peer, TransferId id, const std::byte* base,
                   const std::vector<CopyOp>& ops, const std::string& notification) {
    std::unique_lock<std::mutex> worker(worker_mu_, std::try_to_lock);
    if (!worker.owns_lock()) return false;
    {
      std::lock_guard lock(command_mu_);
      if (!commands_.empty()) return false;
    }
    if (auto it = peers_.find(peer); it == peers_.end() || it->second->am_data) return false;
    StartBatch(peer, id, base, ops, notification);
    const bool left_in_flight = !batches_.empty();
    worker.unlock();
    // The progress thread sets sleeping_ before it looks at batches_ (under worker_mu_) a last
    // time: it either saw this batch or we see it asleep.
    if (left_in_flight) Wake();
    return true;
  }

  void Wake() {
    if (sleeping_.load()) {
      const uint64_t one = 1;
      (void)!write(command_fd_, &one, sizeof(one));
    }
  }

  void Post(std::function<void()> command) {
    {
      std::lock_guard lock(command_mu_);
      commands_.push_back(std::move(command));
    }
    // An awake progress thread finds the command on its next turn: the eventfd write (and the
    // read after it) is a syscall pair per batch that only a sleeping thread needs. Sleep()
    // sets sleeping_ before it looks at the queue a last time, so one side always sees the other.
    Wake();
  }

  // Runs `fn` on the progress thread and returns its status (outer: the wait itself failed).
  absl::StatusOr<absl::Status> RunOnWorker(std::function<absl::Status()> fn) {
    auto done = std::make_shared<absl::Notification>();
    auto result = std::make_shared<absl::Status>();
    Post([fn = std::move(fn), done, result] {
      *result = fn();
      done->Notify();
    });
    if (!done->WaitForNotificationWithTimeout(kCommandTimeout)) {
      return absl::DeadlineExceededError("UCX progress thread did not answer");
    }
    return *result;
  }

  // ---- the progress thread ----

  // One turn holds worker_mu_ (commands, progress, liveness); the yield and the sleep do not,
  // so that submitting threads can issue inline batches in between.
  void Loop() {
    int64_t last_activity = MonotonicNanos();
    for (;;) {
      std::deque<std::function<void()>> commands;
      bool progressed = false;
      bool idle = false;
      const int64_t now = MonotonicNanos();
      {
        std::lock_guard<std::mutex> worker(worker_mu_);
        {
          std::lock_guard lock(command_mu_);
          commands.swap(commands_);
        }
        for (auto& command : commands) command();
        if (stopping_) break;
        progressed = !commands.empty();
        while (ucp_worker_progress(worker_) != 0) progressed = true;
        if (now - last_liveness_check_ > kLivenessCheckNs) {
          last_liveness_check_ = now;
          for (auto& [id, peer] : peers_) CheckAlive(*peer);
        }
        idle = batches_.empty();
      }
      if (progressed) {
        last_activity = now;
        continue;
      }
      // Nothing to do this turn: let the submitting thread (or the peer process, on a small
      // host) have the core instead of spinning against it.
      sched_yield();
      if (!idle) {
        last_activity = now;
        continue;
      }
      if (now - last_activity < kSpinNs) continue;
      Sleep();
      last_activity = MonotonicNanos();
    }
    std::lock_guard<std::mutex> worker(worker_mu_);
    Shutdown();
  }

  void Sleep() {
    sleeping_.store(true);
    {
      std::lock_guard<std::mutex> worker(worker_mu_);
      bool busy = !batches_.empty();  // an inline batch left in flight since the last turn
      {
        std::lock_guard lock(command_mu_);
        busy = busy || !commands_.empty();
      }
      if (busy || (can_sleep_ && ucp_worker_arm(worker_) == UCS_ERR_BUSY)) {
        sleeping_.store(false);
        return;
      }
    }
    if (can_sleep_) {
      epoll_event events[2];
      epoll_wait(epoll_fd_, events, 2, kIdleSleepMs);
    } else {
      pollfd p{command_fd_, POLLIN, 0};
      poll(&p, 1, 1);
    }
    sleeping_.store(false);
    uint64_t drained;
    (void)!read(command_fd_, &drained, sizeof(drained));
  }

  // Progresses until `request` completes or the deadline passes; returns its status.
  ucs_status_t WaitRequest(ucs_status_ptr_t request, int64_t timeout_ns) {
    if (request == nullptr) return UCS_OK;
    if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
    const int64_t deadline = MonotonicNanos() + timeout_ns;
    ucs_status_t status;
    while ((status = ucp_request_check_status(request)) == UCS_INPROGRESS &&
           MonotonicNanos() < deadline) {
      ucp_worker_progress(worker_);
    }
    if (status == UCS_INPROGRESS) {
      ucp_request_cancel(worker_, request);
      while ((status = ucp_request_check_status(request)) == UCS_INPROGRESS) {
        ucp_worker_progress(worker_);
      }
      if (status == UCS_OK || status == UCS_ERR_CANCELED) status = UCS_ERR_TIMED_OUT;
    }
    ucp_request_free(request);
    return status;
  }

  absl::Status Connect(PeerId id, const std::shared_ptr<UcxPeer>& peer, const std::string& address,
                       const std::string& rkey) {
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = reinterpret_cast<const ucp_address_t*>(address.data());
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = &UcxTransport::OnEndpointError;
    params.err_handler.arg = peer.get();
    const bool same_host = peer->pid != 0;
    if (same_host && peer->pidfd < 0) {
      const int fd = static_cast<int>(syscall(SYS_pidfd_open, peer->pid, 0));
      // The pid names the peer only if its start time still matches once the fd is open.
      if (fd >= 0 && ProcessStartTime(peer->pid) == peer->start_time) {
        peer->pidfd = fd;
      } else if (fd >= 0) {
        close(fd);
      }
    }
    ucs_status_t created = UCS_ERR_UNREACHABLE;
    if (!(same_host && context_->peer_mode_unsupported().load())) {
      created = ucp_ep_create(worker_, &params, &peer->ep);
    }
    if (created == UCS_ERR_UNREACHABLE && same_host) {
      // The transports have no peer failure handler (shared memory): connect without one and
      // rely on watching the peer's pid (same host) instead.
      if (!context_->peer_mode_unsupported().exchange(true)) {
        log_->info("agent {}: UCX has no peer failure handling for UCX_TLS={}; watching peer "
                   "processes instead", options_.agent_name, context_->tls());
      }
      params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
      created = ucp_ep_create(worker_, &params, &peer->ep);
    }
    if (created != UCS_OK) {
      peer->ep = nullptr;
      return absl::FailedPreconditionError(absl::StrCat("cannot reach KV peer '", peer->agent,
                                                        "' (", ucs_status_string(created),
                                                        "): stale descriptor?"));
    }
    ucs_status_t s = ucp_ep_rkey_unpack(peer->ep, rkey.data(), &peer->rkey);
    if (s == UCS_OK) {
      // Wire-up now, so that a stale or unreachable peer fails here and not in the first batch.
      ucp_request_param_t flush{};
      s = WaitRequest(ucp_ep_flush_nbx(peer->ep, &flush), kConnectTimeoutNs);
    }
    if (s != UCS_OK || !peer->error.ok()) {
      ClosePeerState(*peer);
      return absl::FailedPreconditionError(
          absl::StrCat("cannot reach KV peer '", peer->agent, "' (",
                       s != UCS_OK ? ucs_status_string(s) : peer->error.ToString(),
                       "): stale descriptor or the peer is gone"));
    }
    if (peer->remote_host && pool_memory_type_ == UCS_MEMORY_TYPE_HOST) {
      void* mapped = nullptr;
      if (ucp_rkey_ptr(peer->rkey, peer->remote_base, &mapped) == UCS_OK) {
        peer->direct = static_cast<std::byte*>(mapped);
        PopulateForWrite(mapped, peer->remote_bytes);
      }
    }
    const std::string info = EpInfo(peer->ep);
    // "put[0]: 0..<short>..": UCX has a put lane; without one it would emulate puts.
    peer->am_data = peer->remote_host && pool_memory_type_ == UCS_MEMORY_TYPE_HOST &&
                    info.find("put[") == std::string::npos;
    peers_[id] = peer;
    std::string lanes = LanesOf(info);
    if (peer->am_data) absl::StrAppend(&lanes, " (data as active messages)");
    if (peer->direct != nullptr) {
      absl::StrAppend(&lanes, " (batches > ", stream_bytes_ >> 20,
                      " MiB: streaming stores through ucp_rkey_ptr)");
    }
    RecordLanes(lanes);
    log_->info("agent {}: connected to KV peer '{}' over {}", options_.agent_name, peer->agent,
               lanes);
    return absl::OkStatus();
  }

  // ucp_ep_print_info's text: the endpoint's lanes and its protocols' ranges.
  static std::string EpInfo(ucp_ep_h ep) {
    char* text = nullptr;
    size_t size = 0;
    FILE* stream = open_memstream(&text, &size);
    if (stream == nullptr) return "";
    ucp_ep_print_info(ep, stream);
    fclose(stream);
    std::string all(text, size);
    free(text);
    return all;
  }

  // The transports UCX chose for an endpoint, from EpInfo ("tcp/lo", "posix/memory").
  static std::string LanesOf(const std::string& all) {
    std::set<std::string> lanes;
    for (size_t pos = all.find("lane["); pos != std::string::npos; pos = all.find("lane[", pos + 1)) {
      // "lane[0]:  3:posix/memory.0 md[2] ..." -> "posix/memory"
      size_t colon = all.find(':', all.find(']', pos));
      size_t start = all.find(':', all.find_first_not_of(" ", colon + 1));
      if (colon == std::string::npos || start == std::string::npos) continue;
      size_t end = all.find_first_of(" \n", start + 1);
      std::string lane = all.substr(start + 1, end - start - 1);
      if (size_t dot = lane.rfind('.'); dot != std::string::npos) lane.resize(dot);
      lanes.insert(lane);
    }
    return lanes.empty() ? "?" : absl::StrJoin(lanes, "+");
  }

  void RecordLanes(const std::string& lanes) {
    std::lock_guard lock(mu_);
    lanes_.insert(lanes);
  }

  void ClosePeerState(UcxPeer& peer) {
    if (peer.ep != nullptr) {
      ucp_request_param_t params{};
      params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      params.flags = UCP_EP_CLOSE_FLAG_FORCE;  // cancels what is in flight: no more bytes land
      WaitRequest(ucp_ep_close_nbx(peer.ep, &params), kConnectTimeoutNs);
      peer.ep = nullptr;
    }
    peer.direct = nullptr;  // the mapping goes with the rkey
    if (peer.rkey != nullptr) {
      ucp_rkey_destroy(peer.rkey);
      peer.rkey = nullptr;
    }
    peer.dead->store(true);
  }

  // Marks a same-host peer whose process is gone as failed and cancels what is in flight to it.
  void CheckAlive(UcxPeer& peer) {
    if (peer.pid == 0 || !peer.error.ok()) return;
    if (!ProcessGone(peer)) {
      peer.alive_at_ns = MonotonicNanos();
      return;
    }
    peer.error = absl::UnavailableError(
        absl::StrCat("KV peer '", peer.agent, "' (pid ", peer.pid, ") died"));
    log_->warn("agent {}: {}", options_.agent_name, peer.error.ToString());
    ClosePeerState(peer);
  }

  static bool ProcessGone(const UcxPeer& peer) {
    if (peer.pidfd >= 0) {
      pollfd p{peer.pidfd, POLLIN, 0};
      return poll(&p, 1, 0) > 0;
    }
    return ProcessStartTime(peer.pid) != peer.start_time;
  }

  void ClosePeer(PeerId id) {
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    std::shared_ptr<UcxPeer> peer = it->second;
    peers_.erase(it);
    peer->error = absl::CancelledError(absl::StrCat("KV peer '", peer->agent, "' removed"));
    ClosePeerState(*peer);
  }

  void StartBatch(PeerId peer_id, TransferId id, const std::byte* base,
                  const std::vector<CopyOp>& ops, const std::string& notification) {
    auto it = peers_.find(peer_id);
    if (it == peers_.end()) {
      table_.Complete(id, absl::CancelledError(absl::StrCat("KV peer ", peer_id, " removed")));
      return;
    }
    std::shared_ptr<UcxPeer> peer = it->second;
    // A peer seen alive in the last kAliveReuseNs is not polled again: back-to-back batches
    // would pay a syscall each (a fifth of a 256 KiB batch over posix), and a peer that dies
    // right after a check is the same race either way (its batches fail from the next check).
    if (peer->pid == 0 || MonotonicNanos() - peer->alive_at_ns > kAliveReuseNs) CheckAlive(*peer);
    if (!peer->error.ok()) {
      table_.Complete(id, peer->error);
      return;
    }
    auto* batch = new Batch{this, id, peer, notification, {}};
    if (peer->am_data) {
      if (absl::Status s = SendData(*batch, base, ops); !s.ok()) {
        table_.Complete(id, std::move(s));
        delete batch;
        return;
      }
    }
    ucp_request_param_t put{};
    // Device pools: say so, instead of UCX looking the type up for every put.
    put.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE;
    put.memory_type = pool_memory_type_;
    const bool stream = peer->direct != nullptr && TotalBytes(ops) > stream_bytes_;
    if (stream) {
      // Too large for the last-level cache: the copies a posix put would make, with streaming
      // stores, into the peer's pool as UCX mapped it; the fence orders them before the
      // notification below (the flush covers only UCX's own operations).
      for (const CopyOp& op : ops) StreamCopy(peer->direct + op.dst, base + op.src, op.bytes);
      StoreFence();
    }
    for (const CopyOp& op : peer->am_data || stream ? std::span<const CopyOp>()
                                                    : std::span<const CopyOp>(ops)) {
      ucs_status_ptr_t r = ucp_put_nbx(peer->ep, base + op.src, op.bytes,
                                       peer->remote_base + op.dst, peer->rkey, &put);
      if (UCS_PTR_IS_ERR(r)) {
        table_.Complete(id, PeerStatus(*peer, "ucp_put_nbx", UCS_PTR_STATUS(r)));
        delete batch;
        return;
      }
      // The flush below covers completion; the request is released when it completes.
      if (r != nullptr) ucp_request_free(r);
    }
    ++batches_[id];
    ucp_request_param_t flush{};
    flush.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    flush.cb.send = &UcxTransport::OnFlushed;
    flush.user_data = batch;
    ucs_status_ptr_t r = ucp_ep_flush_nbx(peer->ep, &flush);
    if (r == nullptr) {
      Flushed(batch, UCS_OK);
    } else if (UCS_PTR_IS_ERR(r)) {
      Flushed(batch, UCS_PTR_STATUS(r));
    }
  }

  // The batch's runs as eager data messages (never rendezvous: that would make the receiver
  // answer), at most kMaxDataAmBytes each; the flush that follows covers their completion.
  absl::Status SendData(Batch& batch, const std::byte* base, const std::vector<CopyOp>& ops) {
    size_t messages = 0;
    for (const CopyOp& op : ops) messages += (op.bytes + kMaxDataAmBytes - 1) / kMaxDataAmBytes;
    batch.data_headers.reserve(messages);  // no reallocation: UCX holds pointers into it
    ucp_request_param_t am{};
    am.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    am.flags = UCP_AM_SEND_FLAG_EAGER;
    for (const CopyOp& op : ops) {
      for (uint64_t offset = 0; offset < op.bytes; offset += kMaxDataAmBytes) {
        const size_t bytes = std::min<uint64_t>(kMaxDataAmBytes, op.bytes - offset);
        const uint64_t& header = batch.data_headers.emplace_back(op.dst + offset);
        ucs_status_ptr_t r = ucp_am_send_nbx(batch.peer->ep, kDataAmId, &header, sizeof(header),
                                             base + op.src + offset, bytes, &am);
        if (UCS_PTR_IS_ERR(r)) return PeerStatus(*batch.peer, "am_send (data)", UCS_PTR_STATUS(r));
        if (r != nullptr) ucp_request_free(r);  // released when it completes
      }
    }
    return absl::OkStatus();
  }

  void Flushed(Batch* batch, ucs_status_t status) {
    if (status != UCS_OK) return Finish(batch, PeerStatus(*batch->peer, "flush", status));
    if (batch->notification.empty()) return Finish(batch, absl::OkStatus());
    ucp_request_param_t am{};
    am.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
    am.cb.send = &UcxTransport::OnNotificationSent;
    am.user_data = batch;
    am.flags = UCP_AM_SEND_FLAG_EAGER;
    ucs_status_ptr_t r = ucp_am_send_nbx(batch->peer->ep, kNotifyAmId, sender_header_.data(),
                                         sender_header_.size(), batch->notification.data(),
                                         batch->notification.size(), &am);
    if (r == nullptr) {
      Finish(batch, absl::OkStatus());
    } else if (UCS_PTR_IS_ERR(r)) {
      Finish(batch, PeerStatus(*batch->peer, "am_send", UCS_PTR_STATUS(r)));
    }
  }

  void Finish(Batch* batch, absl::Status status) {
    table_.Complete(batch->id, std::move(status));
    batches_.erase(batch->id);
    delete batch;
  }

  // A failed operation on a peer whose endpoint reported an error is that error (Unavailable).
  static absl::Status PeerStatus(const UcxPeer& peer, const std::string& what, ucs_status_t s) {
    if (!peer.error.ok()) return peer.error;
    return UcsError(absl::StrCat(what, " to KV peer '", peer.agent, "'"), s);
  }

  void Shutdown() {
    for (auto& [id, peer] : peers_) {
      peer->error = absl::CancelledError("KV transport shutting down");
      ClosePeerState(*peer);
    }
    peers_.clear();
    // Cancelled requests have run their callbacks inside the closes.
    while (ucp_worker_progress(worker_) != 0) {
    }
  }

  static void OnFlushed(void* request, ucs_status_t status, void* user_data) {
    auto* batch = static_cast<Batch*>(user_data);
    ucp_request_free(request);
    batch->owner->Flushed(batch, status);
  }

  static void OnNotificationSent(void* request, ucs_status_t status, void* user_data) {
    auto* batch = static_cast<Batch*>(user_data);
    ucp_request_free(request);
    batch->owner->Finish(batch, status == UCS_OK ? absl::OkStatus()
                                                 : PeerStatus(*batch->peer, "am_send", status));
  }

  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
    auto* peer = static_cast<UcxPeer*>(arg);
    if (peer->error.ok()) {
      peer->error = absl::UnavailableError(
          absl::StrCat("KV peer '", peer->agent, "' failed: ", ucs_status_string(status)));
    }
    peer->dead->store(true);
    ComponentLogger("transfer")->warn("{}", peer->error.ToString());
  }

  // A data message (kDataAmId): its bytes at the offset its header names in this pool. Runs on
  // the progress thread, before any notification the sender sent after it.
  static ucs_status_t OnData(void* arg, const void* header, size_t header_length, void* data,
                             size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<UcxTransport*>(arg);
    std::byte* pool = self->pool_data_.load(std::memory_order_acquire);
    uint64_t dst = 0;
    if (header_length == sizeof(dst)) std::memcpy(&dst, header, sizeof(dst));
    if (pool == nullptr || header_length != sizeof(dst) ||
        (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 ||  // sent eager: never
        dst > self->pool_bytes_.load(std::memory_order_relaxed) ||
        length > self->pool_bytes_.load(std::memory_order_relaxed) - dst) {
      self->log_->error("agent {}: dropped a malformed KV data message ({} bytes at {})",
                        self->options_.agent_name, length, dst);
      return UCS_OK;
    }
    std::memcpy(pool + dst, data, length);
    return UCS_OK;
  }

  static ucs_status_t OnNotification(void* arg, const void* header, size_t header_length,
                                     void* data, size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<UcxTransport*>(arg);
    // Anyone who learnt this worker's address can send it active messages: only a sender that
    // presents the cluster credential announces KV. Bounded before anything is kept.
    absl::StatusOr<SenderHeader> sender =
        DecodeSenderHeader(std::string_view(static_cast<const char*>(header), header_length));
    absl::Status ok = sender.ok() ? CheckSenderCredential(self->options_.peer_credential,
                                                          sender->credential)
                                  : sender.status();
    if (ok.ok() && length > kMaxNotificationBytes) {
      ok = absl::InvalidArgumentError(absl::StrCat("notification of ", length, " bytes"));
    }
    if (!ok.ok()) {
      const uint64_t n = self->notifications_refused_.fetch_add(1) + 1;
      if (n <= 10 || n % 1000 == 0) {
        self->log_->warn("agent {}: dropped a KV notification from '{}': {} ({} so far)",
                         self->options_.agent_name,
                         absl::CEscape(sender.ok() ? sender->agent : std::string()), ok.ToString(),
                         n);
      }
      return UCS_OK;
    }
    self->inbox_.Push({std::move(sender->agent),
                       std::string(static_cast<const char*>(data), length)});
    return UCS_OK;
  }

  const TransportOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  NotificationInbox inbox_;
  BatchTable table_;
  std::shared_ptr<UcxContext> context_;
  ucp_worker_h worker_ = nullptr;
  std::string worker_address_;
  // What each notification carries ahead of its message (sender_credential.h).
  const std::string sender_header_ =
      EncodeSenderHeader(options_.peer_credential, options_.agent_name);
  std::atomic<uint64_t> notifications_refused_{0};
  ucp_mem_h own_memh_ = nullptr;  // set when RegisterPool mapped memory UCX did not allocate
  // Of the registered pool; written before the first batch is posted, read by the progress
  // thread (the command queue's mutex orders the two).
  ucs_memory_type_t pool_memory_type_ = UCS_MEMORY_TYPE_HOST;
  // The registered pool when it is in host memory, for OnData; null until then.
  std::atomic<std::byte*> pool_data_{nullptr};
  std::atomic<size_t> pool_bytes_{0};
  // Batches above this many bytes to a mapped peer are copied with streaming stores: 3/4 of the
  // last-level cache (where glibc's memcpy, and so ucx_perftest's one message, starts
  // streaming), at most kMaxCachedBatchBytes; PDSERVE_UCX_STREAM_BYTES overrides it.
  const uint64_t stream_bytes_ = BytesFromEnv(
      "PDSERVE_UCX_STREAM_BYTES", std::min<uint64_t>(LastLevelCacheBytes() / 4 * 3,
                                                     kMaxCachedBatchBytes));
  int command_fd_ = -1;
  int epoll_fd_ = -1;
  bool can_sleep_ = false;
  std::atomic<PeerId> next_peer_{1};

  mutable std::mutex mu_;  // std::mutex: see worker_mu_
  const KvCache* pool_ = nullptr;
  PoolDescriptor descriptor_;
  absl::flat_hash_map<PeerId, std::shared_ptr<const PeerInfo>> peer_info_;
  std::set<std::string> lanes_;
  uint64_t registrations_ = 0;
  uint64_t peers_loaded_ = 0;

  std::mutex command_mu_;  // std::mutex: see worker_mu_
  std::deque<std::function<void()>> commands_;

  // True while the progress thread is (about to be) asleep: Post and inline batches left in
  // flight must wake it.
  std::atomic<bool> sleeping_{false};

  // Every UCP call on worker_ and the progress-thread state below: held by the progress
  // thread for one turn at a time and by a submitting thread for an inline batch. Taken before
  // command_mu_ when both are. A std::mutex: Debian's Abseil keeps held-lock bookkeeping on
  // every absl::Mutex operation, and this one is taken for every batch.
  std::mutex worker_mu_;
  const uint64_t inline_bytes_ = BytesFromEnv("PDSERVE_UCX_INLINE_BYTES", kDefaultInlineBytes);

  // Progress-thread state (also touched by inline batches), under worker_mu_.
  bool stopping_ = false;
  int64_t last_liveness_check_ = 0;
  std::map<PeerId, std::shared_ptr<UcxPeer>> peers_;
  absl::flat_hash_map<TransferId, int> batches_;  // in flight (flush or notification pending)
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeUcxTransport(const TransportOptions& options) {
  return UcxTransport::Create(options);
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxDevicePoolMemory(
    size_t bytes, const std::string& listen_host) {
  absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get(listen_host);
  if (!context.ok()) return context.status();
  if (!(*context)->cuda_memory()) return NoCudaMemoryError(**context);
#if defined(PDSERVE_HAS_CUDA)
  return cuda::AllocateDeviceMemory(bytes, 0);
#else
  return absl::FailedPreconditionError(
      "ucx with a KV pool in device memory: this pdserve was built without CUDA");
#endif
}

std::string UcxRuntimeSummary() {
  absl::StatusOr<std::shared_ptr<UcxContext>> context = UcxContext::Get();
  return context.ok() ? (*context)->summary() : context.status().ToString();
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateUcxPoolMemory(size_t bytes,
                                                                const std::string& listen_host) {
  absl::StatusOr<std::unique_ptr<UcxPoolMemory>> memory =
      UcxPoolMemory::Allocate(bytes, listen_host);
  if (!memory.ok()) return memory.status();
  return std::unique_ptr<KvMemory>(std::move(*memory));
}

}  // namespace pdserve::transfer::ucx
