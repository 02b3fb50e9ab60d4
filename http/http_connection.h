#pragma once

// Internals of the HTTP server (http_server.h): the state its connections share and one
// connection's state machine. All of a connection's socket work runs on its strand; the core's
// threads, which deliver a generating request's bytes, reach the socket only through Send and
// End, which queue on the strand and never wait for the client.
//
// A connection: read a request (idle timeout, size limits) -> answer it at once (GET, errors)
// or start its generation on the core (no thread of its own) -> while it generates, a read on
// the socket watches for the client closing (which cancels the request through its Call) ->
// when the response is whole and written and the client wants keep-alive, read the next
// request; otherwise close.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "http/completion_stream.h"
#include "http/http_server.h"

namespace pdserve::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

class Connection;

// Owned jointly by the server, its connections and the threads of requests in flight, so that
// none of them outlives what it uses.
class ServerState {
 public:
  ServerState(router::RequestCore& core, HttpOptions options)
      : core(core), options(std::move(options)) {}

  router::RequestCore& core;
  const HttpOptions options;
  // Pointers, so that the server can destroy them (and with them the handlers that hold
  // connections, which hold this state) before the state itself goes.
  std::unique_ptr<net::io_context> ioc = std::make_unique<net::io_context>();
  std::unique_ptr<tcp::acceptor> acceptor = std::make_unique<tcp::acceptor>(*ioc);
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  int port = 0;

  // Connections alive, to close them all on shutdown.
  void Add(Connection* c, std::weak_ptr<Connection> w);
  void Remove(Connection* c);
  int connections() const;
  void CloseAll();

  // Requests in flight on the core (started, not yet ended by it).
  bool BeginRequest();  // false: max_inflight reached
  void EndRequest();
  void AwaitNoRequests();

 private:
  mutable std::mutex mu_;
  std::map<Connection*, std::weak_ptr<Connection>> connections_;
  int inflight_ = 0;
  std::condition_variable idle_;
};

class Connection final : public std::enable_shared_from_this<Connection>, public ResponseChannel {
 public:
  Connection(tcp::socket socket, std::shared_ptr<ServerState> state);
  ~Connection() override;
  void Start();
  // From any thread: the client is treated as gone and the socket closed.
  void Close();

  // ResponseChannel, from the core's threads.
  bool Send(std::string bytes) override;
  void End(bool whole) override;

 private:
  void DoRead();
  void OnRead(beast::error_code ec);
  void Route(const beast::http::request<beast::http::string_body>& request, bool keep_alive);
  void Respond(int status, absl::string_view content_type, std::string body, bool keep_alive);
  void StartGeneration(OpenAiRequest request, bool keep_alive);
  void WatchForClose();
  void OnWatch(beast::error_code ec, size_t bytes);
  void AfterGeneration(bool keep_alive);
  // On the strand: writes what Send queued; after End, once all is written, ends the request.
  void Flush();
  void CancelCall();
  void Continue(bool keep_alive);
  void Shutdown();

  beast::tcp_stream stream_;
  std::shared_ptr<ServerState> state_;
  beast::flat_buffer buffer_;
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::string outbox_;  // the bytes of the write in progress
  std::atomic<bool> gone_{false};
  // The generating request: its bytes queued by Send (bounded by max_queued_bytes: a client
  // that far behind is gone), its end (End), and its call, to cancel it.
  std::atomic<size_t> queued_bytes_{0};
  std::vector<std::string> pending_;
  bool writing_ = false;
  bool ended_ = false;
  bool whole_ = false;
  bool keep_alive_ = false;
  std::mutex call_mu_;
  std::shared_ptr<router::Call> call_;
  bool generating_ = false;
  bool watching_ = false;
  bool keep_after_watch_ = false;
};

}  // namespace pdserve::http
