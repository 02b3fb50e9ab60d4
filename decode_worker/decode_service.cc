#include "decode_worker/decode_service.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/logging.h"

namespace pdserve::decode {

using service::ToGrpc;

DecodeService::DecodeService(DecodeEngine& engine, transfer::KvTransport& transport,
                             DecodeServiceOptions options)
    : engine_(engine), transport_(transport), options_(std::move(options)) {}

v1::WorkerCapacity DecodeService::Capacity() const {
  const DecodeCapacity c = engine_.Capacity();
  v1::WorkerCapacity out;
  out.set_total_blocks(c.total_blocks);
  out.set_free_blocks(c.free_blocks);
  out.set_running_requests(c.running_requests);
  return out;
}

grpc::Status DecodeService::Allocate(grpc::ServerContext*, const v1::AllocateRequest* request,
                                     v1::AllocateResponse* response) {
  absl::StatusOr<std::vector<BlockId>> blocks =
      engine_.Allocate(request->request_id(), request->prompt_len(), request->max_tokens());
  if (!blocks.ok()) return ToGrpc(blocks.status());
  for (BlockId b : *blocks) response->mutable_blocks()->add_block_ids(b);
  response->set_reserved_blocks(static_cast<uint32_t>(
      engine_.cache().config().BlocksForTokens(int64_t{request->prompt_len()} +
                                               request->max_tokens())));
  ComponentLogger("decode")->debug("request {}: allocated {} prompt blocks", request->request_id(),
                                   blocks->size());
  return grpc::Status::OK;
}

grpc::Status DecodeService::Decode(grpc::ServerContext* ctx, const v1::DecodeRequest* request,
                                   grpc::ServerWriter<v1::GenerateResponse>* writer) {
  auto log = ComponentLogger("decode");
  const std::string& id = request->request_id();
  if (request->prompt_tokens().empty() || request->max_tokens() <= 0) {
    absl::Status bad = absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": empty prompt or non-positive max_tokens"));
    (void)engine_.Release(id, bad);
    return ToGrpc(bad);
  }
  const absl::Duration transfer_timeout = request->transfer_timeout_ms() > 0
                                              ? absl::Milliseconds(request->transfer_timeout_ms())
                                              : options_.transfer_timeout;
  // The prefill worker's notification says every byte of the prompt's KV has landed.
  if (absl::Status landed = transport_.WaitForNotification(id, transfer_timeout); !landed.ok()) {
    absl::Status failed = absl::Status(
        landed.code() == absl::StatusCode::kDeadlineExceeded ? absl::StatusCode::kDeadlineExceeded
                                                             : absl::StatusCode::kUnavailable,
        absl::StrCat("request ", id, ": the prompt's KV did not arrive on ", options_.worker_id,
                     ": ", landed.ToString()));
    log->warn("{}", failed.ToString());
    (void)engine_.Release(id, failed);
    return ToGrpc(failed);
  }
  std::vector<int32_t> prompt(request->prompt_tokens().begin(), request->prompt_tokens().end());
  absl::StatusOr<std::shared_ptr<DecodeStream>> stream =
      engine_.Start(id, std::move(prompt), request->max_tokens(), request->seed());
  if (!stream.ok()) {
    (void)engine_.Release(id, stream.status());
    return ToGrpc(stream.status());
  }
  bool first = true;
  while (true) {
    DecodeStream::Chunk chunk = (*stream)->Next(options_.cancel_poll);
    if (ctx->IsCancelled()) {
      (void)engine_.Release(id, absl::CancelledError(absl::StrCat("request ", id, " cancelled")));
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
      served_++;
    }
    if (!writer->Write(response)) {
      (void)engine_.Release(id, absl::CancelledError(absl::StrCat("request ", id, ": client gone")));
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          absl::StrCat("request ", id, ": the stream to the router broke"));
    }
    if (chunk.finished) return grpc::Status::OK;
  }
}

grpc::Status DecodeService::Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse*) {
  absl::Status released = engine_.Release(
      request->request_id(),
      absl::AbortedError(absl::StrCat("request ", request->request_id(), " released by the router")));
  // Releasing what is already gone is fine: Release is how the router makes sure.
  if (released.code() == absl::StatusCode::kNotFound) return grpc::Status::OK;
  return ToGrpc(released);
}

grpc::Status DecodeService::GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                                      v1::WorkerStatus* response) {
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
  return grpc::Status::OK;
}

}  // namespace pdserve::decode
