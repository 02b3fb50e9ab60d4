#include "http/http_wire.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "http/openai_response.h"

namespace pdserve::http {

std::string WholeResponse(int status, absl::string_view content_type, absl::string_view body,
                          bool keep_alive) {
  return absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status),
                      "\r\nServer: pdserve\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n", body);
}

std::string EventStreamHead(bool keep_alive) {
  return absl::StrCat(
      "HTTP/1.1 200 OK\r\nServer: pdserve\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
      "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: ",
      keep_alive ? "keep-alive" : "close", "\r\n\r\n");
}

std::string EventChunk(absl::string_view payload) {
  const size_t size = payload.size() + 8;  // "data: " + payload + "\n\n"
  return absl::StrCat(absl::StrFormat("%x", size), "\r\ndata: ", payload, "\n\n\r\n");
}

}  // namespace pdserve::http
