#pragma once

// A deliberately plain HTTP/1.1 client for the HTTP API's tests: a blocking POSIX socket, the
// request written by hand, the response parsed by hand (status line, headers, Content-Length or
// chunked body), so that what the tests check is the bytes on the wire, not a library's view.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pdserve::http_test {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string raw_body;                        // as sent (chunk framing included)
  std::string body;                            // de-chunked
  nlohmann::json Json() const { return nlohmann::json::parse(body); }
};

// A connected socket, closed when it goes.
class Socket {
 public:
  explicit Socket(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Socket() { Close(); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  // Appends what arrives to `out`; false at end of stream or on an error.
  bool Receive(std::string& out) {
    char buf[8192];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    out.append(buf, static_cast<size_t>(n));
    return true;
  }

 private:
  int fd_;
  bool connected_ = false;
};

inline std::string RequestText(const std::string& method, const std::string& target,
                               const std::string& body, bool close = true) {
  return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: localhost\r\n",
                      body.empty() ? "" : "Content-Type: application/json\r\n",
                      "Content-Length: ", body.size(), "\r\n", close ? "Connection: close\r\n" : "",
                      "\r\n", body);
}

// Removes chunked framing; an empty result with `ok` false when the framing is broken.
inline std::string Dechunk(const std::string& raw, bool& ok) {
  std::string out;
  size_t pos = 0;
  ok = false;
  while (true) {
    const size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return out;
    size_t size = 0;
    if (!absl::SimpleHexAtoi(raw.substr(pos, eol - pos), &size)) return out;
    if (size == 0) {
      ok = raw.substr(eol, 4) == "\r\n\r\n";
      return out;
    }
    if (eol + 2 + size + 2 > raw.size() || raw.substr(eol + 2 + size, 2) != "\r\n") return out;
    out += raw.substr(eol + 2, size);
    pos = eol + 2 + size + 2;
  }
}

// Parses a whole response (the server closed the connection after it).
inline HttpResponse ParseResponse(const std::string& text) {
  HttpResponse r;
  const size_t head_end = text.find("\r\n\r\n");
  if (head_end == std::string::npos) return r;
  std::vector<std::string> lines = absl::StrSplit(text.substr(0, head_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &r.status)) return r;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    r.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  r.raw_body = text.substr(head_end + 4);
  if (r.headers["transfer-encoding"] == "chunked") {
    bool ok = false;
    r.body = Dechunk(r.raw_body, ok);
    EXPECT_TRUE(ok) << "broken chunked framing: " << r.raw_body;
  } else {
    r.body = r.raw_body;
    size_t length = 0;
    if (absl::SimpleAtoi(r.headers["content-length"], &length)) {
      EXPECT_EQ(r.body.size(), length);
    }
  }
  return r;
}

// One request on a fresh connection (Connection: close), read to the end.
inline HttpResponse Fetch(int port, const std::string& method, const std::string& target,
                          const std::string& body = "") {
  Socket s(port);
  EXPECT_TRUE(s.connected());
  EXPECT_TRUE(s.Send(RequestText(method, target, body)));
  std::string text;
  while (s.Receive(text)) {
  }
  return ParseResponse(text);
}

// The SSE events of a body: the payload of each "data: ..." event, in order; every event must
// be exactly "data: <payload>\n\n".
inline std::vector<std::string> SseEvents(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event at " << pos;
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    events.push_back(event.substr(6));
    pos = end + 2;
  }
  return events;
}

}  // namespace pdserve::http_test
