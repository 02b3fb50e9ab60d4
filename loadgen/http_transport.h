#pragma once

// The HTTP/1.1 plumbing of the OpenAI load client, on Boost.Beast over Asio: a few io threads
// own every socket (no thread per request), the target's address is resolved once, and
// connections a response left open are kept for the next request (keep-alive), as aiohttp's
// pool does for `vllm bench serve`, so that a request's TTFT does not include a TCP handshake
// whenever an idle connection exists.
//
// Lifecycle: Start resolves and starts the threads; connections are taken (TakeIdle, or
// NewConnection when none is idle) by one request at a time and given back when its response
// ended cleanly with keep-alive. Every request must have completed before the transport is
// destroyed (the load runner waits for them); destruction closes idle connections and joins
// the threads.

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"

namespace pdserve::loadgen {

namespace net = boost::asio;
namespace beast = boost::beast;

// Where an OpenAI-compatible server listens: from "http://HOST:PORT[/PREFIX]".
struct HttpEndpoint {
  std::string host;
  std::string port = "80";
  std::string prefix;  // path before /v1/..., without a trailing '/'
  std::string HostHeader() const { return host + ":" + port; }
};

// InvalidArgument for anything but http:// URLs (no TLS in a load generator of a mock).
absl::StatusOr<HttpEndpoint> ParseBaseUrl(absl::string_view url);

// A whole response of a setup request (GET /v1/models), not a measured one.
struct HttpReply {
  int status = 0;
  std::string body;
};

// One blocking request on its own connection and io_context; `timeout` bounds all of it.
// Unavailable when the target cannot be reached, DeadlineExceeded past the timeout.
absl::StatusOr<HttpReply> HttpFetch(const HttpEndpoint& endpoint, absl::string_view method,
                                    absl::string_view path, absl::string_view body,
                                    absl::Duration timeout);

class HttpTransport {
 public:
  // A connection and the bytes read past its last response (they belong to the next one).
  struct Connection {
    explicit Connection(net::any_io_executor executor) : stream(std::move(executor)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bool connected = false;
  };

  // Resolves `endpoint` and starts `io_threads` threads.
  static absl::StatusOr<std::unique_ptr<HttpTransport>> Start(const HttpEndpoint& endpoint,
                                                              int io_threads);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // An idle connected connection, or else a new unconnected one on a strand of its own (its
  // operations may then run on any io thread, never two at once).
  std::unique_ptr<Connection> Take();
  // Keeps a connection whose last response ended cleanly with keep-alive.
  void GiveBack(std::unique_ptr<Connection> connection);
  std::unique_ptr<Connection> NewConnection();

  const net::ip::tcp::resolver::results_type& address() const { return address_; }
  const HttpEndpoint& endpoint() const { return endpoint_; }

 private:
  explicit HttpTransport(HttpEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

  const HttpEndpoint endpoint_;
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  net::ip::tcp::resolver::results_type address_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::loadgen
