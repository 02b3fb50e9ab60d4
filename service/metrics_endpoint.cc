#include "service/metrics_endpoint.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "common/thread_name.h"
#include "metrics/text_format.h"

namespace pdserve::service {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

constexpr uint32_t kMaxHeaderBytes = 8 << 10;
constexpr int kMaxConnections = 64;
constexpr auto kReadTimeout = std::chrono::seconds(10);   // to send a request once started
constexpr auto kIdleTimeout = std::chrono::seconds(120);  // between two scrapes

// Shared by the endpoint and its connections, so that none outlives what it uses.
class MetricsEndpointState {
 public:
  explicit MetricsEndpointState(const metrics::Registry& registry) : registry(registry) {}
  const metrics::Registry& registry;
  std::unique_ptr<net::io_context> ioc = std::make_unique<net::io_context>();
  std::unique_ptr<tcp::acceptor> acceptor = std::make_unique<tcp::acceptor>(*ioc);
  std::thread thread;
  std::atomic<int> connections{0};
  int port = 0;
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<MetricsEndpointState> state)
      : stream_(std::move(socket)), state_(std::move(state)) {
    state_->connections++;
  }
  ~Connection() { state_->connections--; }

  void Read(bool idle) {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(0);
    stream_.expires_after(idle ? kIdleTimeout : kReadTimeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return Close();  // timeouts, resets and malformed requests alike: nothing to say
    const bhttp::request<bhttp::empty_body> request = parser_->release();
    absl::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    response_ = bhttp::response<bhttp::string_body>();
    response_.version(11);
    response_.keep_alive(request.keep_alive());
    if (request.method() != bhttp::verb::get) {
      response_.result(bhttp::status::method_not_allowed);
      response_.set(bhttp::field::allow, "GET");
    } else if (target == "/metrics") {
      response_.result(bhttp::status::ok);
      response_.set(bhttp::field::content_type, metrics::kTextContentType);
      response_.body() = metrics::TextExposition(state_->registry);
    } else if (target == "/health") {
      response_.result(bhttp::status::ok);
    } else {
      response_.result(bhttp::status::not_found);
      response_.body() = "not found: this endpoint serves /metrics and /health\n";
    }
    response_.prepare_payload();
    stream_.expires_after(kReadTimeout);
    bhttp::async_write(stream_, response_,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec || !self->response_.keep_alive()) return self->Close();
                         self->Read(/*idle=*/true);
                       });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  std::shared_ptr<MetricsEndpointState> state_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::empty_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
};

void Accept(const std::shared_ptr<MetricsEndpointState>& state) {
  state->acceptor->async_accept([state](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec && state->connections.load() < kMaxConnections) {
      std::make_shared<Connection>(std::move(socket), state)->Read(/*idle=*/false);
    }  // else the socket closes as it goes out of scope
    Accept(state);
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host, int port, const metrics::Registry& registry) {
  auto state = std::make_shared<MetricsEndpointState>(registry);
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("metrics host '", host, "': ", ec.message()));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  state->acceptor->open(endpoint.protocol(), ec);
  if (!ec) state->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor->bind(endpoint, ec);
  if (!ec) state->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot serve /metrics on ", host, ":", port, ": ",
                                               ec.message(),
                                               port == 0 ? "" : " (pick another or 0)"));
  }
  state->port = state->acceptor->local_endpoint().port();
  Accept(state);
  // The handlers hold the state; the thread only needs the io_context, which the state owns.
  state->thread = std::thread([ioc = state->ioc.get()] {
    NameThisThread("metrics-http");
    ioc->run();
  });
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(state)));
}

int MetricsEndpoint::port() const { return state_->port; }

MetricsEndpoint::~MetricsEndpoint() {
  state_->ioc->stop();
  state_->thread.join();
  // Handlers that never ran hold connections, which hold the state: dropped here, with the
  // acceptor, before the io_context they belong to.
  state_->acceptor.reset();
  state_->ioc.reset();
}

}  // namespace pdserve::service
