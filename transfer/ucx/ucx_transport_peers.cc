// Loading peers: a descriptor becomes a UCP endpoint (connected and wired up before LoadPeer
// returns), an rkey and, over shared memory, a mapping of the peer's pool; the lanes UCX chose;
// the liveness of same-host peers (pid watch) and endpoint errors; closing. Everything but
// LoadPeer / RemovePeer's bookkeeping runs on the progress thread.
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "transfer/mapped_range.h"
#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {
namespace {

constexpr int64_t kConnectTimeoutNs = 5'000'000'000;

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

}  // namespace

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

absl::StatusOr<std::shared_ptr<EnginePeer>> UcxEngine::Connect(const PoolDescriptor& descriptor,
                                                               const KvGeometry&) {
  // The front parsed the descriptor and checked its geometry; the fields below are ucx's.
  const PoolDescriptor* d = &descriptor;
  auto field = [d](const char* key) {
    auto it = d->fields.find(key);
    return it == d->fields.end() ? std::string() : it->second;
  };
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
    if (absl::SimpleAtoi(field("pid"), &pid) && absl::SimpleAtoi(field("start_time"), &start)) {
      peer->pid = pid;
      peer->start_time = start;
      // Only a number: a bad one opens nothing (ThreadRunDelay::OfThread) and is ignored.
      int tid = 0;
      if (absl::SimpleAtoi(field("progress_tid"), &tid) && tid > 0) peer->progress_tid = tid;
      if (ProcessStartTime(pid) != start) {
        return absl::FailedPreconditionError(
            absl::StrCat("KV peer '", d->agent, "' (pid ", pid, ") is gone: stale descriptor"));
      }
    }
  }
  absl::StatusOr<absl::Status> connected =
      // By value: a command the thread runs after RunOnWorker gave up must not see dead locals.
      RunOnWorker([this, id, peer, address, rkey] {
        return ConnectOnWorker(id, peer, address, rkey);
      });
  if (!connected.ok()) return connected.status();
  if (!connected->ok()) return *connected;
  return std::make_shared<UcxPeerHandle>(id, d->agent, peer->dead);
}

void UcxEngine::Disconnect(EnginePeer& handle) {
  const PeerId id = static_cast<UcxPeerHandle&>(handle).id;
  absl::StatusOr<absl::Status> closed = RunOnWorker([this, id] {
    ClosePeer(id);
    return absl::OkStatus();
  });
  if (!closed.ok()) {
    // The progress thread did not answer (kCommandTimeout): the close stays queued and runs
    // when it does; the front has already forgotten the peer, so nothing new goes to it.
    log_->warn("agent {}: closing KV peer {}: {}", options_.agent_name, id,
               closed.status().ToString());
  }
}

