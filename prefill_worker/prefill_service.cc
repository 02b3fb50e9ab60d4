#include "prefill_worker/prefill_service.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/wire_status.h"
#include "service/grpc_util.h"

namespace pdserve::prefill {

PrefillService::PrefillService(PrefillEngine& engine, transfer::KvTransport& transport,
                               PrefillServiceOptions options)
    : engine_(engine), transport_(transport), options_(std::move(options)) {}

v1::WorkerCapacity PrefillService::Capacity() const {
  v1::WorkerCapacity out;
  out.set_total_blocks(engine_.cache().allocator().num_blocks());
  out.set_free_blocks(engine_.cache().allocator().num_free());
  out.set_running_requests(engine_.counters().running);
  return out;
}

namespace {

// Longest batch of items one Cancel may name: the router names one Prefill batch at a time.
constexpr int kMaxCancelItems = 4096;

v1::PrefillCancelOutcome ToProto(CancelOutcome outcome) {
  switch (outcome) {
    case CancelOutcome::kNotStarted:
      return v1::PREFILL_CANCEL_NOT_STARTED;
    case CancelOutcome::kCancelled:
      return v1::PREFILL_CANCEL_CANCELLED;
    case CancelOutcome::kCompleted:
      return v1::PREFILL_CANCEL_TRANSFER_COMPLETED;
    case CancelOutcome::kFailed:
      return v1::PREFILL_CANCEL_TRANSFER_FAILED;
    case CancelOutcome::kInFlight:
      break;
  }
  return v1::PREFILL_CANCEL_IN_FLIGHT;
}

}  // namespace

grpc::Status PrefillService::Prefill(grpc::ServerContext* ctx, const v1::PrefillBatchRequest* request,
                                     v1::PrefillBatchResponse* response) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.Prefill"); !auth.ok()) {
    return auth;
  }
  const absl::Time deadline = ctx->deadline() == std::chrono::system_clock::time_point::max()
                                  ? absl::InfiniteFuture()
                                  : absl::FromChrono(ctx->deadline());
  *response = RunBatch(*request, [ctx] { return ctx->IsCancelled(); }, deadline);
  return grpc::Status::OK;
}

v1::PrefillBatchResponse PrefillService::RunBatch(const v1::PrefillBatchRequest& request_in,
                                                  const std::function<bool()>& cancelled,
                                                  absl::Time deadline) {
  const v1::PrefillBatchRequest* request = &request_in;
  v1::PrefillBatchResponse out_response;
  v1::PrefillBatchResponse* response = &out_response;
  std::vector<PrefillItemSpec> items;
  items.reserve(request->items_size());
  for (const v1::PrefillItem& in : request->items()) {
    items.push_back(PrefillItemSpec{
        .request_id = in.request_id(),
        .prompt = {in.prompt_tokens().begin(), in.prompt_tokens().end()},
        .decode_worker = in.decode_worker_id(),
        .decode_blocks = {in.decode_blocks().block_ids().begin(),
                          in.decode_blocks().block_ids().end()},
        .decode_epoch = in.decode_epoch(),
        .destination_follows = in.destination_follows()});
  }
  // The router leaving the call (its deadline, a drop) stops what has not been submitted yet.
  // Answer before that deadline: a transfer to a stalled decode worker then fails its own item
  // (naming that worker) instead of the router failing every item of the batch.
  absl::Time answer_by = absl::InfiniteFuture();
  if (deadline != absl::InfiniteFuture()) {
    answer_by = deadline - std::min(absl::Milliseconds(200), (deadline - absl::Now()) / 5);
  }
  const std::vector<PrefillItemOutcome> outcomes = engine_.Run(items, cancelled, answer_by);
  CountTransfers(outcomes);
  for (const PrefillItemOutcome& out : outcomes) {
    v1::PrefillItemResult* r = response->add_results();
    r->set_request_id(out.request_id);
    r->set_ok(out.status.ok());
    if (!out.status.ok()) {
      r->set_error(std::string(out.status.message()));
      r->set_error_code(static_cast<int32_t>(out.status.code()));
    }
    r->set_prefill_start_us(out.prefill_start_us);
    r->set_prefill_end_us(out.prefill_end_us);
    r->set_transfer_start_us(out.transfer_start_us);
    r->set_transfer_end_us(out.transfer_end_us);
    r->set_kv_bytes(out.kv_bytes);
    r->set_transfer_ops(out.transfer_ops);
    r->set_transfer_batches(out.transfer_batches);
    r->set_transfer_busy_us(out.transfer_busy_us);
    r->set_transfer_copy_wait_us(out.transfer_copy_wait_us);
    // Only where the transport chooses per peer: the router knows the registered backend.
    if (out.transfer_backend != transport_.backend()) r->set_transfer_backend(out.transfer_backend);
    r->set_transports(out.transports);
    r->set_modelled_prefill_us(out.modelled_us);
    r->set_mock_cpu_us(out.mock_us);
    if (out.kv_checksum.has_value()) r->set_kv_checksum(*out.kv_checksum);
    r->set_transfer_in_flight(out.transfer_in_flight);
  }
  return out_response;
}

