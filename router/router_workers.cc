// RouterService: worker membership (registration, heartbeats, drops), peer wiring and status.
#include <grpcpp/grpcpp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "service/grpc_util.h"
#include "common/logging.h"
#include "router/router_service.h"
#include "router/worker_admission.h"
#include "proto/model_spec.h"
#include "common/clock.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;
using service::ToGrpc;

grpc::Status RouterService::RegisterWorker(grpc::ServerContext*,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) {
  auto log = ComponentLogger("router");
  const std::string& id = request->worker_id();
  const bool prefill = request->role() == v1::WORKER_ROLE_PREFILL;
  // Prefills and decodes its own requests on one pool: no transfer peers, any backend.
  const bool colocated = request->role() == v1::WORKER_ROLE_COLOCATED;
  if (absl::Status admitted = CheckWorkerRegistration(*request, options_.config);
      !admitted.ok()) {
    // Escaped and cut: a refused registration's fields were not checked (the error says why).
    log->warn("refused a registration from {} at {} (pid {}): {}",
              absl::CEscape(id.substr(0, kMaxWorkerIdBytes)),
              absl::CEscape(request->address().substr(0, kMaxWorkerAddressBytes)), request->pid(),
              admitted.ToString());
    return ToGrpc(admitted);
  }
  if (!options_.transfer_backend.empty() && !colocated &&
      request->kv_pool().transfer_backend() != options_.transfer_backend) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("worker ", id, " uses transfer backend '",
                                     request->kv_pool().transfer_backend(),
                                     "' but this cluster uses '", options_.transfer_backend, "'"));
  }
  // Before any lock: an address that does not answer holds up nobody else.
  if (absl::Status answers = ProbeRegistration(*request); !answers.ok()) {
    log->warn("registration of {} (pid {}) refused for now: {}", id, request->pid(),
              answers.ToString());
    return ToGrpc(answers);
  }
  auto worker = std::make_shared<Worker>();
  worker->id = id;
  worker->role = request->role();
  worker->address = request->address();
  worker->host_id = request->host_id();
  worker->gpu = request->gpu();
  worker->numa_node = request->has_numa_node() ? request->numa_node() : -1;
  worker->pid = request->pid();
  worker->kv_pool = request->kv_pool();
  worker->capacity = request->capacity();
  auto channel = (options_.auth ? options_.auth : service::ClusterAuth::Insecure())
                     ->Channel(request->address());
  if (prefill || colocated) worker->prefill = v1::PrefillWorker::NewStub(channel);
  if (!prefill) worker->decode = v1::DecodeWorker::NewStub(channel);
  // A fast lane is an abstract socket name: found only on this host and in this network
  // namespace. Anywhere else the connect fails and the worker is reached by gRPC alone.
  const std::string& lane = request->fast_lane();
  if (options_.fast_lane && !lane.empty() && lane.size() <= 100 &&
      std::all_of(lane.begin(), lane.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    absl::StatusOr<std::unique_ptr<service::FastLaneClient>> fast = service::FastLaneClient::Connect(
        lane, options_.auth ? options_.auth->credential() : std::string());
    if (fast.ok()) {
      worker->fast = *std::move(fast);
      log->info("worker {}: fast lane connected", id);
    } else {
      log->info("worker {}: gRPC only ({})", id, fast.status().ToString());
    }
  }
  // Wire the transfer peers before the worker becomes schedulable, with no lock held during the
  // AddPeer calls: a peer that does not answer holds up this registration only, not the others
  // nor placement. The worker is announced in joining_ in the same critical section that takes
  // the snapshot, so of two concurrent registrations the later one sees the earlier and wires
  // the pair: a prefill worker loads every decode pool it saw; a decode worker is loaded by
  // every prefill worker it saw, joining ones included.
  std::vector<std::pair<std::string, v1::KvPoolDescriptor>> decode_pools;
  std::vector<std::shared_ptr<Worker>> prefill_workers;
  {
    absl::MutexLock lock(&mu_);
    if (joining_.contains(id)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("worker ", id, " is already registering; retry"));
    }
    for (const auto* group : {&workers_, &joining_}) {
      if (colocated) break;  // it loads no peer and no prefill worker loads it
      for (const auto& [other_id, other] : *group) {
        if (other_id == id) continue;
        if (other->role == v1::WORKER_ROLE_DECODE) {
          decode_pools.emplace_back(other_id, other->kv_pool);
        }
        if (other->role == v1::WORKER_ROLE_PREFILL) prefill_workers.push_back(other);
      }
    }
    joining_[id] = worker;
  }
  absl::Status wired = WirePeers(*worker, decode_pools, prefill_workers);
  std::vector<std::string> gone;  // decode peers dropped while we loaded them
  {
    absl::MutexLock lock(&mu_);
    if (auto it = joining_.find(id); it != joining_.end() && it->second == worker) {
      joining_.erase(it);
    }
    if (!wired.ok()) return ToGrpc(wired);
    if (workers_.contains(id)) DropWorkerLocked(id, "it registered again");
    // Stamped as it joins, not as its registration began: wiring its peers (an AddPeer per
    // prefill worker) takes seconds with many workers on a loaded host, and
    // the sweep dropped a worker that had only just joined for missing heartbeats it could not
    // yet send (16 + 16 workers, 2 s limit).
    worker->last_heartbeat = SteadyNow();
    workers_[id] = worker;
    if (colocated) {
      scheduler_.AddColocatedWorker(id, request->kv_pool().num_blocks());
    } else if (prefill) {
      scheduler_.AddPrefillWorker(id, request->kv_pool().num_blocks(),
                                  request->writes_in_place());
      for (const auto& [decode_id, pool] : decode_pools) {
        if (!workers_.contains(decode_id) && !joining_.contains(decode_id)) {
          gone.push_back(decode_id);
        }
      }
    } else {
      scheduler_.AddDecodeWorker(id, request->kv_pool().num_blocks());
    }
    health_->Forget(id);  // a restarted process starts with a clean record
    RefreshAcceptingLocked(SteadyNow());
    KickLocked();
  }
  for (const std::string& decode_id : gone) {
    v1::RemovePeerRequest remove;
    remove.set_worker_id(decode_id);
    v1::RemovePeerResponse ignored;
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.rpc_timeout);
    (void)worker->prefill->RemovePeer(&ctx, remove, &ignored);
  }
  log->info("{} worker {} joined at {} on host {} (pid {}, {} KV blocks, transfer {})",
            colocated ? "colocated" : prefill ? "prefill" : "decode", id, request->address(),
            request->host_id().empty() ? "?" : request->host_id(), request->pid(),
            request->kv_pool().num_blocks(), request->kv_pool().transfer_backend());
  response->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  return grpc::Status::OK;
}

