#pragma once

// One streamed OpenAI completion over HTTP/1.1, the HTTP path's GenerateCall: asynchronous on
// the transport's io threads (no thread per request); body bytes are parsed as they are read
// (Beast's chunk callback -> SseParser -> OpenAiStreamReader) and timestamped there, so a token
// chunk's time is when its bytes reached the client.
//
// A request sent on a kept-alive connection that the server had closed meanwhile fails before
// any byte of a response; it is sent once more on a new connection (as HTTP clients do for
// idempotent reuse failures), never after a response began.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "boost/beast/http.hpp"
#include "loadgen/call_tracker.h"
#include "loadgen/http_transport.h"
#include "loadgen/openai_stream.h"
#include "loadgen/request_record.h"
#include "loadgen/sse_parser.h"

namespace pdserve::loadgen {

class HttpStreamCall {
 public:
  // `request` (the whole HTTP request's bytes) must live until the call is done; `record` is
  // filled in as chunks arrive, times relative to `t0_ns`. The object must outlive the call
  // (until the tracker has counted it done).
  HttpStreamCall(HttpTransport* transport, const std::string* request, bool chat, double timeout_s,
                 RequestRecord* record, CallTracker* tracker, int64_t t0_ns);

  // From the sender thread: takes a connection and sends.
  void Start();

 private:
  void Begin();  // on the connection's strand from here on
  void OnConnect(beast::error_code ec);
  void Write();
  void OnWrite(beast::error_code ec);
  void OnRead(beast::error_code ec);
  size_t OnBody(std::string_view bytes);
  bool RetryOnNewConnection(const beast::error_code& ec);
  void Complete(std::string error, bool keep_connection);

  HttpTransport* transport_;
  const std::string* request_;
  const double timeout_s_;
  RequestRecord* record_;
  CallTracker* tracker_;
  const int64_t t0_ns_;
  std::unique_ptr<HttpTransport::Connection> connection_;
  bool reused_ = false;  // sent on a kept-alive connection
  bool retried_ = false;
  std::optional<beast::http::response_parser<beast::http::string_body>> parser_;
  // Beast keeps a reference to the callback: it lives here, as long as the parser.
  std::function<size_t(uint64_t, beast::string_view, beast::error_code&)> on_chunk_;
  std::string error_body_;  // a chunked answer other than 200
  SseParser sse_;
  OpenAiStreamReader reader_;
};

// The bytes of a streaming POST of `json_body` to `path` on `endpoint`.
std::string StreamingPost(const HttpEndpoint& endpoint, const std::string& path,
                          const std::string& json_body);

}  // namespace pdserve::loadgen
