#pragma once

// One completion request served over HTTP: starts it on the router core and writes the
// response, as SSE chunks (stream = true) or as one JSON body, to a ResponseChannel as the
// core's events arrive (on the core's threads; nothing here blocks). Independent of sockets:
// the connection supplies the channel.
//
// The response head is written with the first token, not before: a request the core rejects
// (400, 429, 503, ...) still gets its own HTTP status and an error body. An error after the
// first token can only be told in-band: a `data: {"error": {...}}` event before `[DONE]`.

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "http/openai_request.h"
#include "router/request_core.h"

namespace pdserve::http {

// Where a response's bytes go; owned by the connection (and by the request while it runs).
class ResponseChannel {
 public:
  virtual ~ResponseChannel() = default;
  // Queues `bytes` for the client without blocking; false when the client is gone or too far
  // behind (then every later Send fails too, and the core cancels the request).
  virtual bool Send(std::string bytes) = 0;
  // The response is over: written whole (`whole`, so that the connection may serve another
  // request once the bytes are out) or cut short. Called once, last.
  virtual void End(bool whole) = 0;
};

// The response id of the core's request `request_id`: "cmpl-<hex>" for completions,
// "chatcmpl-<hex>" for chat, as vLLM names them (the core's own ids are "cmpl-<hex>").
std::string ResponseId(Endpoint endpoint, absl::string_view request_id);

// Starts `request` (already parsed) on the core and returns its call, for the connection to
// cancel when the client leaves. The response goes to `channel`, ending with End.
std::shared_ptr<router::Call> StartCompletion(router::RequestCore& core, OpenAiRequest request,
                                              std::shared_ptr<ResponseChannel> channel,
                                              bool keep_alive);

}  // namespace pdserve::http