absl::Status RouterService::WirePeers(
    const Worker& worker,
    const std::vector<std::pair<std::string, v1::KvPoolDescriptor>>& decode_pools,
    const std::vector<std::shared_ptr<Worker>>& prefill_workers) {
  if (worker.prefill != nullptr) {
    for (const auto& [decode_id, pool] : decode_pools) {
      v1::AddPeerRequest add;
      add.set_worker_id(decode_id);
      *add.mutable_kv_pool() = pool;
      v1::AddPeerResponse ignored;
      grpc::ClientContext ctx;
      SetDeadline(ctx, options_.rpc_timeout);
      absl::Status added = FromGrpc(worker.prefill->AddPeer(&ctx, add, &ignored));
      if (!added.ok()) {
        return absl::Status(added.code(), absl::StrCat("prefill worker ", worker.id,
                                                       " could not load decode peer ", decode_id,
                                                       ": ", added.message()));
      }
    }
    return absl::OkStatus();
  }
  // Every prefill worker at once (gRPC's callback API): one after another, a decode worker's
  // registration took 2 s with 16 prefill workers on a loaded 2-core host, and grows with each.
  struct Call {
    grpc::ClientContext ctx;
    v1::AddPeerRequest add;
    v1::AddPeerResponse ignored;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  absl::BlockingCounter pending(static_cast<int>(prefill_workers.size()));
  for (const std::shared_ptr<Worker>& p : prefill_workers) {
    auto call = std::make_unique<Call>();
    call->add.set_worker_id(worker.id);
    *call->add.mutable_kv_pool() = worker.kv_pool;
    SetDeadline(call->ctx, options_.rpc_timeout);
    Call* c = call.get();
    p->prefill->async()->AddPeer(&c->ctx, &c->add, &c->ignored, [c, &pending](grpc::Status s) {
      c->status = std::move(s);
      pending.DecrementCount();
    });
    calls.push_back(std::move(call));
  }
  pending.Wait();  // every call ends by its deadline
  for (size_t i = 0; i < calls.size(); ++i) {
    if (absl::Status added = FromGrpc(calls[i]->status); !added.ok()) {
      ComponentLogger("router")->warn("prefill worker {} could not load decode peer {}: {}",
                                      prefill_workers[i]->id, worker.id, added.ToString());
    }
  }
  return absl::OkStatus();
}

grpc::Status RouterService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request->worker_id());
  response->set_known(it != workers_.end());
  if (it != workers_.end()) {
    it->second->last_heartbeat = SteadyNow();
    it->second->capacity = request->capacity();
    response->set_placed_requests(NoteHeartbeatLocked(*it->second, request->draining()));
  }
  return grpc::Status::OK;
}

