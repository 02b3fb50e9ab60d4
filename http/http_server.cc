#include "http/http_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "http/http_connection.h"

namespace pdserve::http {
namespace {

void Accept(const std::shared_ptr<ServerState>& state) {
  state->acceptor->async_accept(
      net::make_strand(*state->ioc), [state](beast::error_code ec, tcp::socket socket) {
        if (state->stopping || ec == net::error::operation_aborted) return;
        if (!ec) {
          if (state->connections() >= state->options.max_connections) {
            beast::error_code ignored;
            socket.close(ignored);  // over the bound: refused without a word
          } else {
            std::make_shared<Connection>(std::move(socket), state)->Start();
          }
        }
        Accept(state);
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(router::RequestCore& core,
                                                              HttpOptions options) {
  auto state = std::make_shared<ServerState>(core, std::move(options));
  const HttpOptions& o = state->options;
  if (o.host.empty()) return absl::InvalidArgumentError("HTTP API: no host to listen on");
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(o.host, ec);
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat("HTTP host '", o.host, "': ", ec.message()));
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(o.port));
  state->acceptor->open(endpoint.protocol(), ec);
  if (!ec) state->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor->bind(endpoint, ec);
  if (!ec) state->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", o.host, ":", o.port, ": ", ec.message()));
  }
  state->port = state->acceptor->local_endpoint().port();
  Accept(state);
  for (int i = 0; i < std::max(1, o.io_threads); ++i) {
    state->threads.emplace_back([s = state.get()] { s->ioc->run(); });
  }
  ComponentLogger("http")->info("OpenAI-compatible HTTP API on http://{}:{} ({} io threads)",
                                o.host, state->port, o.io_threads);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

int HttpServer::port() const { return state_->port; }

HttpServer::~HttpServer() {
  state_->stopping = true;
  net::post(*state_->ioc, [s = state_.get()] {
    beast::error_code ignored;
    s->acceptor->close(ignored);
  });
  // Closed connections cancel their requests; the io threads keep running until those have
  // written their last bytes (or failed to), since Send waits on them.
  state_->CloseAll();
  state_->AwaitNoRequests();
  state_->ioc->stop();
  for (std::thread& t : state_->threads) t.join();
  // Handlers never run hold connections, which hold the state: dropped here, in this order.
  state_->acceptor.reset();
  state_->ioc.reset();
}

}  // namespace pdserve::http
