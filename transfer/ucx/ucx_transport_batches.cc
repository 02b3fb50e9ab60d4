// The send side: Submit plans a batch and issues it inline (host memory, worker free) or posts
// it to the progress thread; StartBatch puts its runs (or streams them into a mapped pool, or
// sends them as data messages), flushes, then sends the notification; the callbacks complete
// the batch in the table that Poll / Wait read.
#include <sched.h>
#include <ucp/api/ucp.h>

#include <algorithm>
#include <span>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "transfer/stream_copy.h"
#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {
namespace {

// Runs longer than this go as several data messages: the receiver assembles each whole message
// in a buffer of its size before copying it into the pool.
constexpr size_t kMaxDataAmBytes = size_t{256} << 10;
constexpr int64_t kAliveReuseNs = 20'000;  // see StartBatch
constexpr int64_t kInlineDeviceWaitNs = 200'000;  // see FinishDeviceCopiesHere

}  // namespace

absl::StatusOr<TransferId> UcxEngine::Post(const std::shared_ptr<EnginePeer>& handle,
                                           const PlannedBatch& batch) {
  const auto& info = static_cast<const UcxPeerHandle&>(*handle);
  if (info.dead->load()) {
    return absl::UnavailableError(
        absl::StrCat("KV peer '", info.agent, "' is gone (request ", batch.notification, ")"));
  }
  // Set by Register before the front published the pool, which any Post comes after.
  const KvCache* pool = pool_;
  absl::StatusOr<TransferId> id = table_.Begin(batch.bytes, static_cast<uint32_t>(batch.ops.size()));
  if (!id.ok()) return id.status();
  const int64_t delay_start = ProgressDelayNs();
  // Device pools: only the copy's launch happens inline (to a device_direct peer, whatever the
  // size), and the progress thread, woken beside the copy, sends the notification once it
  // ended. Launched on the progress thread instead (PDSERVE_UCX_DEVICE_INLINE=0), the hand-off
  // before the launch cost serving ~0.1 ms a batch: KV transfer mean 1.18-1.41x cuda-ipc's,
  // against 1.03-1.37x inline (H200, 2026-12-05, docs/results/gpu-h200-2026-12-05-ucx-device).
  const bool inline_size =
      (pool_memory_type_ == UCS_MEMORY_TYPE_CUDA && device_inline_) ||
      (batch.bytes <= inline_bytes_ && pool_memory_type_ == UCS_MEMORY_TYPE_HOST);
  if (inline_size &&
      IssueInline(info.id, *id, pool->base(), batch.ops, batch.notification, delay_start)) {
    return *id;
  }
  // The progress thread takes a copy of the runs (the front's are reused by the next batch).
  PostCommand([this, peer = info.id, id = *id,
               ops = std::vector<CopyOp>(batch.ops.begin(), batch.ops.end()),
               notification = batch.notification, base = pool->base(), delay_start]() mutable {
    StartBatch(peer, id, base, ops, notification, delay_start);
  });
  return *id;
}

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
bool UcxEngine::IssueInline(PeerId peer, TransferId id, const std::byte* base,
                            std::span<const CopyOp> ops, const std::string& notification,
                               int64_t delay_start) {
  std::unique_lock<std::mutex> worker(worker_mu_, std::try_to_lock);
  if (!worker.owns_lock()) return false;
  {
    std::lock_guard lock(command_mu_);
    if (!commands_.empty()) return false;
  }
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second->am_data) return false;
  // UCX's CUDA puts run in the progress thread's context; only our own copy kernel goes inline.
  if (pool_memory_type_ == UCS_MEMORY_TYPE_CUDA && it->second->device_direct == nullptr) {
    return false;
  }
  StartBatch(peer, id, base, ops, notification, delay_start);
  if (!device_pending_.empty() && sleeping_.load()) FinishDeviceCopiesHere();
  const bool left_in_flight = !batches_.empty();
  worker.unlock();
  // The progress thread sets sleeping_ before it looks at batches_ (under worker_mu_) a last
  // time: it either saw this batch or we see it asleep.
  if (left_in_flight) Wake();
  return true;
}

// A device copy launched inline while the progress thread sleeps: the progress thread's
// wake-up left a 512-token request's copy (~0.04 ms) done long before anyone looked (H100,
// serving at 1 req/s, 40 prompts: KV transfer 0.28 ms against cuda-ipc's 0.19, shortest 0.22
// against 0.12; at 2048 tokens the longer copy hid most of it: 0.50 against 0.44), so this
// thread watches the copy for up to kInlineDeviceWaitNs and, once it ended, sends the
// notification itself. A longer copy is left to the progress thread, woken after the wait.
// Under worker_mu_: the sleeping progress thread does not need it, and other submitters post.
void UcxEngine::FinishDeviceCopiesHere() {
  const int64_t until = MonotonicNanos() + kInlineDeviceWaitNs;
  while (!device_pending_.empty() && MonotonicNanos() < until) {
    if (!PollDeviceCopies()) std::this_thread::yield();
  }
}