void PrefillService::CountTransfers(const std::vector<PrefillItemOutcome>& outcomes) {
  if (options_.metrics == nullptr) return;
  std::string transport;  // read once per batch, and only when a transfer completed
  for (const PrefillItemOutcome& out : outcomes) {
    if (out.transfer_start_us == 0) continue;  // refused or cancelled before its transfer
    if (!out.status.ok()) {
      options_.metrics->OnTransferFailed();
      continue;
    }
    if (transport.empty()) transport = service::TransportLabel(transport_.counters().transports);
    options_.metrics->OnTransfer(
        transport, static_cast<double>(out.transfer_end_us - out.transfer_start_us) * 1e-6,
        out.kv_bytes);
    options_.metrics->OnRequestServed();
  }
}

grpc::Status PrefillService::Cancel(grpc::ServerContext* ctx,
                                    const v1::PrefillCancelRequest* request,
                                    v1::PrefillCancelResponse* response) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.Cancel"); !auth.ok()) {
    return auth;
  }
  if (request->items_size() > kMaxCancelItems) {
    return service::ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("Cancel names ", request->items_size(), " items; at most ",
                     kMaxCancelItems)));
  }
  std::vector<ItemFence::Key> keys;
  keys.reserve(request->items_size());
  for (const v1::PrefillCancelItem& item : request->items()) {
    keys.emplace_back(item.request_id(), item.decode_epoch());
  }
  // Answer before the caller's deadline: an item still in flight then is reported as such.
  absl::Duration wait = absl::Seconds(30);
  if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
    wait = std::min(wait, absl::FromChrono(ctx->deadline()) - absl::Now() - absl::Milliseconds(200));
  }
  const std::vector<CancelOutcome> outcomes = engine_.Cancel(keys, wait);
  for (size_t i = 0; i < keys.size(); ++i) {
    v1::PrefillCancelResult* r = response->add_results();
    r->set_request_id(keys[i].first);
    r->set_decode_epoch(keys[i].second);
    r->set_outcome(ToProto(outcomes[i]));
  }
  return grpc::Status::OK;
}

grpc::Status PrefillService::SetDestinations(grpc::ServerContext* ctx,
                                             const v1::PrefillDestinationsRequest* request,
                                             v1::PrefillDestinationsResponse*) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.SetDestinations");
      !auth.ok()) {
    return auth;
  }
  return service::ToGrpc(PostDestinations(*request));
}

absl::Status PrefillService::PostDestinations(const v1::PrefillDestinationsRequest& in) {
  const v1::PrefillDestinationsRequest* request = &in;
  if (request->items_size() > kMaxCancelItems) {
    return absl::InvalidArgumentError(absl::StrCat("SetDestinations names ",
                                                   request->items_size(), " items; at most ",
                                                   kMaxCancelItems));
  }
  // Bounded here, checked against the item (block count, pool, duplicates) when it takes them.
  const int64_t max_blocks = engine_.cache().config().BlocksForTokens(
      engine_.cache().config().max_model_len);
  for (const v1::PrefillDestination& d : request->items()) {
    if (d.request_id().empty() || d.request_id().size() > PrefillEngine::kMaxRequestIdBytes ||
        d.decode_epoch() == 0 || d.decode_blocks().block_ids_size() > max_blocks ||
        d.error().size() > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SetDestinations: an item with an id of ", d.request_id().size(), " bytes, epoch ",
          d.decode_epoch(), ", ", d.decode_blocks().block_ids_size(), " blocks (at most ",
          max_blocks, ") or an error of ", d.error().size(), " bytes"));
    }
  }
  absl::Status first_refused;  // every item is posted, whatever happens to the others
  for (const v1::PrefillDestination& d : request->items()) {
    DestinationBoard::Destination destination =
        std::vector<BlockId>(d.decode_blocks().block_ids().begin(),
                             d.decode_blocks().block_ids().end());
    if (!d.error().empty()) {
      // A code from another process: only a failing one that absl knows is taken as given.
      // Escaped: it ends up in this worker's log and in the item's error.
      destination = absl::Status(FailureCodeFromWire(d.error_code(), absl::StatusCode::kAborted),
                                 absl::StrCat("the router says: ", absl::CEscape(d.error())));
    }
    absl::Status posted =
        engine_.PostDestination(d.request_id(), d.decode_epoch(), std::move(destination));
    if (!posted.ok() && first_refused.ok()) first_refused = posted;
  }
  return first_refused;
}

