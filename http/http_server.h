#pragma once

// The OpenAI-compatible HTTP API of the router (POST /v1/completions, /v1/chat/completions;
// GET /v1/models, /health, /ready, /version; the core's Prometheus series on GET /metrics), a
// front end over the router's request core (router/request_core.h) like gRPC Generate: same
// validation, errors and accounting.
//
// Built on Boost.Beast over Asio: a fixed pool of io_context threads owns every socket (no
// thread per connection); a request that generates is started on the core (RequestCore::Start),
// whose threads queue its bytes on the connection's strand: no thread waits on a request, and
// requests in flight are bounded by max_inflight. Hostile clients are bounded: body and header bytes, JSON depth
// (http/openai_request.h), idle and write timeouts, connection count.
//
// Lifecycle: Start binds and serves; destroying the server stops accepting, closes every
// connection (their requests are cancelled through the core, which frees their KV blocks),
// waits for the requests in flight to end and joins its threads. The core must outlive it.

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "router/request_core.h"

namespace pdserve::http {

struct HttpOptions {
  std::string host;  // empty: the router's --host
  int port = 8000;   // vLLM's default; 0: a free one
  int io_threads = 2;
  size_t max_body_bytes = 1 << 20;
  uint32_t max_header_bytes = 16 << 10;
  int max_connections = 4096;                        // more are closed at once
  int max_inflight = 4096;                           // generating requests; more get 429
  absl::Duration idle_timeout = absl::Seconds(60);   // a connection reading a request
  absl::Duration write_timeout = absl::Seconds(30);  // one write to a client that does not read
};

class ServerState;

class HttpServer final : public router::FrontEnd {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(router::RequestCore& core,
                                                           HttpOptions options);
  ~HttpServer() override;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const override;

 private:
  explicit HttpServer(std::shared_ptr<ServerState> state) : state_(std::move(state)) {}
  std::shared_ptr<ServerState> state_;
};

}  // namespace pdserve::http