void UcxEngine::StartBatch(PeerId peer_id, TransferId id, const std::byte* base,
                           std::span<const CopyOp> ops, const std::string& notification,
                              int64_t delay_start) {
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
  batch->delay_start = delay_start;
  if (register_per_batch_ && !ops.empty()) {
    // The span the batch reads, registered for it alone (the study knob; see the header).
    uint64_t lo = ops.front().src, hi = 0;
    for (const CopyOp& op : ops) {
      lo = std::min(lo, op.src);
      hi = std::max(hi, op.src + op.bytes);
    }
    ucp_mem_map_params_t params{};
    params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                        UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    params.address = const_cast<std::byte*>(base + lo);
    params.length = hi - lo;
    params.memory_type = pool_memory_type_;
    if (ucs_status_t s = ucp_mem_map(context_->handle(), &params, &batch->batch_memh);
        s != UCS_OK) {
      table_.Complete(id, UcsError("ucp_mem_map (per-batch registration)", s));
      delete batch;
      return;
    }
    batch_registrations_.fetch_add(1);
  }
  if (peer->receiver_delay != nullptr) batch->receiver_delay_start = peer->receiver_delay->ReadNs();
  if (peer->am_data) {
    if (absl::Status s = SendData(*batch, base, ops); !s.ok()) {
      table_.Complete(id, std::move(s));
      Discard(batch);
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
  const bool device = peer->device_direct != nullptr;
  if (device) {
    if (absl::Status s = EnqueueDeviceCopy(*batch, peer->device_direct, base, ops); !s.ok()) {
      table_.Complete(id, std::move(s));
      Discard(batch);
      return;
    }
  }
  for (const CopyOp& op : peer->am_data || stream || device ? std::span<const CopyOp>()
                                                             : std::span<const CopyOp>(ops)) {
    ucs_status_ptr_t r = ucp_put_nbx(peer->ep, base + op.src, op.bytes, peer->remote_base + op.dst,
                                     peer->rkey, &put);
    if (UCS_PTR_IS_ERR(r)) {
      table_.Complete(id, PeerStatus(*peer, "ucp_put_nbx", UCS_PTR_STATUS(r)));
      Discard(batch);
      return;
    }
    // The flush below covers completion; the request is released when it completes.
    if (r != nullptr) ucp_request_free(r);
  }
  ++batches_[id];
  peer->in_flight.insert(batch);
  if (device) {
    // Flushed once its copy completed (PollDeviceCopies): the notification follows the bytes.
    device_pending_.push_back(batch);
    return;
  }
  ucp_request_param_t flush{};
  flush.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  flush.cb.send = &UcxEngine::OnFlushed;
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
absl::Status UcxEngine::SendData(Batch& batch, const std::byte* base,
                                 std::span<const CopyOp> ops) {
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

void UcxEngine::Flushed(Batch* batch, ucs_status_t status) {
  // Failed already (FailInFlight), or its peer's endpoint closed meanwhile: no notification.
  if (batch->abandoned) return Finish(batch, absl::OkStatus());
  if (batch->peer->ep == nullptr) {
    return Finish(batch, batch->peer->error.ok() ? absl::CancelledError("KV peer closed")
                                                 : batch->peer->error);
  }
  if (status != UCS_OK) return Finish(batch, PeerStatus(*batch->peer, "flush", status));
  if (batch->notification.empty()) return Finish(batch, absl::OkStatus());
  ucp_request_param_t am{};
  am.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  am.cb.send = &UcxEngine::OnNotificationSent;
  am.user_data = batch;
  am.flags = UCP_AM_SEND_FLAG_EAGER;
  ucs_status_ptr_t r =
      ucp_am_send_nbx(batch->peer->ep, kNotifyAmId, sender_header_.data(), sender_header_.size(),
                      batch->notification.data(), batch->notification.size(), &am);
  if (r == nullptr) {
    Finish(batch, absl::OkStatus());
  } else if (UCS_PTR_IS_ERR(r)) {
    Finish(batch, PeerStatus(*batch->peer, "am_send", UCS_PTR_STATUS(r)));
  }
}

void UcxEngine::Discard(Batch* batch) {
  if (batch->batch_memh != nullptr) ucp_mem_unmap(context_->handle(), batch->batch_memh);
  delete batch;
}

void UcxEngine::Finish(Batch* batch, absl::Status status) {
  batch->peer->in_flight.erase(batch);
  if (!batch->abandoned) {
    // The time the progress thread, which drives every batch (and sends a tcp peer's data
    // itself), was runnable without a core while this one was in flight; for a same-host tcp
    // peer, plus its receiving thread's (it copies the data in; the two add up, as local's
    // copy threads' waits do).
    int64_t wait = 0;
    const int64_t delay_now = batch->delay_start >= 0 ? ProgressDelayNs() : -1;
    if (delay_now > batch->delay_start) wait += delay_now - batch->delay_start;
    if (batch->receiver_delay_start >= 0) {
      const int64_t receiver_now = batch->peer->receiver_delay->ReadNs();
      if (receiver_now > batch->receiver_delay_start) {
        wait += receiver_now - batch->receiver_delay_start;
      }
    }
    if (wait > 0) table_.SetCopyWait(batch->id, wait);
    table_.Complete(batch->id, std::move(status));
    batches_.erase(batch->id);
  }
  // After completion (or abandonment): UCX no longer reads the span for this batch.
  Discard(batch);
}

// A failed operation on a peer whose endpoint reported an error is that error (Unavailable).
absl::Status UcxEngine::PeerStatus(const UcxPeer& peer, const std::string& what,
                                      ucs_status_t s) {
  if (!peer.error.ok()) return peer.error;
  return UcsError(absl::StrCat(what, " to KV peer '", peer.agent, "'"), s);
}

void UcxEngine::OnFlushed(void* request, ucs_status_t status, void* user_data) {
  auto* batch = static_cast<Batch*>(user_data);
  ucp_request_free(request);
  batch->owner->Flushed(batch, status);
}

void UcxEngine::OnNotificationSent(void* request, ucs_status_t status, void* user_data) {
  auto* batch = static_cast<Batch*>(user_data);
  ucp_request_free(request);
  batch->owner->Finish(
      batch, status == UCS_OK ? absl::OkStatus() : PeerStatus(*batch->peer, "am_send", status));
}

}  // namespace pdserve::transfer::ucx
