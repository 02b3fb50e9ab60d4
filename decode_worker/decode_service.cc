#include "decode_worker/decode_service.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/logging.h"
#include "transfer/kv_notification.h"

namespace pdserve::decode {

using service::ToGrpc;

namespace {

// Whether `pid` is a live process of this host. A zombie has stopped writing: it counts as gone.
// Anything we cannot tell (no /proc, another user's process) counts as alive: the lease remains.
bool ProcessAlive(int32_t pid) {
  if (pid <= 0) return true;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream file(absl::StrCat("/proc/", pid, "/stat"));
  if (!file) return true;
  const std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  return stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

std::string HostOf(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

bool IsLoopback(const std::string& host) {
  return absl::StartsWith(host, "127.") || host == "localhost" || host == "::1";
}

// A writer's pid means something only on this host.
bool SameHost(const std::string& writer_address, const std::string& own_address) {
  const std::string writer = HostOf(writer_address);
  if (writer.empty()) return false;
  return IsLoopback(writer) || writer == HostOf(own_address);
}

}  // namespace

DecodeService::DecodeService(DecodeEngine& engine, transfer::KvTransport& transport,
                             DecodeServiceOptions options)
    : engine_(engine), transport_(transport), options_(std::move(options)) {}

v1::WorkerCapacity DecodeService::Capacity() const {
  const DecodeCapacity c = engine_.Capacity();
  v1::WorkerCapacity out;
  out.set_total_blocks(c.total_blocks);
  out.set_free_blocks(c.free_blocks);
  out.set_running_requests(c.running_requests);
  out.set_quarantined_blocks(c.quarantined_blocks);
  return out;
}

grpc::Status DecodeService::Allocate(grpc::ServerContext* ctx, const v1::AllocateRequest* request,
                                     v1::AllocateResponse* response) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "DecodeWorker.Allocate"); !auth.ok()) {
    return auth;
  }
  absl::StatusOr<v1::AllocateResponse> out = Allocate(*request, [ctx] { return ctx->IsCancelled(); });
  if (!out.ok()) return ToGrpc(out.status());
  *response = *std::move(out);
  return grpc::Status::OK;
}

absl::StatusOr<v1::AllocateResponse> DecodeService::Allocate(
    const v1::AllocateRequest& in, const std::function<bool()>& cancelled) {
  const v1::AllocateRequest* request = &in;
  v1::AllocateResponse out;
  v1::AllocateResponse* response = &out;
  if (request->request_id().empty() || request->request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Allocate: a request id of ", request->request_id().size(), " bytes (1 to ",
        kMaxRequestIdBytes, ")"));
  }
  uint64_t epoch = 0;
  absl::StatusOr<std::vector<BlockId>> blocks = engine_.Allocate(
      request->request_id(), request->prompt_len(), request->max_tokens(), &epoch,
      request->epoch());
  if (!blocks.ok()) return blocks.status();
  // The router gave up on this call (a worker held by SIGSTOP serves its backlog once resumed,
  // long after the router cancelled and dropped it): nobody will see these blocks, nobody will
  // Release them, and no writer was told of them. Free them now rather than after the
  // allocation lease (issue 16 benchmark: 9 blocks per stopped decode worker held for 300 s).
  if (cancelled()) {
    (void)engine_.Release(request->request_id(),
                          absl::CancelledError("Allocate cancelled by the router"),
                          {.epoch = epoch, .writer_fenced = true});
    return absl::CancelledError(absl::StrCat(
        "request ", request->request_id(), ": Allocate cancelled by the caller"));
  }
  for (BlockId b : *blocks) response->mutable_blocks()->add_block_ids(b);
  response->set_epoch(epoch);
  response->set_reserved_blocks(static_cast<uint32_t>(
      engine_.cache().config().BlocksForTokens(int64_t{request->prompt_len()} +
                                               request->max_tokens())));
  ComponentLogger("decode")->debug("request {}: allocated {} prompt blocks", request->request_id(),
                                   blocks->size());
  return out;
}

