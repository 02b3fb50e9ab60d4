#pragma once

// An incremental parser of a server-sent event stream (the WHATWG "text/event-stream" format
// that OpenAI-compatible servers stream completions in). The HTTP client feeds it body bytes
// as they arrive, split anywhere (inside a line, inside a "\r\n"); it hands back every complete
// event's data, so that a token chunk is timestamped when its last byte arrives, not later.
//
//   SseParser parser;
//   absl::Status s = parser.Feed(bytes, [&](std::string_view data) { ... });
//
// Framing as the standard says: lines end with "\n", "\r\n" or "\r"; "data:" lines (one space
// after the colon dropped) of one event are joined with "\n"; an empty line ends the event; an
// event without data lines is not dispatched; comments (":...") and other fields (event, id,
// retry) are ignored. A line or an event longer than the limit is an error (ResourceExhausted):
// the server is another process, and a stream that never ends a line must not grow the client
// without bound.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace pdserve::loadgen {

class SseParser {
 public:
  using EventCallback = std::function<void(std::string_view data)>;

  explicit SseParser(size_t max_line_bytes = 4 << 20) : max_line_bytes_(max_line_bytes) {}

  // Parses `bytes`, calling `on_event` (on this thread, before Feed returns) for each event they
  // complete. After an error every later Feed returns the same error.
  absl::Status Feed(std::string_view bytes, const EventCallback& on_event);

  // Whether bytes of an unfinished event are held (a stream that ends here was cut short).
  bool InsideEvent() const { return !line_.empty() || has_data_; }

 private:
  void EndLine(const EventCallback& on_event);

  const size_t max_line_bytes_;
  absl::Status error_;
  std::string line_;       // the line being read
  std::string data_;       // the event's data so far
  bool has_data_ = false;  // a data line was seen (data may still be empty)
  bool after_cr_ = false;  // the previous byte ended a line with '\r' (a '\n' may follow)
};

}  // namespace pdserve::loadgen
