#pragma once

// The router's transport-neutral request core: what every client front end (gRPC Generate,
// the OpenAI-compatible HTTP API) calls, so that they validate, fail and account identically.
//
// Use: fill a GenerateParams, call RequestCore::Run with a TokenSink, and map the returned
// status onto the transport. Run blocks the calling thread for the request's whole life
// (queue, prefill, KV transfer, decode): it validates the request (InvalidArgument), queues it
// (ResourceExhausted when the queue is full, Unavailable without a prefill or decode worker,
// AlreadyExists for a request id in use), waits for its prefill, then hands every chunk of
// tokens to the sink, the last one with finished = true and the request's timeline. It returns
// OK when the model finished the request (the final chunk was handed to the sink).
// Cancelling = the sink's Cancelled() turning true (or Write returning false): the core notices
// while queued (within 50 ms) and at the next chunk while decoding, releases the request's KV
// blocks on every worker and returns Cancelled. No transport types cross this header.

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
  int64_t modelled_prefill_us = 0;
  int64_t prefill_mock_cpu_us = 0;
  int64_t decode_join_us = 0;
  int64_t modelled_first_step_us = 0;
  int64_t decode_verify_cpu_us = 0;
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

// Where the core delivers a request's chunks; owned by the front end, called on the thread
// that runs Generate.
class TokenSink {
 public:
  virtual ~TokenSink() = default;
  // Delivers one chunk; false when the client is gone (the core then cancels the request).
  virtual bool Write(const TokenEvent& event) = 0;
  // True once the client gave up; polled by the core while the request waits.
  virtual bool Cancelled() const = 0;
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
  // Runs one request to its end (see the top of this file); thread-safe, blocking.
  virtual absl::Status Run(const GenerateParams& params, TokenSink& sink) = 0;
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