std::map<service::FastMethod, service::FastLaneServer::Method> PrefillService::FastMethods() {
  std::map<service::FastMethod, service::FastLaneServer::Method> m;
  m[service::FastMethod::kPrefill] =
      service::ProtoMethod<v1::PrefillBatchRequest, v1::PrefillBatchResponse>(
          "PrefillBatchRequest", /*on_reader_thread=*/false,
          [this](const v1::PrefillBatchRequest& request, const service::FastCall& call)
              -> absl::StatusOr<v1::PrefillBatchResponse> {
            return RunBatch(request, [&call] { return call.cancelled(); }, call.deadline());
          });
  m[service::FastMethod::kSetDestinations] =
      service::ProtoMethod<v1::PrefillDestinationsRequest, v1::PrefillDestinationsResponse>(
          "PrefillDestinationsRequest", /*on_reader_thread=*/true,
          [this](const v1::PrefillDestinationsRequest& request, const service::FastCall&)
              -> absl::StatusOr<v1::PrefillDestinationsResponse> {
            absl::Status posted = PostDestinations(request);
            if (!posted.ok()) return posted;
            return v1::PrefillDestinationsResponse();
          });
  return m;
}


grpc::Status PrefillService::AddPeer(grpc::ServerContext* ctx, const v1::AddPeerRequest* request,
                                     v1::AddPeerResponse*) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.AddPeer"); !auth.ok()) {
    return auth;
  }
  return service::ToGrpc(
      engine_.AddPeer(request->worker_id(), request->kv_pool().transport_descriptor(),
                      request->kv_pool().num_blocks()));
}

grpc::Status PrefillService::RemovePeer(grpc::ServerContext* ctx,
                                        const v1::RemovePeerRequest* request,
                                        v1::RemovePeerResponse*) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.RemovePeer"); !auth.ok()) {
    return auth;
  }
  return service::ToGrpc(engine_.RemovePeer(request->worker_id(), request->transport_descriptor()));
}

grpc::Status PrefillService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest*,
                                       v1::WorkerStatus* response) {
  if (grpc::Status auth = options_.auth->Check(*ctx, "PrefillWorker.GetStatus"); !auth.ok()) {
    return auth;
  }
  response->set_worker_id(options_.worker_id);
  response->set_role(v1::WORKER_ROLE_PREFILL);
  response->set_address(options_.address);
  *response->mutable_capacity() = Capacity();
  response->set_healthy(true);
  const PrefillCounters counters = engine_.counters();
  response->set_requests_served(counters.requests);
  response->set_kv_bytes_transferred(counters.kv_bytes);
  v1::EngineCounters* engine = response->mutable_engine();
  engine->set_steps(counters.batches);
  engine->set_overrun_steps(counters.overrun_batches);
  engine->set_work_us(counters.work_us);
  engine->set_modelled_us(counters.modelled_us);
  engine->set_mock_cpu_us(counters.mock_us);
  engine->set_overrun_us(counters.overrun_us);
  const transfer::TransportCounters transport = transport_.counters();
  response->set_registrations(transport.registrations);
  response->set_transfer_backend(options_.reported_backend.empty() ? transport_.backend()
                                                                   : options_.reported_backend);
  response->set_transports(transport.transports);
  v1::TransferCounters* t = response->mutable_transfer();
  t->set_batches_submitted(transport.batches_submitted);
  t->set_batches_completed(transport.batches_completed);
  t->set_batches_failed(transport.batches_failed);
  t->set_bytes_sent(transport.bytes_sent);
  t->set_operations_issued(transport.operations_issued);
  t->set_peers_loaded(transport.peers_loaded);
  t->set_same_host_network_peers(transport.same_host_network_peers);
  response->set_pid(getpid());
  response->set_live(true);
  return grpc::Status::OK;
}

}  // namespace pdserve::prefill