std::map<service::FastMethod, service::FastLaneServer::Method> DecodeService::FastMethods() {
  std::map<service::FastMethod, service::FastLaneServer::Method> m;
  // Short and non-blocking: on the connection's reader thread, no hand-off.
  m[service::FastMethod::kAllocate] =
      service::ProtoMethod<v1::AllocateRequest, v1::AllocateResponse>(
          "AllocateRequest", /*on_reader_thread=*/true,
          [this](const v1::AllocateRequest& request, const service::FastCall& call) {
            return Allocate(request, [&call] { return call.cancelled(); });
          });
  return m;
}


grpc::Status DecodeService::Decode(grpc::ServerContext* ctx, const v1::DecodeRequest* request,
                                   grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "DecodeWorker.Decode"); !auth.ok()) {
    return auth;
  }
  const int64_t admitted_us = WallMicros();
  auto log = ComponentLogger("decode");
  const std::string& id = request->request_id();
  if (request->prompt_tokens().empty() || request->max_tokens() <= 0) {
    absl::Status bad = absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": empty prompt or non-positive max_tokens"));
    (void)engine_.Release(id, bad);  // its KV may still come: quarantined unless landed
    return ToGrpc(bad);
  }
  absl::StatusOr<DecodeLease> lease = engine_.Lease(id);
  if (!lease.ok()) {
    return ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("request ", id, " has no reservation on ", options_.worker_id)));
  }
  if (request->epoch() != 0 && request->epoch() != lease->epoch) {
    return ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("request ", id, ": Decode names epoch ", request->epoch(),
                     " but the reservation on ", options_.worker_id, " has epoch ",
                     lease->epoch)));
  }
  const ReleaseFence this_lease{.epoch = lease->epoch};
  // Bounded: the wait holds a server thread, and a caller must not park threads for days.
  const absl::Duration transfer_timeout =
      request->transfer_timeout_ms() > 0
          ? std::min(absl::Milliseconds(request->transfer_timeout_ms()),
                     std::max(options_.transfer_timeout, kMaxTransferWait))
          : options_.transfer_timeout;
  // The prefill worker's notification says every byte of the prompt's KV has landed; only the
  // notification naming this reservation's epoch counts. The request starts from the thread
  // that receives it (AwaitLanding) and this one waits on its stream, made here: the loop's
  // first token wakes it, and nothing else does unless the start failed (the stream then ends
  // with why).
  struct Started {
    int64_t landed_us = 0;
    absl::Status status;  // KvLanded's, then Start's
    bool released = false;  // KvLanded failed: released meanwhile, nothing more to release
  } started;
  std::vector<int32_t> prompt(request->prompt_tokens().begin(), request->prompt_tokens().end());
  const std::optional<uint64_t> claimed =
      request->has_prompt_kv_checksum() ? std::optional<uint64_t>(request->prompt_kv_checksum())
                                        : std::nullopt;
  const uint64_t epoch = lease->epoch;
  const auto stream = std::make_shared<DecodeStream>(static_cast<int>(prompt.size()));
  // Returns whether the engine reserved the request's first step for the caller (which then
  // runs it: AwaitLanding).
  const auto start = [&]() -> bool {
    started.landed_us = WallMicros();
    started.status = engine_.KvLanded(id, epoch);
    started.released = !started.status.ok();
    bool step_here = false;
    if (started.status.ok()) {
      started.status = engine_
                           .Start(id, std::move(prompt), request->max_tokens(), request->seed(),
                                  claimed, stream, &step_here)
                           .status();
    }
    if (!started.status.ok()) stream->Finish(started.status, WallMicros());
    return step_here;
  };
  absl::Status landed = AwaitLanding(*ctx, transfer::KvNotification(id, epoch), transfer_timeout,
                                     *stream, start);
  if (landed.code() == absl::StatusCode::kAlreadyExists) {
    // Another Decode call waits for this reservation's KV: it keeps it.
    return ToGrpc(absl::FailedPreconditionError(
        absl::StrCat("request ", id, ": another Decode call already waits for its KV")));
  }
  if (landed.code() == absl::StatusCode::kCancelled) {
    // The router gave up on the call (a prefill that failed while this call, opened before it,
    // waited; the client left). Quarantined, as on a timeout: the router's own Release, before
    // or after this one, says whether the writer is fenced.
    const absl::Status cancelled =
        absl::CancelledError(absl::StrCat("request ", id, " cancelled while waiting for its KV"));
    (void)engine_.Release(id, cancelled, this_lease);
    log->info("request {}: cancelled by the router while waiting for its KV (epoch {})", id,
              lease->epoch);
    return ToGrpc(cancelled);
  }
  if (!landed.ok()) {
    absl::Status failed = absl::Status(
        landed.code() == absl::StatusCode::kDeadlineExceeded ? absl::StatusCode::kDeadlineExceeded
                                                             : absl::StatusCode::kUnavailable,
        absl::StrCat("request ", id, ": the prompt's KV did not arrive on ", options_.worker_id,
                     ": ", landed.ToString()));
    log->warn("{}", failed.ToString());
    (void)engine_.Release(id, failed, this_lease);  // quarantined: the KV may still come
    return ToGrpc(failed);
  }
  // The start ran (AwaitLanding said so, after the stream showed it): `started` is final.
  const int64_t landed_us = started.landed_us;
  if (!started.status.ok()) {
    if (!started.released) (void)engine_.Release(id, started.status, this_lease);
    return ToGrpc(started.status);
  }
  bool first = true;
  while (true) {
    DecodeStream::Chunk chunk = stream->Next(options_.cancel_poll);
    if (ctx->IsCancelled()) {
      (void)engine_.Release(id, absl::CancelledError(absl::StrCat("request ", id, " cancelled")),
                            this_lease);
      return grpc::Status(grpc::StatusCode::CANCELLED, absl::StrCat("request ", id, " cancelled"));
    }
    if (chunk.tokens.empty() && !chunk.finished) continue;
    if (chunk.finished && !chunk.status.ok()) return ToGrpc(chunk.status);
    v1::GenerateResponse response;
    response.set_request_id(id);
    response.set_position(chunk.position);
    for (int32_t t : chunk.tokens) response.add_tokens(t);
    if (first) response.set_prompt_tokens(request->prompt_tokens_size());
    first = false;
    if (chunk.finished) {
      response.set_finished(true);
      response.set_finish_reason("length");
      v1::RequestTimeline* timeline = response.mutable_timeline();
      timeline->set_first_token_us(chunk.first_token_us);
      timeline->set_finish_us(chunk.finish_us);
      timeline->set_decode_worker(options_.worker_id);
      timeline->set_decode_join_us(chunk.accounting.join_us);
      timeline->set_modelled_first_step_us(chunk.accounting.modelled_first_step_us);
      timeline->set_decode_verify_cpu_us(chunk.accounting.verify_us);
      timeline->set_decode_admitted_us(admitted_us);
      timeline->set_kv_landed_us(landed_us);
      served_++;
    }
    if (!writer->Write(response)) {
      (void)engine_.Release(
          id, absl::CancelledError(absl::StrCat("request ", id, ": client gone")), this_lease);
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          absl::StrCat("request ", id, ": the stream to the router broke"));
    }
    if (options_.metrics != nullptr) {
      options_.metrics->OnTokens(static_cast<int>(chunk.tokens.size()));
      if (chunk.finished) options_.metrics->OnRequestServed();
    }
    if (chunk.finished) return grpc::Status::OK;
  }
}