bool RouterService::DropWorkerLocked(const std::string& id, const std::string& reason) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return false;
  std::vector<std::string> affected = scheduler_.RemoveWorker(id);
  for (grpc::ClientContext* ctx : it->second->inflight) ctx->TryCancel();
  if (it->second->fast) it->second->fast->Shutdown();  // its pending calls fail likewise
  ComponentLogger("router")->warn("worker {} (pid {}) dropped: {}; {} placed requests affected",
                                  id, it->second->pid, reason, affected.size());
  workers_.erase(it);
  dropped_workers_++;
  KickLocked();
  return true;
}

void RouterService::RemovePeerEverywhere(const std::string& decode_worker,
                                         const std::string& descriptor) {
  std::vector<std::shared_ptr<Worker>> prefill_workers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, w] : workers_) {
      if (w->role == v1::WORKER_ROLE_PREFILL) prefill_workers.push_back(w);
    }
  }
  for (const std::shared_ptr<Worker>& p : prefill_workers) {
    v1::RemovePeerRequest remove;
    remove.set_worker_id(decode_worker);
    remove.set_transport_descriptor(descriptor);
    v1::RemovePeerResponse ignored;
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.rpc_timeout);
    (void)p->prefill->RemovePeer(&ctx, remove, &ignored);
  }
}

void RouterService::ProbeWorker(const std::string& id) {
  std::shared_ptr<Worker> worker;
  {
    absl::MutexLock lock(&mu_);
    auto it = workers_.find(id);
    if (it == workers_.end()) return;
    worker = it->second;
  }
  grpc::ClientContext ctx;
  SetDeadline(ctx, absl::Seconds(1));
  v1::StatusRequest request;
  v1::WorkerStatus status;
  grpc::Status probed = worker->decode ? worker->decode->GetStatus(&ctx, request, &status)
                                       : worker->prefill->GetStatus(&ctx, request, &status);
  if (probed.ok()) return;
  bool dropped = false;
  {
    absl::MutexLock lock(&mu_);
    // Only this registration: the worker may have come back under the same id meanwhile.
    auto it = workers_.find(id);
    if (it != workers_.end() && it->second == worker) {
      dropped = DropWorkerLocked(id, absl::StrCat("it does not answer (", probed.error_message(),
                                                  ")"));
    }
  }
  if (dropped && worker->role == v1::WORKER_ROLE_DECODE) {
    RemovePeerEverywhere(id, worker->kv_pool.transport_descriptor());
  }
}

bool RouterService::TrackRpc(const std::string& worker, grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  if (stop_) return false;  // the destructor cancelled what was in flight; nothing new starts
  auto it = workers_.find(worker);
  if (it == workers_.end()) return false;
  it->second->inflight.insert(ctx);
  return true;
}

