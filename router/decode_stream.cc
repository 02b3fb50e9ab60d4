// A ready request's Decode stream (router_service.h: request life), on gRPC's callback API so
// that no router thread waits on it: OnReadDone relays each chunk to the request's sink,
// OnDone hands the ending (accounting, the Release a failed stream needs, the client's status)
// to the work queue, where blocking on a worker is allowed.

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "router/grpc_adapter.h"
#include "router/router_service.h"
#include "service/grpc_util.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;

class RouterService::DecodeStream final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  DecodeStream(RouterService* router, std::shared_ptr<Request> request,
               std::shared_ptr<Worker> worker, bool early)
      : router_(router), request_(std::move(request)), worker_(std::move(worker)), early_(early) {}

  // Starts the call; false when the worker left or the router stops (nothing started: the
  // caller deletes the stream). The stream deletes itself at its end (End). An early stream
  // holds its call: it reads nothing and does not end before Settle.
  bool Open();
  // Early streams, from the executor: the call alone is cancelled (Cancel), then the prefill's
  // outcome lets the stream read (OK) or end (failed), and lifts the hold.
  void Cancel() { ctx_.TryCancel(); }
  int prompt_tokens() const { return static_cast<int>(request_->prompt.size()); }
  void Settle(bool prefill_ok) {
    prefill_failed_ = !prefill_ok;
    if (prefill_ok) {
      StartRead(&in_);
    } else {
      ctx_.TryCancel();
    }
    RemoveHold();
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override {
    router_->work_->Post([this, status] { End(status); });
  }

 private:
  // On the work queue: ends the request and deletes the stream.
  void End(const grpc::Status& status);
  // What the stream's end means for the request (the former blocking loop's tail).
  absl::Status Outcome(const grpc::Status& status, bool stalled);

  RouterService* const router_;
  const std::shared_ptr<Request> request_;
  const std::shared_ptr<Worker> worker_;  // keeps its stub alive while the call runs
  const bool early_;
  // Set by Settle before the hold is lifted, read by End after OnDone: OnDone cannot come
  // before RemoveHold, and gRPC orders the two.
  bool prefill_failed_ = false;
  grpc::ClientContext ctx_;
  v1::DecodeRequest decode_;
  v1::GenerateResponse in_;
  TokenEvent out_;  // one per request: its token vector keeps its capacity across chunks
  std::unique_ptr<ProgressWatchdog::Watch> watch_;
  bool finished_ = false;
  bool client_gone_ = false;
  int received_ = 0;
  // Router-clock times of the first and the latest chunk that carried tokens (router_metrics.h).
  int64_t first_token_us_ = 0;
  int64_t last_token_us_ = 0;
};

void RouterService::OpenDecodeStream(const std::shared_ptr<Request>& request) {
  std::shared_ptr<Worker> worker;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = workers_.find(request->decode_worker);
        it != workers_.end() && it->second->decode != nullptr) {
      worker = it->second;
    }
  }
  auto left = [this, &request] {
    FinishRequest(request, false);
    Complete(request, absl::UnavailableError(absl::StrCat("request ", request->id,
                                                          ": decode worker ",
                                                          request->decode_worker,
                                                          " left the cluster")));
  };
  if (worker == nullptr) return left();
  auto* stream = new DecodeStream(this, request, std::move(worker), /*early=*/false);
  if (!stream->Open()) {
    delete stream;
    left();
  }
}

RouterService::DecodeStream* RouterService::OpenEarlyStream(
    const std::shared_ptr<Request>& request) {
  std::shared_ptr<Worker> worker;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = workers_.find(request->decode_worker);
        it != workers_.end() && it->second->decode != nullptr) {
      worker = it->second;
    }
  }
  if (worker == nullptr) return nullptr;
  auto* stream = new DecodeStream(this, request, std::move(worker), /*early=*/true);
  if (!stream->Open()) {
    delete stream;
    return nullptr;
  }
  return stream;
}

void RouterService::CancelEarlyStream(DecodeStream* stream) { stream->Cancel(); }

void RouterService::SettleEarlyStream(DecodeStream* stream, bool prefill_ok) {
  // Counted where Continue counts it for a stream opened afterwards.
  if (prefill_ok) metrics_->OnPromptDone(stream->prompt_tokens());
  stream->Settle(prefill_ok);
}

bool RouterService::DecodeStream::Open() {
  const RouterOptions& o = router_->options_;
  // An early stream waits for the prefill too: its waits are longer by the prefill's deadline,
  // within which the router settles it.
  const absl::Duration before_kv = early_ ? o.prefill_timeout : absl::ZeroDuration();
  SetDeadline(ctx_, before_kv + o.transfer_timeout + o.decode_timeout);
  decode_.set_request_id(request_->id);
  decode_.mutable_prompt_tokens()->Assign(request_->prompt.begin(), request_->prompt.end());
  decode_.set_max_tokens(request_->max_tokens);
  decode_.set_seed(request_->seed);
  decode_.set_transfer_timeout_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(before_kv + o.transfer_timeout)));
  decode_.set_epoch(request_->decode_epoch);
  if (request_->kv_checksum.has_value()) decode_.set_prompt_kv_checksum(*request_->kv_checksum);
  out_.request_id = request_->id;
  // Tracked, so that dropping the worker (or stopping the router) cancels the call; refused
  // when the worker left or the router stops.
  if (!router_->TrackRpc(worker_->id, &ctx_)) return false;
  {
    absl::MutexLock lock(&request_->stream_mu);
    request_->stream = &ctx_;
  }
  if (request_->cancelled) ctx_.TryCancel();  // cancelled before the stream was known
  watch_ = router_->watchdog_.Start(request_->id, worker_->id, SteadyNow(),
                                    before_kv + o.transfer_timeout + o.token_timeout,
                                    o.token_timeout, [this] { ctx_.TryCancel(); });
  worker_->decode->async()->Decode(&ctx_, &decode_, this);
  if (early_) {
    AddHold();  // Settle lifts it
  } else {
    StartRead(&in_);
  }
  StartCall();
  return true;
}