grpc::Status DecodeService::Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse*) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "DecodeWorker.Release"); !auth.ok()) {
    return auth;
  }
  const std::string& id = request->request_id();
  ReleaseFence fence{.epoch = request->epoch(),
                     .writer_fenced = request->writer_fenced(),
                     .writer = request->writer_worker_id()};
  if (SameHost(request->writer_address(), options_.address)) fence.writer_pid = request->writer_pid();
  // A writer that died before the router could ask it (the usual reason it could not answer)
  // is fenced now, rather than at the next sweep.
  if (!fence.writer_fenced && fence.writer_pid > 0 && !ProcessAlive(fence.writer_pid)) {
    fence.writer_fenced = true;
  }
  // A fenced writer frees blocks whose KV never landed here: the notification of a transfer
  // that did complete may still be on its way, and must not stay in the inbox for ever.
  absl::StatusOr<DecodeLease> lease = engine_.Lease(id);
  const uint64_t epoch = fence.epoch != 0 ? fence.epoch : (lease.ok() ? lease->epoch : 0);
  const bool landed = lease.ok() && lease->epoch == epoch && lease->kv_landed;
  absl::Status released = engine_.Release(
      id, absl::AbortedError(absl::StrCat("request ", id, " released by the router")), fence);
  if (released.ok() && fence.writer_fenced && epoch != 0 && !landed) {
    ExpectLateNotification(id, epoch);
  }
  // Releasing what is already gone is fine: Release is how the router makes sure.
  if (released.code() == absl::StatusCode::kNotFound) return grpc::Status::OK;
  return ToGrpc(released);
}

