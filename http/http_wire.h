#pragma once

// The bytes of HTTP/1.1 responses as the API writes them: a head with Content-Length for whole
// responses, chunked transfer for server-sent events (one chunk per SSE event, so a client sees
// each token as soon as it is written).

#include <string>

#include "absl/strings/string_view.h"

namespace pdserve::http {

// A whole response: status line, headers, body.
std::string WholeResponse(int status, absl::string_view content_type, absl::string_view body,
                          bool keep_alive);
// The head of a 200 text/event-stream response in chunked transfer encoding.
std::string EventStreamHead(bool keep_alive);
// One SSE event ("data: <payload>\n\n") as one HTTP chunk.
std::string EventChunk(absl::string_view payload);
// The chunk that ends a chunked body.
inline constexpr absl::string_view kLastChunk = "0\r\n\r\n";

}  // namespace pdserve::http
