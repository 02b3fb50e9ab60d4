#pragma once

// One completion request served over HTTP: runs it through the router core and writes the
// response, as SSE chunks (stream = true) or as one JSON body, to a ResponseChannel. Independent
// of sockets: the connection supplies the channel.
//
// The response head is written with the first token, not before: a request the core rejects
// (400, 429, 503, ...) still gets its own HTTP status and an error body. An error after the
// first token can only be told in-band: a `data: {"error": {...}}` event before `[DONE]`.

#include <string>

#include "absl/strings/string_view.h"
#include "http/openai_request.h"
#include "router/request_core.h"

namespace pdserve::http {

// Where a response's bytes go; owned by the connection.
class ResponseChannel {
 public:
  virtual ~ResponseChannel() = default;
  // Writes `bytes`, blocking until they are written (the client's pace is the request's pace);
  // false when the client is gone or too slow (then every later Send fails too).
  virtual bool Send(std::string bytes) = 0;
  // True once the client closed its side or the server is stopping.
  virtual bool ClientGone() const = 0;
};

// The response id of the core's request `request_id`: "cmpl-<hex>" for completions,
// "chatcmpl-<hex>" for chat, as vLLM names them (the core's own ids are "cmpl-<hex>").
std::string ResponseId(Endpoint endpoint, absl::string_view request_id);

// Serves `request` (already parsed) to its end on the calling thread; returns whether the
// response was written whole, so that the connection may serve another request.
bool ServeCompletion(router::RequestCore& core, OpenAiRequest request, ResponseChannel& channel,
                     bool keep_alive);

}  // namespace pdserve::http