void RouterService::UntrackRpc(const std::string& worker, grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  if (auto it = workers_.find(worker); it != workers_.end()) it->second->inflight.erase(ctx);
}

void RouterService::SweepLoop() {
  const absl::Duration limit = options_.heartbeat_interval * options_.missed_heartbeats;
  while (true) {
    std::vector<std::pair<std::string, std::string>> dropped_decode;  // id, pool descriptor
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.heartbeat_interval)) return;
      const absl::Time now = SteadyNow();
      std::vector<std::string> silent;
      for (auto& [id, w] : workers_) {
        if (now - w->last_heartbeat > limit) silent.push_back(id);
      }
      for (const std::string& id : silent) {
        const Worker& w = *workers_.at(id);
        if (w.role == v1::WORKER_ROLE_DECODE) {
          dropped_decode.emplace_back(id, w.kv_pool.transport_descriptor());
        }
        DropWorkerLocked(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(limit)));
      }
    }
    for (const auto& [id, descriptor] : dropped_decode) RemovePeerEverywhere(id, descriptor);
    SweepHealth();
    ExpireQueued();
    RequeueDeferred();
  }
}

grpc::Status RouterService::GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                                      v1::ClusterStatus* response) {
  std::vector<std::shared_ptr<Worker>> workers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, w] : workers_) workers.push_back(w);
    response->set_preset(options_.config.name);
    *response->mutable_model() = ModelSpecOf(options_.config);
    response->set_transfer_backend(options_.transfer_backend);
    response->set_waiting_requests(static_cast<uint32_t>(scheduler_.num_waiting()));
    uint32_t prefilling = 0, decoding = 0;
    for (auto& [id, r] : requests_) {
      if (r->phase == Phase::kPrefilling) prefilling++;
      if (r->phase == Phase::kReady) decoding++;
    }
    response->set_prefilling_requests(prefilling);
    response->set_decoding_requests(decoding);
    response->set_running_requests(prefilling + decoding);
    response->set_finished_requests(finished_);
    response->set_failed_requests(failed_);
    response->set_requeued_requests(requeued_);
    response->set_dropped_workers(dropped_workers_);
    response->set_max_waiting(scheduler_.config().max_waiting);
  }
  // Live numbers from each worker (a heartbeat may be a few hundred ms old).
  for (const std::shared_ptr<Worker>& w : workers) {
    v1::WorkerStatus* out = response->add_workers();
    grpc::ClientContext ctx;
    SetDeadline(ctx, absl::Seconds(1));
    v1::StatusRequest request;
    // A colocated worker's pool is its decode side's; its prefill engine's counters go apart.
    grpc::Status live = w->decode ? w->decode->GetStatus(&ctx, request, out)
                                  : w->prefill->GetStatus(&ctx, request, out);
    if (live.ok() && w->role == v1::WORKER_ROLE_COLOCATED) {
      out->set_role(w->role);
      grpc::ClientContext prefill_ctx;
      SetDeadline(prefill_ctx, absl::Seconds(1));
      v1::WorkerStatus prefill_status;
      if (w->prefill->GetStatus(&prefill_ctx, request, &prefill_status).ok()) {
        *out->mutable_prefill_engine() = prefill_status.engine();
      }
    }
    if (!live.ok()) {
      out->Clear();
      out->set_worker_id(w->id);
      out->set_role(w->role);
      out->set_healthy(false);
      out->set_live(false);
      absl::MutexLock lock(&mu_);
      *out->mutable_capacity() = w->capacity;
    }
    out->set_address(w->address);
    out->set_host_id(w->host_id);
    out->set_gpu(w->gpu);
    if (w->numa_node >= 0) out->set_numa_node(w->numa_node);
    out->set_pid(w->pid);
    absl::MutexLock lock(&mu_);
    AddHealthLocked(*w, *out);
    const auto& loads = w->decode ? scheduler_.decode_workers() : scheduler_.prefill_workers();
    if (auto it = loads.find(w->id); it != loads.end()) {
      out->set_reserved_blocks(it->second.reserved_blocks);
    }
  }
  return grpc::Status::OK;
}

}  // namespace pdserve::router