void RouterService::DecodeStream::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended: OnDone follows
  watch_->Progress(SteadyNow());
  RouterMetrics& metrics = *router_->metrics_;
  if (in_.tokens_size() > 0) {
    const int64_t now_us = WallMicros();
    if (first_token_us_ == 0) {
      first_token_us_ = now_us;
      metrics.OnFirstToken(static_cast<double>(now_us - request_->timeline.arrival_us()) * 1e-6);
    } else {
      metrics.OnTokenGap(static_cast<double>(now_us - last_token_us_) * 1e-6);
    }
    last_token_us_ = now_us;
    metrics.OnTokens(in_.tokens_size());
  }
  out_.tokens.assign(in_.tokens().begin(), in_.tokens().end());
  out_.position = in_.position();
  out_.first = received_ == 0;
  if (out_.first) out_.prompt_tokens = static_cast<int32_t>(request_->prompt.size());
  received_ += static_cast<int>(out_.tokens.size());
  if (in_.finished()) {
    finished_ = true;
    out_.finished = true;
    out_.finish_reason = in_.finish_reason();
    v1::RequestTimeline& t = request_->timeline;
    t.set_first_token_us(in_.timeline().first_token_us());
    t.set_finish_us(WallMicros());
    t.set_decode_join_us(in_.timeline().decode_join_us());
    t.set_modelled_first_step_us(in_.timeline().modelled_first_step_us());
    t.set_decode_verify_cpu_us(in_.timeline().decode_verify_cpu_us());
    t.set_decode_admitted_us(in_.timeline().decode_admitted_us());
    t.set_kv_landed_us(in_.timeline().kv_landed_us());
    t.set_first_token_relayed_us(first_token_us_);
    out_.times = TimesOf(t);
  }
  if (request_->cancelled || !request_->sink->OnEvent(out_)) {
    client_gone_ = true;
    ctx_.TryCancel();  // OnDone follows
    return;
  }
  StartRead(&in_);
}

void RouterService::DecodeStream::End(const grpc::Status& status) {
  {
    absl::MutexLock lock(&request_->stream_mu);
    request_->stream = nullptr;
  }
  router_->UntrackRpc(worker_->id, &ctx_);
  const bool stalled = watch_->stalled();
  watch_.reset();  // before ctx_ goes: the watchdog's cancel names it
  if (prefill_failed_) {
    // The executor released the blocks and failed the request: it ends with the prefill's
    // error, whatever the cancelled call says.
    router_->Continue(request_);
  } else {
    router_->Complete(request_, Outcome(status, stalled));
  }
  delete this;
}

absl::Status RouterService::DecodeStream::Outcome(const grpc::Status& status, bool stalled) {
  const std::string& worker = worker_->id;
  const std::string& id = request_->id;
  if (finished_ && status.ok()) {
    router_->metrics_->OnFinished({.arrival_us = request_->timeline.arrival_us(),
                                   .scheduled_us = request_->timeline.scheduled_us(),
                                   .first_token_us = first_token_us_,
                                   .last_token_us = last_token_us_,
                                   .generated = received_,
                                   .finish_reason = out_.finish_reason,
                                   .ttft_events = TtftEventsOf(request_->timeline)});
    router_->RecordOutcome(worker, absl::OkStatus());
    router_->FinishRequest(request_, true);
    return absl::OkStatus();
  }
  if (stalled) return router_->FailStalled(request_, received_);
  const bool client_gone = client_gone_ || request_->cancelled;
  if (!client_gone) {
    router_->RecordOutcome(worker, status.ok()
                                       ? absl::InternalError("decode stream ended unfinished")
                                       : FromGrpc(status));
  }
  // Whatever happened, the decode worker must not keep the request's blocks; the prefill had
  // succeeded, so no more KV will land in them.
  router_->ReleaseOnDecode(worker, id, {.epoch = request_->decode_epoch});
  router_->FinishRequest(request_, false);
  if (client_gone) {
    return absl::CancelledError(absl::StrCat("request ", id, " cancelled by the client"));
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::CANCELLED) {
    router_->ProbeWorker(worker);
    return absl::UnavailableError(absl::StrCat("request ", id, ": decode worker ", worker,
                                               " failed after ", received_,
                                               " tokens: ", status.error_message()));
  }
  if (status.ok()) {
    return absl::InternalError(
        absl::StrCat("request ", id, ": decode stream from ", worker, " ended without finishing"));
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("request ", id, ": ", worker, ": ", status.error_message()));
}

}  // namespace pdserve::router
