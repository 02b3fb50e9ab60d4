// The request core of RouterService (router/request_core.h): one request's life from
// validation to its last token, for every front end. Moved here from the gRPC Generate handler,
// which is now an adapter (router/grpc_adapter.h) like the HTTP API.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "router/grpc_adapter.h"
#include "router/request_id.h"
#include "router/request_validation.h"
#include "router/router_service.h"
#include "service/grpc_util.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;

absl::Status RouterService::Reject(absl::Status status) {
  metrics_->OnRejected(status.code());
  return status;
}

absl::Status RouterService::Fail(const std::shared_ptr<Request>& request, absl::Status status) {
  absl::MutexLock lock(&mu_);
  requests_.erase(request->id);
  failed_++;
  ComponentLogger("router")->info("request {} failed: {}", request->id, status.ToString());
  return status;
}

void RouterService::FinishRequest(const std::shared_ptr<Request>& request, bool ok) {
  absl::MutexLock lock(&mu_);
  scheduler_.DecodeDone(request->id);
  requests_.erase(request->id);
  if (ok) {
    finished_++;
    if (auto w = workers_.find(request->decode_worker); w != workers_.end()) w->second->served++;
  } else {
    failed_++;
  }
  KickLocked();
}

CoreState RouterService::State() const {
  CoreState state{.model = options_.config};
  absl::MutexLock lock(&mu_);
  for (const auto& [id, worker] : workers_) {
    if (worker->role == v1::WORKER_ROLE_PREFILL) state.prefill_workers++;
    if (worker->role == v1::WORKER_ROLE_DECODE) state.decode_workers++;
  }
  return state;
}

absl::Status RouterService::Run(const GenerateParams& in, TokenSink& sink) {
  auto request = std::make_shared<Request>();
  request->timeline.set_arrival_us(WallMicros());
  if (in.request_id.empty()) {
    absl::StatusOr<std::string> id = NewServerRequestId();
    if (!id.ok()) return id.status();
    request->id = *std::move(id);
  } else if (absl::Status own = CheckClientRequestId(in.request_id); !own.ok()) {
    return Reject(own);
  } else {
    request->id = in.request_id;
  }
  absl::StatusOr<std::vector<int32_t>> prompt = PromptOf(in, request->id, options_.config);
  if (!prompt.ok()) return Reject(prompt.status());
  request->prompt = std::move(*prompt);
  request->max_tokens = in.max_tokens;
  request->seed = in.seed;
  {
    absl::MutexLock lock(&mu_);
    if (requests_.contains(request->id)) {
      return Reject(absl::AlreadyExistsError(
          absl::StrCat("request id ", request->id, " is already in use")));
    }
    absl::Status queued =
        scheduler_.Enqueue(PendingRequest{.id = request->id,
                                          .prompt_len = static_cast<int>(request->prompt.size()),
                                          .max_tokens = request->max_tokens});
    if (!queued.ok()) {
      failed_++;
      return Reject(queued);
    }
    requests_[request->id] = request;
    KickLocked();
  }

  // Wait for the prefill to end (ready or failed), checking for a client that went away.
  const absl::Time queue_deadline = absl::Now() + options_.queue_timeout;
  bool client_gone = false;
  {
    absl::MutexLock lock(&mu_);
    auto settled = [&request]() {
      return request->phase == Phase::kReady || request->phase == Phase::kFailed;
    };
    while (!mu_.AwaitWithTimeout(absl::Condition(&settled), absl::Milliseconds(50))) {
      if (request->phase != Phase::kWaiting) continue;  // placed: prefill ends within its deadline
      const bool expired = absl::Now() > queue_deadline;
      client_gone = sink.Cancelled();
      if (!expired && !client_gone) continue;
      scheduler_.CancelWaiting(request->id);
      std::erase(deferred_, request->id);
      requests_.erase(request->id);
      failed_++;
      if (client_gone) {
        return absl::CancelledError(
            absl::StrCat("request ", request->id, " cancelled while queued"));
      }
      return Reject(absl::DeadlineExceededError(
          absl::StrCat("request ", request->id, " waited in the queue for ",
                       absl::FormatDuration(options_.queue_timeout))));
    }
  }
  if (request->phase == Phase::kFailed) return Fail(request, request->status);
  // Prefilled, KV transferred: vLLM counts a prompt's tokens once its prefill ran.
  metrics_->OnPromptDone(static_cast<int>(request->prompt.size()));
  if (sink.Cancelled()) {
    // The prefill succeeded: its KV landed, nothing more will be written.
    ReleaseOnDecode(request->decode_worker, request->id, {.epoch = request->decode_epoch});
    FinishRequest(request, false);
    return absl::CancelledError(absl::StrCat("request ", request->id, " cancelled"));
  }
  return StreamDecode(sink, request);
}

