#pragma once

// The router's transport-neutral request core: what every client front end (gRPC Generate,
// the OpenAI-compatible HTTP API) calls, so that they validate, fail and account identically.
//
// Use: fill a GenerateParams and call RequestCore::Start with an EventSink. Start returns at
// once (no thread is held for the request's life): it validates the request (InvalidArgument),
// queues it (ResourceExhausted when the queue is full, Unavailable without a prefill or decode
// worker, AlreadyExists for a request id in use), and from then on the core's own threads hand
// every chunk of tokens to the sink, the last one with finished = true and the request's
// timeline, then end the request with OnDone: OK when the model finished it, the error
// otherwise. Cancelling = Call::Cancel (or OnEvent returning false): the core drops a queued
// request at once, stops a decoding one at its next chunk, releases the request's KV blocks on
// every worker and ends it with Cancelled. Both front ends (gRPC's callback reactor,
// router/generate_reactor.h, and the HTTP server, http/) hold no thread per request. No
// transport types cross this header.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "metrics/registry.h"

namespace pdserve::router {

// One generation request, as a client states it. Exactly one of prompt_tokens, prompt_text and
// prompt_len gives the prompt (router/request_validation.h says what is rejected and why).
struct GenerateParams {
  std::string request_id;              // empty: the core assigns one
  std::vector<int32_t> prompt_tokens;  // explicit token ids, or
  std::string prompt_text;             // text for the synthetic tokenizer, or
  int32_t prompt_len = 0;              // a synthetic prompt of this many tokens from `seed`
  int32_t max_tokens = 0;              // tokens to generate (> 0)
  uint64_t seed = 0;                   // feeds the synthetic model's token rule
  std::string preset;                  // empty, or the cluster's preset
  bool ignore_eos = false;             // accepted for vLLM compatibility: the mock has no EOS
};

// Server-side timestamps of one request, microseconds since the Unix epoch (system clock); the
// same fields as v1::RequestTimeline (pdserve.proto says what each one means).
struct RequestTimes {
  int64_t arrival_us = 0;
  int64_t scheduled_us = 0;
  int64_t prefill_start_us = 0;
  int64_t prefill_end_us = 0;
  int64_t transfer_start_us = 0;
  int64_t transfer_end_us = 0;
  int64_t first_token_us = 0;
  int64_t finish_us = 0;
  uint64_t kv_bytes = 0;
  std::string prefill_worker;
  std::string decode_worker;
  uint32_t transfer_ops = 0;
  std::string transfer_backend;
  std::string transports;  // RequestTimeline.transports
  int64_t modelled_prefill_us = 0;
  int64_t prefill_mock_cpu_us = 0;
  int64_t decode_join_us = 0;
  int64_t modelled_first_step_us = 0;
  int64_t decode_verify_cpu_us = 0;
  int64_t allocated_us = 0;
  int64_t decode_admitted_us = 0;
  int64_t kv_landed_us = 0;
  int64_t first_token_relayed_us = 0;
  uint32_t transfer_batches = 0;  // KV streamed in chunks: its batches and their busy time
  int64_t transfer_busy_us = 0;
  int64_t transfer_copy_wait_us = 0;  // RequestTimeline.transfer_copy_wait_us
};

// One chunk of a request's output. The core reuses one event per request: a sink that keeps
// anything past Write copies it.
struct TokenEvent {
  std::string request_id;
  std::vector<int32_t> tokens;  // new tokens, in order
  int32_t position = 0;         // sequence position of tokens[0]
  int32_t prompt_tokens = 0;    // set on the first chunk (the validated prompt's length)
  bool first = false;           // the first chunk
  bool finished = false;        // the last chunk: finish_reason and times are set
  std::string finish_reason;    // "length" when the model stopped at max_tokens
  RequestTimes times;
};

// Where the core delivers a request's chunks (Start). Called on the core's threads, one call
// at a time per request and in order; it must not block (a front end queues what it writes).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Delivers one chunk; false when the client is gone (the core then cancels the request).
  virtual bool OnEvent(const TokenEvent& event) = 0;
  // The request's end, exactly once and last: the core touches the sink no more after it.
  virtual void OnDone(const absl::Status& status) = 0;
};

// A started request, for its front end to cancel; Cancel is thread-safe and idempotent, and a
// no-op once the request ended.
class Call {
 public:
  virtual ~Call() = default;
  virtual void Cancel() = 0;
};

// What a front end may show of the cluster without a request (readiness, model listings).
struct CoreState {
  ModelConfig model;
  int prefill_workers = 0;  // registered (draining ones included)
  int decode_workers = 0;
  bool ready() const { return prefill_workers > 0 && decode_workers > 0; }
};

class RequestCore {
 public:
  virtual ~RequestCore() = default;
  // Starts one request (see the top of this file); thread-safe, never blocks on the cluster.
  // The sink may be called (OnDone for a request refused at once) before Start returns.
  virtual std::shared_ptr<Call> Start(const GenerateParams& params,
                                      std::shared_ptr<EventSink> sink) = 0;
  virtual CoreState State() const = 0;
  // The core's Prometheus series (router/router_metrics.h), served by front ends on GET
  // /metrics; null when the core keeps none.
  virtual const metrics::Registry* Metrics() const { return nullptr; }
};

// A client front end besides gRPC (the HTTP API in http/), started by the router process over
// its request core. Destroying it stops serving; it must be gone before the core is.
class FrontEnd {
 public:
  virtual ~FrontEnd() = default;
  virtual int port() const = 0;  // the port it bound
};
// Starts a front end over `core`; given by the caller (cli/), so that router/ needs no HTTP.
using FrontEndStarter = std::function<absl::StatusOr<std::unique_ptr<FrontEnd>>(RequestCore&)>;

}  // namespace pdserve::router
