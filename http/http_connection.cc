#include "http/http_connection.h"


#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "http/http_wire.h"
#include "http/openai_response.h"
#include "metrics/text_format.h"
#include "nlohmann/json.hpp"
#include "pdserve/version.h"

namespace pdserve::http {

namespace bhttp = beast::http;

// Bytes of pipelined requests kept while a request generates; past this the watch stops.
constexpr size_t kMaxPipelinedBytes = 64 << 10;
// Bytes of a response queued for a client that does not read: past this it is gone (and its
// request cancelled), so that a stalled reader cannot grow the router.
constexpr size_t kMaxQueuedBytes = 4 << 20;

void ServerState::Add(Connection* c, std::weak_ptr<Connection> w) {
  std::lock_guard lock(mu_);
  connections_[c] = std::move(w);
}

void ServerState::Remove(Connection* c) {
  std::lock_guard lock(mu_);
  connections_.erase(c);
}

int ServerState::connections() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(connections_.size());
}

void ServerState::CloseAll() {
  std::vector<std::shared_ptr<Connection>> alive;
  {
    std::lock_guard lock(mu_);
    for (auto& [c, w] : connections_) {
      if (auto s = w.lock()) alive.push_back(std::move(s));
    }
  }
  for (auto& c : alive) c->Close();
}

bool ServerState::BeginRequest() {
  std::lock_guard lock(mu_);
  if (inflight_ >= options.max_inflight) return false;
  inflight_++;
  return true;
}

void ServerState::EndRequest() {
  std::lock_guard lock(mu_);
  if (--inflight_ == 0) idle_.notify_all();
}

void ServerState::AwaitNoRequests() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return inflight_ == 0; });
}

Connection::Connection(tcp::socket socket, std::shared_ptr<ServerState> state)
    : stream_(std::move(socket)), state_(std::move(state)) {}

Connection::~Connection() { state_->Remove(this); }

void Connection::Start() {
  state_->Add(this, weak_from_this());
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoRead(); });
}

void Connection::Close() {
  gone_ = true;
  CancelCall();
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->Shutdown(); });
}

void Connection::Shutdown() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void Connection::DoRead() {
  if (gone_ || state_->stopping) return Shutdown();
  parser_.emplace();
  parser_->body_limit(state_->options.max_body_bytes);
  parser_->header_limit(state_->options.max_header_bytes);
  stream_.expires_after(absl::ToChronoNanoseconds(state_->options.idle_timeout));
  bhttp::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
}

void Connection::OnRead(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    return Respond(
        413, "application/json",
        ErrorBody(413, absl::StrCat("the body exceeds ", state_->options.max_body_bytes, " bytes")),
        false);
  }
  if (ec == bhttp::error::header_limit) {
    return Respond(400, "application/json",
                   ErrorBody(400, absl::StrCat("the headers exceed ",
                                               state_->options.max_header_bytes, " bytes")),
                   false);
  }
  if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
      ec == net::error::operation_aborted || ec == net::error::connection_reset) {
    return Shutdown();
  }
  if (ec) {
    return Respond(400, "application/json",
                   ErrorBody(400, absl::StrCat("malformed HTTP request: ", ec.message())), false);
  }
  const bhttp::request<bhttp::string_body> request = parser_->release();
  Route(request, request.keep_alive());
}

void Connection::Route(const bhttp::request<bhttp::string_body>& request, bool keep_alive) {
  std::string_view target(request.target().data(), request.target().size());
  target = target.substr(0, target.find('?'));
  const bool get = request.method() == bhttp::verb::get;
  const bool post = request.method() == bhttp::verb::post;
  const auto json_response = [&](int status, std::string body) {
    Respond(status, "application/json", std::move(body), keep_alive);
  };
  if (target == "/v1/completions" || target == "/v1/chat/completions") {
    if (!post) return json_response(405, ErrorBody(405, "use POST"));
    const Endpoint endpoint =
        target == "/v1/completions" ? Endpoint::kCompletions : Endpoint::kChatCompletions;
    absl::StatusOr<OpenAiRequest> parsed =
        ParseOpenAiRequest(endpoint, request.body(), state_->core.State().model);
    if (!parsed.ok()) {
      const int status = HttpStatusOf(parsed.status());
      return json_response(status, ErrorBody(status, parsed.status().message()));
    }
    return StartGeneration(std::move(*parsed), keep_alive);
  }
  const bool known =
      target == "/health" || target == "/ready" || target == "/version" ||
      target == "/v1/models" || target == "/metrics";
  if (known && !get) return json_response(405, ErrorBody(405, "use GET"));
  if (target == "/health") return Respond(200, "text/plain", "", keep_alive);
  if (target == "/metrics") {
    const metrics::Registry* registry = state_->core.Metrics();
    if (registry == nullptr) return json_response(404, ErrorBody(404, "no metrics here"));
    return Respond(200, metrics::kTextContentType, metrics::TextExposition(*registry),
                   keep_alive);
  }
  if (target == "/version") {
    return json_response(200, nlohmann::json{{"version", PDSERVE_VERSION_STRING}}.dump());
  }
  if (target == "/v1/models") {
    return json_response(200,
                         ModelList(state_->core.State().model, absl::ToUnixSeconds(absl::Now())));
  }
  if (target == "/ready") {
    const router::CoreState core = state_->core.State();
    if (!core.ready()) {
      return json_response(
          503, ErrorBody(503, absl::StrCat("not ready: ", core.prefill_workers, " prefill and ",
                                           core.decode_workers,
                                           " decode workers registered (need one of each)")));
    }
    return json_response(200, nlohmann::json{{"status", "ready"},
                                             {"prefill_workers", core.prefill_workers},
                                             {"decode_workers", core.decode_workers}}
                                  .dump());
  }
  json_response(404, ErrorBody(404, "Not Found"));
}