absl::Status RouterService::StreamDecode(TokenSink& sink, const std::shared_ptr<Request>& request) {
  const std::string& worker = request->decode_worker;
  grpc::ClientContext dctx;
  SetDeadline(dctx, options_.transfer_timeout + options_.decode_timeout);
  v1::DecodeWorker::Stub* stub = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = workers_.find(worker);
    if (it != workers_.end()) {
      stub = it->second->decode.get();
      it->second->inflight.insert(&dctx);
    }
  }
  if (stub == nullptr) {
    FinishRequest(request, false);
    return absl::UnavailableError(
        absl::StrCat("request ", request->id, ": decode worker ", worker, " left the cluster"));
  }
  v1::DecodeRequest decode;
  decode.set_request_id(request->id);
  decode.mutable_prompt_tokens()->Assign(request->prompt.begin(), request->prompt.end());
  decode.set_max_tokens(request->max_tokens);
  decode.set_seed(request->seed);
  decode.set_transfer_timeout_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(options_.transfer_timeout)));
  decode.set_epoch(request->decode_epoch);
  if (request->kv_checksum.has_value()) decode.set_prompt_kv_checksum(*request->kv_checksum);
  // After dctx, so that it is gone before the context its cancel names.
  const std::unique_ptr<ProgressWatchdog::Watch> watch = watchdog_.Start(
      request->id, worker, absl::Now(), options_.transfer_timeout + options_.token_timeout,
      options_.token_timeout, [&dctx] { dctx.TryCancel(); });
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub->Decode(&dctx, decode);
  v1::GenerateResponse in;
  TokenEvent out;  // one per request: its token vector keeps its capacity across chunks
  out.request_id = request->id;
  bool finished = false, client_gone = false;
  int received = 0;
  // Router-clock times of the first and the latest chunk that carried tokens (router_metrics.h).
  int64_t first_token_us = 0, last_token_us = 0;
  while (reader->Read(&in)) {
    watch->Progress(absl::Now());
    if (in.tokens_size() > 0) {
      const int64_t now_us = WallMicros();
      if (first_token_us == 0) {
        first_token_us = now_us;
        metrics_->OnFirstToken(static_cast<double>(now_us - request->timeline.arrival_us()) * 1e-6);
      } else {
        metrics_->OnTokenGap(static_cast<double>(now_us - last_token_us) * 1e-6);
      }
      last_token_us = now_us;
      metrics_->OnTokens(in.tokens_size());
    }
    out.tokens.assign(in.tokens().begin(), in.tokens().end());
    out.position = in.position();
    out.first = received == 0;
    if (out.first) out.prompt_tokens = static_cast<int32_t>(request->prompt.size());
    received += static_cast<int>(out.tokens.size());
    if (in.finished()) {
      finished = true;
      out.finished = true;
      out.finish_reason = in.finish_reason();
      v1::RequestTimeline& t = request->timeline;
      t.set_first_token_us(in.timeline().first_token_us());
      t.set_finish_us(WallMicros());
      t.set_decode_join_us(in.timeline().decode_join_us());
      t.set_modelled_first_step_us(in.timeline().modelled_first_step_us());
      t.set_decode_verify_cpu_us(in.timeline().decode_verify_cpu_us());
      out.times = TimesOf(t);
    }
    if (sink.Cancelled() || !sink.Write(out)) {
      client_gone = true;
      dctx.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    if (auto it = workers_.find(worker); it != workers_.end()) it->second->inflight.erase(&dctx);
  }
  if (finished && status.ok()) {
    metrics_->OnFinished({.arrival_us = request->timeline.arrival_us(),
                          .scheduled_us = request->timeline.scheduled_us(),
                          .first_token_us = first_token_us,
                          .last_token_us = last_token_us,
                          .generated = received,
                          .finish_reason = out.finish_reason});
    RecordOutcome(worker, absl::OkStatus());
    FinishRequest(request, true);
    return absl::OkStatus();
  }
  if (watch->stalled()) return FailStalled(request, received);
  if (!client_gone) {
    RecordOutcome(worker, status.ok() ? absl::InternalError("decode stream ended unfinished")
                                      : FromGrpc(status));
  }
  // Whatever happened, the decode worker must not keep the request's blocks; the prefill had
  // succeeded, so no more KV will land in them.
  ReleaseOnDecode(worker, request->id, {.epoch = request->decode_epoch});
  FinishRequest(request, false);
  if (client_gone) {
    return absl::CancelledError(absl::StrCat("request ", request->id, " cancelled by the client"));
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::CANCELLED) {
    ProbeWorker(worker);
    return absl::UnavailableError(absl::StrCat("request ", request->id, ": decode worker ", worker,
                                               " failed after ", received,
                                               " tokens: ", status.error_message()));
  }
  if (status.ok()) {
    return absl::InternalError(absl::StrCat("request ", request->id, ": decode stream from ",
                                            worker, " ended without finishing"));
  }
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat("request ", request->id, ": ", worker, ": ", status.error_message()));
}

}  // namespace pdserve::router
