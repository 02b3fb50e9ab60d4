#include "loadgen/http_stream_call.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

namespace bhttp = beast::http;
using tcp = net::ip::tcp;

// A streamed body is consumed as it arrives; the bound is only against a server that never
// ends one (a 1M-token request streams about 100 MiB of chunks).
constexpr uint64_t kMaxBodyBytes = uint64_t{1} << 30;
constexpr size_t kMaxErrorBodyBytes = 64 << 10;

// "HTTP <status>: <message>" from an error body in OpenAI's shape ({"message"} or
// {"error": {"message"}}); the raw body (cut short) when it is not.
std::string HttpErrorText(int status, std::string_view body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string message(body.substr(0, 200));
  if (j.is_object()) {
    const nlohmann::json& e = j.contains("error") && j["error"].is_object() ? j["error"] : j;
    if (auto m = e.find("message"); m != e.end() && m->is_string()) message = *m;
  }
  return absl::StrCat("HTTP ", status, ": ", message);
}

}  // namespace

std::string StreamingPost(const HttpEndpoint& endpoint, const std::string& path,
                          const std::string& json_body) {
  return absl::StrCat("POST ", endpoint.prefix, path, " HTTP/1.1\r\nHost: ", endpoint.HostHeader(),
                      "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
                      "Content-Length: ",
                      json_body.size(), "\r\n\r\n", json_body);
}

HttpStreamCall::HttpStreamCall(HttpTransport* transport, const std::string* request, bool chat,
                               double timeout_s, RequestRecord* record, CallTracker* tracker,
                               int64_t t0_ns)
    : transport_(transport),
      request_(request),
      timeout_s_(timeout_s),
      record_(record),
      tracker_(tracker),
      t0_ns_(t0_ns),
      on_chunk_([this](uint64_t, beast::string_view bytes, beast::error_code&) {
        return OnBody(std::string_view(bytes.data(), bytes.size()));
      }),
      reader_(record, chat) {}

void HttpStreamCall::Start() {
  record_->tokens.reserve(record_->max_tokens);
  record_->itl_s.reserve(record_->max_tokens);
  record_->event_tokens.reserve(record_->max_tokens);
  connection_ = transport_->Take();
  tracker_->OnSent();
  const int64_t send_ns = MonotonicNanos();
  record_->send_s = static_cast<double>(send_ns - t0_ns_) * 1e-9;
  reader_.SetSendTime(send_ns);
  net::post(connection_->stream.get_executor(), [this] { Begin(); });
}

void HttpStreamCall::Begin() {
  connection_->stream.expires_after(
      std::chrono::microseconds(static_cast<int64_t>(timeout_s_ * 1e6)));
  if (connection_->connected) {
    reused_ = true;
    return Write();
  }
  connection_->stream.async_connect(
      transport_->address(), [this](beast::error_code ec, const tcp::endpoint&) { OnConnect(ec); });
}

void HttpStreamCall::OnConnect(beast::error_code ec) {
  if (ec) {
    return Complete(ec == beast::error::timeout
                        ? absl::StrCat("DEADLINE_EXCEEDED: no connection within ", timeout_s_, " s")
                        : absl::StrCat("UNAVAILABLE: connect: ", ec.message()),
                    false);
  }
  connection_->connected = true;
  beast::error_code ignored;
  connection_->stream.socket().set_option(tcp::no_delay(true), ignored);
  Write();
}

void HttpStreamCall::Write() {
  net::async_write(connection_->stream, net::buffer(*request_),
                   [this](beast::error_code ec, size_t) { OnWrite(ec); });
}

void HttpStreamCall::OnWrite(beast::error_code ec) {
  if (ec) {
    if (RetryOnNewConnection(ec)) return;
    return Complete(absl::StrCat("UNAVAILABLE: sending the request: ", ec.message()), false);
  }
  parser_.emplace();
  parser_->body_limit(kMaxBodyBytes);
  parser_->on_chunk_body(on_chunk_);
  bhttp::async_read(connection_->stream, connection_->buffer, *parser_,
                    [this](beast::error_code ec, size_t) { OnRead(ec); });
}

size_t HttpStreamCall::OnBody(std::string_view bytes) {
  if (parser_->get().result_int() != 200) {
    error_body_.append(
        bytes.substr(0, kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, error_body_.size())));
    return bytes.size();
  }
  const int64_t now = MonotonicNanos();  // one time for every event these bytes complete
  // A framing error is kept by the parser and reported when the body ends.
  (void)sse_.Feed(bytes, [&](std::string_view data) { reader_.OnEvent(data, now); });
  return bytes.size();
}

bool HttpStreamCall::RetryOnNewConnection(const beast::error_code& ec) {
  if (retried_ || !reused_ || ec == beast::error::timeout || reader_.started() ||
      (parser_.has_value() && parser_->got_some())) {
    return false;
  }
  retried_ = true;
  reused_ = false;
  parser_.reset();
  connection_ = transport_->NewConnection();  // the stale one closes
  net::post(connection_->stream.get_executor(), [this] { Begin(); });
  return true;
}

void HttpStreamCall::OnRead(beast::error_code ec) {
  if (ec) {
    if (RetryOnNewConnection(ec)) return;
    if (ec == beast::error::timeout) {
      return Complete(absl::StrCat("DEADLINE_EXCEEDED: not finished within ", timeout_s_, " s"),
                      false);
    }
    return Complete(reader_.started()
                        ? absl::StrCat("INCOMPLETE: connection lost mid-stream: ", ec.message())
                        : absl::StrCat("UNAVAILABLE: reading the response: ", ec.message()),
                    false);
  }
  const auto& response = parser_->get();
  const bool keep = response.keep_alive();
  if (response.result_int() != 200) {
    return Complete(HttpErrorText(static_cast<int>(response.result_int()),
                                  response.body().empty() ? error_body_ : response.body()),
                    keep);
  }
  if (!response.chunked()) {  // a server that streams without chunks: the body is whole now
    (void)sse_.Feed(response.body(),
                    [&](std::string_view data) { reader_.OnEvent(data, MonotonicNanos()); });
  }
  if (absl::Status framing = sse_.Feed("", [](std::string_view) {}); !framing.ok()) {
    return Complete(absl::StrCat("PROTOCOL: ", framing.message()), false);
  }
  reader_.Finish();
  Complete("", keep);
}

void HttpStreamCall::Complete(std::string error, bool keep_connection) {
  const int64_t now = MonotonicNanos();
  if (!error.empty()) record_->error = std::move(error);
  record_->success = record_->error.empty();
  if (keep_connection) {
    transport_->GiveBack(std::move(connection_));
  } else {
    connection_.reset();
  }
  // Last: once counted, the runner may destroy this object.
  tracker_->OnDone(record_->success, now);
}

}  // namespace pdserve::loadgen
