#include "loadgen/http_transport.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "boost/beast/http.hpp"

namespace pdserve::loadgen {
namespace {

namespace bhttp = beast::http;
using tcp = net::ip::tcp;

absl::Status Unreachable(const HttpEndpoint& e, const beast::error_code& ec) {
  return absl::UnavailableError(
      absl::StrCat("cannot reach http://", e.HostHeader(), ": ", ec.message()));
}

}  // namespace

absl::StatusOr<HttpEndpoint> ParseBaseUrl(absl::string_view url) {
  if (!absl::ConsumePrefix(&url, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--base-url must start with http:// (got '", url, "')"));
  }
  HttpEndpoint e;
  const size_t slash = url.find('/');
  absl::string_view authority = url.substr(0, slash);
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = url.substr(slash);
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    e.prefix = std::string(prefix);
  }
  const size_t colon = authority.rfind(':');
  if (colon != absl::string_view::npos && authority.find(']', colon) == absl::string_view::npos) {
    int port = 0;
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in --base-url '", url, "'"));
    }
    e.port = std::to_string(port);
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);  // [::1]
  }
  if (authority.empty()) return absl::InvalidArgumentError("--base-url names no host");
  e.host = std::string(authority);
  return e;
}

absl::StatusOr<HttpReply> HttpFetch(const HttpEndpoint& endpoint, absl::string_view method,
                                    absl::string_view path, absl::string_view body,
                                    absl::Duration timeout) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  bhttp::request<bhttp::string_body> request(
      bhttp::string_to_verb(beast::string_view(method.data(), method.size())),
      endpoint.prefix + std::string(path), 11);
  request.set(bhttp::field::host, endpoint.HostHeader());
  request.set(bhttp::field::connection, "close");
  if (!body.empty()) {
    request.set(bhttp::field::content_type, "application/json");
    request.body() = std::string(body);
  }
  request.prepare_payload();
  bhttp::response<bhttp::string_body> response;
  beast::error_code failure;
  // Asynchronous only for the timeout: tcp_stream bounds asynchronous operations.
  stream.expires_after(absl::ToChronoNanoseconds(timeout));
  resolver.async_resolve(endpoint.host, endpoint.port, [&](beast::error_code ec, auto results) {
    if (ec) return void(failure = ec);
    stream.async_connect(results, [&](beast::error_code ec, auto) {
      if (ec) return void(failure = ec);
      bhttp::async_write(stream, request, [&](beast::error_code ec, size_t) {
        if (ec) return void(failure = ec);
        bhttp::async_read(stream, buffer, response,
                          [&](beast::error_code ec, size_t) { failure = ec; });
      });
    });
  });
  ioc.run_for(absl::ToChronoNanoseconds(timeout + absl::Seconds(1)));
  if (failure == beast::error::timeout || !ioc.stopped()) {
    return absl::DeadlineExceededError(absl::StrCat(method, " http://", endpoint.HostHeader(),
                                                    endpoint.prefix, path, ": no answer within ",
                                                    absl::FormatDuration(timeout)));
  }
  if (failure) return Unreachable(endpoint, failure);
  return HttpReply{.status = static_cast<int>(response.result_int()), .body = response.body()};
}

absl::StatusOr<std::unique_ptr<HttpTransport>> HttpTransport::Start(const HttpEndpoint& endpoint,
                                                                    int io_threads) {
  std::unique_ptr<HttpTransport> t(new HttpTransport(endpoint));
  tcp::resolver resolver(t->ioc_);
  beast::error_code ec;
  // Once, before the clock starts: no request pays for a name lookup.
  t->address_ = resolver.resolve(endpoint.host, endpoint.port, ec);
  if (ec) return Unreachable(endpoint, ec);
  for (int i = 0; i < std::max(1, io_threads); ++i) {
    t->threads_.emplace_back([io = &t->ioc_] { io->run(); });
  }
  return t;
}

HttpTransport::~HttpTransport() {
  {
    absl::MutexLock lock(&mu_);
    for (auto& c : idle_) {
      beast::error_code ignored;
      c->stream.socket().close(ignored);
    }
    idle_.clear();
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& t : threads_) t.join();
}

std::unique_ptr<HttpTransport::Connection> HttpTransport::NewConnection() {
  return std::make_unique<Connection>(net::make_strand(ioc_));
}

std::unique_ptr<HttpTransport::Connection> HttpTransport::Take() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return NewConnection();
}

void HttpTransport::GiveBack(std::unique_ptr<Connection> connection) {
  connection->stream.expires_never();
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(connection));
}

}  // namespace pdserve::loadgen
