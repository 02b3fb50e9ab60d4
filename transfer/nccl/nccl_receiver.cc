#include "transfer/nccl/nccl_receiver.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "transfer/copy_plan.h"

namespace pdserve::transfer::nccl {

NcclReceiver::Sender::~Sender() {
  comm.reset();  // aborts first: the kernels that use the stream and the events end
  for (Pending& p : pending) {
    if (p.event != nullptr) cudaEventDestroy(p.event);
  }
  if (stream != nullptr) cudaStreamDestroy(stream);
}

NcclReceiver::~NcclReceiver() { senders_.clear(); }

void NcclReceiver::CutOff(const std::string& sender, const std::string& why) {
  ComponentLogger("transfer")
      ->warn("agent {}: nccl: cut off KV sender '{}' (its receives aborted, pending "
             "notifications dropped): {}",
             agent_, absl::CEscape(sender), absl::CEscape(why));
  senders_.erase(sender);
  ++cut_off_;
}

void NcclReceiver::OnSenderLost(const std::string& sender) {
  if (senders_.contains(sender)) CutOff(sender, "its notification channel closed");
}

void NcclReceiver::OnMessage(const std::string& sender, const std::string& bytes) {
  absl::StatusOr<ControlMessage> message = Decode(bytes);
  if (!message.ok()) {
    CutOff(sender, message.status().ToString());
    return;
  }
  if (auto* init = std::get_if<InitMessage>(&*message)) {
    Init(sender, std::move(*init));
    return;
  }
  auto it = senders_.find(sender);
  const uint64_t generation = std::visit([](const auto& m) { return m.generation; }, *message);
  if (it == senders_.end() || it->second->generation != generation) {
    // A message of a communicator this side does not have (cut off, or never started): the
    // sender's sends cannot complete and its own timeout ends them.
    ComponentLogger("transfer")
        ->warn("agent {}: nccl: dropped a control message of KV sender '{}' for a communicator "
               "this side does not have (generation {})",
               agent_, absl::CEscape(sender), generation);
    return;
  }
  Sender& s = *it->second;
  if (s.waiting.size() + s.pending.size() >= kMaxPendingPerSender) {
    CutOff(sender, absl::StrCat("more than ", kMaxPendingPerSender, " messages pending"));
    return;
  }
  if (auto* recv = std::get_if<RecvMessage>(&*message)) {
    if (!s.ready) {
      s.waiting.push_back({.recv = std::move(*recv)});
    } else {
      Recv(sender, s, *recv);
    }
  } else if (auto* notify = std::get_if<NotifyMessage>(&*message)) {
    if (!s.ready) {
      s.waiting.push_back({.notification = std::move(notify->message)});
    } else if (!s.pending.empty()) {
      s.pending.push_back({.notification = std::move(notify->message),
                           .since_ns = MonotonicNanos()});
    } else {
      deliver_.Push(Notification{sender, std::move(notify->message)});
    }
  } else {
    CutOff(sender, "the sender aborted its communicator");
  }
}

void NcclReceiver::Init(const std::string& sender, InitMessage m) {
  if (pool_ == nullptr) {
    CutOff(sender, "no KV pool registered yet");
    return;
  }
  absl::StatusOr<KvGeometry> geometry = SenderGeometry(m, pool_->geometry());
  if (!geometry.ok()) {
    CutOff(sender, geometry.status().ToString());
    return;
  }
  // A sender that starts over (a new communicator, or a restarted process of the same name):
  // the old communicator's receives must not land in blocks the new one is given.
  senders_.erase(sender);
  auto s = std::make_unique<Sender>();
  s->generation = m.generation;
  s->geometry = *geometry;
  s->started_ns = MonotonicNanos();
  if (cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess) {
    CutOff(sender, "cannot create a CUDA stream");
    return;
  }
  absl::StatusOr<std::unique_ptr<Comm>> comm = Comm::Start(m.unique_id, /*rank=*/1);
  if (!comm.ok()) {
    CutOff(sender, comm.status().ToString());
    return;
  }
  s->comm = std::move(*comm);
  ComponentLogger("transfer")
      ->info("agent {}: nccl: joining the communicator of KV sender '{}' ({} blocks)", agent_,
             absl::CEscape(sender), m.num_blocks);
  senders_[sender] = std::move(s);
}

void NcclReceiver::Recv(const std::string& sender, Sender& s, const RecvMessage& m) {
  // Planned here, from block ids checked against this pool: the sender names blocks, never
  // addresses. The same PlanCopies call on both sides gives the same runs in the same order.
  if (absl::Status planned = PlanCopies(*s.geometry, pool_->geometry(), m.copies, ops_);
      !planned.ok()) {
    CutOff(sender, absl::StrCat("batch ", m.batch, ": ", planned.ToString()));
    return;
  }
  const int64_t now = MonotonicNanos();
  absl::Status issued = s.comm->Issue(ops_, /*send=*/false, const_cast<std::byte*>(pool_->base()),
                                      s.stream, now + absl::ToInt64Nanoseconds(timeout_));
  cudaEvent_t event = nullptr;
  if (issued.ok() && cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
    issued = absl::InternalError("cudaEventCreate");
  }
  if (issued.ok() && cudaEventRecord(event, s.stream) != cudaSuccess) {
    cudaEventDestroy(event);
    issued = absl::InternalError("cudaEventRecord");
  }
  if (!issued.ok()) {
    CutOff(sender, absl::StrCat("batch ", m.batch, ": ", issued.ToString()));
    return;
  }
  s.pending.push_back({.event = event, .since_ns = now});
}

bool NcclReceiver::AdvanceSender(const std::string& sender, Sender& s) {
  const int64_t now = MonotonicNanos();
  const int64_t timeout_ns = absl::ToInt64Nanoseconds(timeout_);
  if (!s.ready) {
    absl::StatusOr<bool> ready = s.comm->Ready();
    if (!ready.ok()) {
      CutOff(sender, ready.status().ToString());
      return false;
    }
    if (!*ready) {
      if (now - s.started_ns > timeout_ns) {
        CutOff(sender, "its communicator did not come up within the transfer timeout");
        return false;
      }
      return true;
    }
    s.ready = true;
    while (!s.waiting.empty()) {
      Sender::Waiting w = std::move(s.waiting.front());
      s.waiting.pop_front();
      if (!w.recv.has_value()) {
        s.pending.push_back({.notification = std::move(w.notification), .since_ns = now});
        continue;
      }
      Recv(sender, s, *w.recv);
      if (!senders_.contains(sender)) return false;
    }
  }
  while (!s.pending.empty()) {
    Pending& p = s.pending.front();
    if (p.event != nullptr) {
      const cudaError_t e = cudaEventQuery(p.event);
      if (e == cudaErrorNotReady) {
        if (now - p.since_ns > timeout_ns) {
          CutOff(sender, "its receives did not complete within the transfer timeout");
          return false;
        }
        break;
      }
      cudaEventDestroy(p.event);
      p.event = nullptr;
      if (e != cudaSuccess) {
        CutOff(sender, absl::StrCat("receive failed: ", cudaGetErrorString(e)));
        return false;
      }
    } else {
      // Every receive before it is in this pool.
      deliver_.Push(Notification{sender, std::move(p.notification)});
    }
    s.pending.pop_front();
  }
  return !s.pending.empty() || !s.waiting.empty();
}

bool NcclReceiver::Advance() {
  bool busy = false;
  // By name, as CutOff may erase a sender meanwhile; the list is reused (this runs per poll).
  names_.clear();
  for (const auto& [name, s] : senders_) names_.push_back(name);
  for (const std::string& name : names_) {
    auto it = senders_.find(name);
    if (it != senders_.end() && AdvanceSender(name, *it->second)) busy = true;
  }
  return busy;
}

}  // namespace pdserve::transfer::nccl