void DecodeService::ExpectLateNotification(const std::string& id, uint64_t epoch) {
  absl::MutexLock lock(&late_mu_);
  late_[{id, epoch}] = SteadyNow() + options_.fence_lease;
}

bool DecodeService::ConsumeNotification(const std::string& id, uint64_t epoch) {
  return transport_.WaitForNotification(transfer::KvNotification(id, epoch),
                                        absl::ZeroDuration())
      .ok();
}

void DecodeService::Sweep(absl::Duration allocation_lease) {
  auto log = ComponentLogger("decode");
  for (const std::string& id : engine_.ExpireAllocations(allocation_lease)) {
    log->warn("request {}: allocation expired after {} without Decode; released", id,
              absl::FormatDuration(allocation_lease));
  }
  for (const LiftedQuarantine& q : engine_.SweepQuarantine(
           options_.fence_lease,
           [this](const std::string& id, uint64_t epoch) { return ConsumeNotification(id, epoch); },
           ProcessAlive)) {
    const std::string writer = q.writer.empty() ? "unknown" : q.writer;
    switch (q.why) {
      case LiftedQuarantine::Why::kNotified:
        log->info("request {}: its KV landed after its release (epoch {}); {} blocks free", q.request_id,
                  q.epoch, q.blocks);
        break;
      case LiftedQuarantine::Why::kWriterGone:
        log->info("request {}: writer {} is gone; {} quarantined blocks free (epoch {})",
                  q.request_id, writer, q.blocks, q.epoch);
        break;
      case LiftedQuarantine::Why::kLeaseExpired:
        log->warn("request {}: {} quarantined blocks freed by the {} fence lease alone (epoch {}, "
                  "writer {} neither notified nor fenced): a write later than that would corrupt "
                  "whoever gets them",
                  q.request_id, q.blocks, absl::FormatDuration(options_.fence_lease), q.epoch,
                  writer);
        break;
    }
  }
  std::vector<std::pair<std::string, uint64_t>> late;
  const absl::Time now = SteadyNow();
  {
    absl::MutexLock lock(&late_mu_);
    for (auto it = late_.begin(); it != late_.end();) {
      if (it->second < now) {
        it = late_.erase(it);
      } else {
        late.push_back(it->first);
        ++it;
      }
    }
  }
  for (const auto& [id, epoch] : late) {
    if (!ConsumeNotification(id, epoch)) continue;
    absl::MutexLock lock(&late_mu_);
    late_.erase({id, epoch});
  }
}

grpc::Status DecodeService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest*,
                                      v1::WorkerStatus* response) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "DecodeWorker.GetStatus"); !auth.ok()) {
    return auth;
  }
  response->set_worker_id(options_.worker_id);
  response->set_role(v1::WORKER_ROLE_DECODE);
  response->set_address(options_.address);
  *response->mutable_capacity() = Capacity();
  response->set_healthy(true);
  response->set_requests_served(served_.load());
  const transfer::TransportCounters counters = transport_.counters();
  response->set_registrations(counters.registrations);
  response->set_transfer_backend(transport_.backend());
  response->set_transports(counters.transports);
  response->set_pid(getpid());
  response->set_live(true);
  const DecodeStepCounters steps = engine_.StepCounters();
  v1::EngineCounters* engine = response->mutable_engine();
  engine->set_steps(steps.steps);
  engine->set_overrun_steps(steps.overrun_steps);
  engine->set_work_us(steps.work_us);
  engine->set_modelled_us(steps.modelled_us);
  engine->set_mock_cpu_us(steps.verify_us);
  engine->set_overrun_us(steps.overrun_us);
  engine->set_claimed_checks(steps.claimed_checks);
  engine->set_claims_refuted(steps.claims_refuted);
  return grpc::Status::OK;
}

}  // namespace pdserve::decode