absl::Status UcxEngine::ConnectOnWorker(PeerId id, const std::shared_ptr<UcxPeer>& peer,
                                   const std::string& address, const std::string& rkey) {
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
  if (same_host && context_->shared_memory()) {
    // UCX 1.13 has peer-failure handling for none of its shared-memory transports: asked for
    // it, it picks tcp even between two processes of one host (~10x slower). Our pid watch
    // covers a same-host peer's death instead, so connect without it.
    created = CreateEndpoint(*peer, address, UCP_ERR_HANDLING_MODE_NONE);
    if (created == UCS_OK && !AllIntraHost(ParseLanes(EpInfo(peer->ep)))) {
      // A network lane all the same (UCX_TLS=tcp,cma: active messages on tcp). Without
      // peer-failure handling UCX aborts on some errors of such a lane once the peer dies, so
      // it gets the handling, and whatever transports UCX can give with it.
      DiscardEndpoint(*peer);
      created = UCS_ERR_UNREACHABLE;
    }
    peer->watched_only = created == UCS_OK;
  }
  if (peer->ep == nullptr) {
    created = CreateEndpoint(*peer, address, UCP_ERR_HANDLING_MODE_PEER);
    if (created == UCS_ERR_UNREACHABLE && same_host) {
      // No transport to it has a peer failure handler: rely on watching its pid alone.
      created = CreateEndpoint(*peer, address, UCP_ERR_HANDLING_MODE_NONE);
      peer->watched_only = created == UCS_OK;
    }
  }
  if (created != UCS_OK) {
    return absl::FailedPreconditionError(absl::StrCat("cannot reach KV peer '", peer->agent, "' (",
                                                      ucs_status_string(created),
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
  // A mapped pool is written with our own stores, so its size is checked against the mapping
  // (the descriptor's block count is the peer's word; mapped_range.h, device_range.h).
  const std::string whose = absl::StrCat("ucx: KV pool of agent '", peer->agent, "'");
  absl::Status reach;
  if (peer->remote_host && pool_memory_type_ == UCS_MEMORY_TYPE_HOST) {
    void* mapped = nullptr;
    if (ucp_rkey_ptr(peer->rkey, peer->remote_base, &mapped) == UCS_OK) {
      reach = CheckFileMapping(mapped, peer->remote_bytes, whose);
      if (reach.ok()) {
        peer->direct = static_cast<std::byte*>(mapped);
        PopulateForWrite(mapped, peer->remote_bytes);
      }
    }
  }
  if (same_host && !peer->remote_host && pool_memory_type_ == UCS_MEMORY_TYPE_CUDA) {
    // UCX's cuda_ipc maps the peer's device pool here (the CUDA IPC handle its rkey carries);
    // on a peer GPU without peer access, or a UCX without rkey_ptr for it, this fails: puts.
    // Checked with PDSERVE_UCX_DEVICE_PUTS=1 too: UCX's puts do not check the peer's claim.
    void* mapped = nullptr;
    if (ucp_rkey_ptr(peer->rkey, peer->remote_base, &mapped) == UCS_OK && mapped != nullptr) {
      reach = CheckDeviceMapping(mapped, peer->remote_bytes, whose);
      if (reach.ok() && !device_puts_) peer->device_direct = static_cast<std::byte*>(mapped);
    }
  }
  if (!reach.ok()) {
    ClosePeerState(*peer);
    return reach;
  }
  const std::string info = EpInfo(peer->ep);
  // "put[0]: 0..<short>..": UCX has a put lane; without one it would emulate puts.
  peer->am_data = peer->remote_host && pool_memory_type_ == UCS_MEMORY_TYPE_HOST &&
                  info.find("put[") == std::string::npos;
  peer->lanes = ParseLanes(info);
  const std::vector<std::string> network = NetworkTransports(peer->lanes);
  peer->same_host_network = same_host && !network.empty();
  peer->transports = TransportSummary(peer->lanes);
  if (peer->am_data) absl::StrAppend(&peer->transports, " (data as active messages)");
  if (peer->am_data && same_host && peer->progress_tid > 0) {
    auto delay = std::make_shared<ThreadRunDelay>(
        ThreadRunDelay::OfThread(peer->pid, peer->progress_tid));
    if (delay->ReadNs() >= 0) peer->receiver_delay = std::move(delay);
  }
  if (peer->direct != nullptr) {
    absl::StrAppend(&peer->transports, " (batches > ", stream_bytes_ >> 20,
                    " MiB: streaming stores through ucp_rkey_ptr)");
  }
  if (peer->device_direct != nullptr) {
    absl::StrAppend(&peer->transports, " (device pools: batched copy kernel through ucp_rkey_ptr)");
  }
  if (peer->same_host_network) {
    absl::StrAppend(&peer->transports, " (same host over ", absl::StrJoin(network, "+"),
                    ": no shared memory)");
  }
  const bool tcp_despite_rdma =
      !same_host && TcpDespiteRdma(peer->lanes, context_->rdma_ports());
  if (tcp_despite_rdma) {
    absl::StrAppend(&peer->transports, " (tcp although this host has RDMA ports)");
  }
  peers_[id] = peer;
  RecordTransports(*peer);
  {
    std::lock_guard lock(mu_);
    peer_transports_[id] = peer->transports;
  }
  // The logger escapes what the peer's descriptor put into these (its agent name).
  log_->info("agent {}: connected to KV peer '{}' over {}; {}; {}", options_.agent_name,
             peer->agent, peer->transports, DescribeLanes(peer->lanes),
             peer->watched_only ? "failures: pid watch (no UCX peer-failure handling)"
                                : absl::StrCat("failures: UCX peer-failure handling",
                                               same_host ? " and pid watch" : ""));
  if (peer->same_host_network) {
    log_->warn(
        "agent {}: KV peer '{}' runs on this host but UCX reaches it over {} (UCX_TLS={}): "
        "shared memory is not used; leave UCX_TLS unset or include posix,cma",
        options_.agent_name, peer->agent, absl::StrJoin(network, "+"),
        context_->tls().empty() ? "unset" : context_->tls());
  }
  if (tcp_despite_rdma) {
    log_->warn(
        "agent {}: KV peer '{}' on another host is reached over {} although this host has "
        "active RDMA ports ({}): its KV moves at tcp speed; check the peer's RDMA devices, "
        "UCX_TLS ({}) and UCX_NET_DEVICES",
        options_.agent_name, peer->agent, absl::StrJoin(network, "+"),
        absl::StrJoin(context_->rdma_ports(), ","),
        context_->tls().empty() ? "unset" : context_->tls());
  }
  return absl::OkStatus();
}

ucs_status_t UcxEngine::CreateEndpoint(UcxPeer& peer, const std::string& address,
                                          ucp_err_handling_mode_t mode) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(address.data());
  params.err_mode = mode;
  params.err_handler.cb = &UcxEngine::OnEndpointError;
  params.err_handler.arg = &peer;
  const ucs_status_t s = ucp_ep_create(worker_, &params, &peer.ep);
  if (s != UCS_OK) peer.ep = nullptr;
  return s;
}

// Closes an endpoint to a live peer that was never used: gracefully, as a forced close needs
// peer-failure handling on both sides (ucp.h) and this one has none.
void UcxEngine::DiscardEndpoint(UcxPeer& peer) {
  ucp_request_param_t params{};
  WaitRequest(ucp_ep_close_nbx(peer.ep, &params), kConnectTimeoutNs);
  peer.ep = nullptr;
}

// ucp_ep_print_info's text: the endpoint's lanes and its protocols' ranges.
std::string UcxEngine::EpInfo(ucp_ep_h ep) {
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

void UcxEngine::RecordTransports(const UcxPeer& peer) {
  std::lock_guard lock(mu_);
  lanes_.insert(peer.transports);
  if (peer.same_host_network) ++same_host_network_peers_;
}

std::string UcxEngine::Transports(const EnginePeer& handle) const {
  std::lock_guard lock(mu_);
  auto it = peer_transports_.find(static_cast<const UcxPeerHandle&>(handle).id);
  return it == peer_transports_.end() ? "" : it->second;
}

void UcxEngine::ClosePeer(PeerId id) {
  {
    std::lock_guard lock(mu_);
    peer_transports_.erase(id);
  }
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  std::shared_ptr<UcxPeer> peer = it->second;
  peers_.erase(it);
  peer->error = absl::CancelledError(absl::StrCat("KV peer '", peer->agent, "' removed"));
  ClosePeerState(*peer);
}

void UcxEngine::ClosePeerState(UcxPeer& peer) {
  if (peer.ep != nullptr && !peer.watched_only) {
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = UCP_EP_CLOSE_FLAG_FORCE;  // cancels what is in flight: no more bytes land
    WaitRequest(ucp_ep_close_nbx(peer.ep, &params), kConnectTimeoutNs);
  } else if (peer.ep != nullptr) {
    // UCX refuses to force-close an endpoint without peer-failure handling (ucp_ep_close_nbx
    // answers UCS_ERR_INVALID_PARAM and cancels nothing), and a send to a dead peer whose
    // shared-memory queue is full never completes: batches in flight to it would hang until
    // their callers' deadlines. They fail here instead. A live peer's endpoint is closed by
    // flushing it; a dead one's stays until ucp_worker_destroy, which a close would wait for.
    FailInFlight(peer);
    if (!ProcessGone(peer)) {
      ucp_request_param_t params{};
      WaitRequest(ucp_ep_close_nbx(peer.ep, &params), kConnectTimeoutNs);
    }
  }
  peer.ep = nullptr;
  peer.direct = nullptr;  // the mapping goes with the rkey
  if (peer.device_direct != nullptr) {
    WaitDeviceCopies();  // no kernel may still write the mapping the rkey takes with it
    peer.device_direct = nullptr;
  }
  if (peer.rkey != nullptr) {
    ucp_rkey_destroy(peer.rkey);
    peer.rkey = nullptr;
  }
  peer.dead->store(true);
}

// Completes every batch in flight to `peer` with its error (Cancelled if none is set); UCX's
// late callbacks for them only free them (Batch::abandoned).
void UcxEngine::FailInFlight(UcxPeer& peer) {
  const absl::Status status =
      peer.error.ok() ? absl::CancelledError(absl::StrCat("KV peer '", peer.agent, "' closed"))
                      : peer.error;
  for (Batch* batch : peer.in_flight) {
    if (batch->abandoned) continue;
    batch->abandoned = true;
    table_.Complete(batch->id, status);
    batches_.erase(batch->id);
  }
}

// Marks a same-host peer whose process is gone as failed and cancels what is in flight to it.
void UcxEngine::CheckAlive(UcxPeer& peer) {
  if (peer.pid == 0 || !peer.error.ok()) return;
  if (!ProcessGone(peer)) {
    peer.alive_at_ns = MonotonicNanos();
    return;
  }
  peer.error =
      absl::UnavailableError(absl::StrCat("KV peer '", peer.agent, "' (pid ", peer.pid, ") died"));
  log_->warn("agent {}: {}", options_.agent_name, peer.error.ToString());
  ClosePeerState(peer);
}

bool UcxEngine::ProcessGone(const UcxPeer& peer) {
  if (peer.pidfd >= 0) {
    pollfd p{peer.pidfd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
  }
  return ProcessStartTime(peer.pid) != peer.start_time;
}

void UcxEngine::OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* peer = static_cast<UcxPeer*>(arg);
  if (peer->error.ok()) {
    peer->error = absl::UnavailableError(
        absl::StrCat("KV peer '", peer->agent, "' failed: ", ucs_status_string(status)));
  }
  peer->dead->store(true);
  ComponentLogger("transfer")->warn("{}", peer->error.ToString());
}

}  // namespace pdserve::transfer::ucx
