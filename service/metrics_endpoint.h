#pragma once

// A small HTTP/1.1 endpoint that answers GET /metrics with a registry's Prometheus text
// (metrics/text_format.h) and GET /health with 200: what each worker serves on --metrics-port.
// The router serves its /metrics on its HTTP API instead (http/), which workers do not link.
//
// Boost.Beast over Asio, as http/ does: one io thread owns every socket (no thread per
// connection); a scrape serializes on that thread. Hostile clients are bounded: 8 KiB of
// headers, no body, 10 s to send a request, 64 connections at once (more are closed at once).
// Connections are kept alive between scrapes, as Prometheus wants.
//
// Lifecycle: Start binds (port 0: a free one, see port()) and serves; destroying the endpoint
// stops accepting, closes every connection and joins its thread. The registry must outlive it.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "metrics/registry.h"

namespace pdserve::service {

class MetricsEndpointState;

class MetricsEndpoint {
 public:
  // Unavailable when host:port cannot be bound; InvalidArgument for a host that is not an IP.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& host, int port,
                                                                const metrics::Registry& registry);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const;

 private:
  explicit MetricsEndpoint(std::shared_ptr<MetricsEndpointState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<MetricsEndpointState> state_;
};

}  // namespace pdserve::service