void Connection::Respond(int status, absl::string_view content_type, std::string body,
                         bool keep_alive) {
  outbox_ = WholeResponse(status, content_type, body, keep_alive);
  stream_.expires_after(absl::ToChronoNanoseconds(state_->options.write_timeout));
  net::async_write(stream_, net::buffer(outbox_),
                   [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                     self->Continue(keep_alive && !ec);
                   });
}

void Connection::StartGeneration(OpenAiRequest request, bool keep_alive) {
  if (!state_->BeginRequest()) {
    return Respond(429, "application/json",
                   ErrorBody(429, absl::StrCat("too many requests in flight (",
                                               state_->options.max_inflight, ")")),
                   keep_alive);
  }
  generating_ = true;
  keep_alive_ = keep_alive;
  ended_ = whole_ = writing_ = false;
  pending_.clear();
  queued_bytes_ = 0;
  stream_.expires_never();
  WatchForClose();
  std::shared_ptr<router::Call> call =
      StartCompletion(state_->core, std::move(request), shared_from_this(), keep_alive);
  std::lock_guard lock(call_mu_);
  call_ = std::move(call);
  if (gone_) call_->Cancel();  // the client left before the call was known
}

void Connection::CancelCall() {
  std::shared_ptr<router::Call> call;
  {
    std::lock_guard lock(call_mu_);
    call = call_;
  }
  if (call != nullptr) call->Cancel();
}

void Connection::WatchForClose() {
  watching_ = true;
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->OnWatch(ec, bytes);
                          });
}

void Connection::OnWatch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (!ec) buffer_.commit(bytes);  // a pipelined request: kept for the next read
  if (!generating_) {  // AfterGeneration cancelled the watch, or the client left just then
    return Continue(keep_after_watch_ && (!ec || ec == net::error::operation_aborted));
  }
  if (ec) {
    gone_ = true;  // EOF or reset: the client left
    CancelCall();
    return;
  }
  if (buffer_.size() < kMaxPipelinedBytes) WatchForClose();
}

void Connection::AfterGeneration(bool keep_alive) {
  generating_ = false;
  keep_after_watch_ = keep_alive && !gone_;
  if (watching_) {
    stream_.socket().cancel();  // OnWatch continues
    return;
  }
  Continue(keep_after_watch_);
}

void Connection::Continue(bool keep_alive) {
  if (keep_alive && !gone_) return DoRead();
  Shutdown();
}

bool Connection::Send(std::string bytes) {
  if (gone_) return false;
  if (queued_bytes_.fetch_add(bytes.size()) + bytes.size() > kMaxQueuedBytes) {
    gone_ = true;  // not reading: treated as gone; its request is cancelled
    return false;
  }
  net::post(stream_.get_executor(), [self = shared_from_this(), bytes = std::move(bytes)]() mutable {
    self->pending_.push_back(std::move(bytes));
    self->Flush();
  });
  return true;
}

void Connection::End(bool whole) {
  net::post(stream_.get_executor(), [self = shared_from_this(), whole] {
    self->ended_ = true;
    self->whole_ = whole;
    self->Flush();
  });
}

void Connection::Flush() {
  if (writing_) return;  // the write's handler flushes again
  if (gone_) pending_.clear();
  if (pending_.empty()) {
    if (!ended_) return;
    ended_ = false;
    {
      std::lock_guard lock(call_mu_);
      call_.reset();
    }
    // The core is done with this request: it counts no more against max_inflight.
    state_->EndRequest();
    return AfterGeneration(keep_alive_ && whole_ && !gone_);
  }
  // Everything queued goes out in one write (the tokens of one decode step, and any that
  // arrived while the previous write was in flight).
  outbox_.clear();
  for (std::string& p : pending_) outbox_ += p;
  pending_.clear();
  writing_ = true;
  stream_.expires_after(absl::ToChronoNanoseconds(state_->options.write_timeout));
  net::async_write(stream_, net::buffer(outbox_),
                   [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                     self->writing_ = false;
                     self->stream_.expires_never();
                     self->queued_bytes_ -= bytes;
                     if (ec) {
                       self->gone_ = true;
                       self->CancelCall();
                     }
                     self->Flush();
                   });
}

}  // namespace pdserve::http
