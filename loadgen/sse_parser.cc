#include "loadgen/sse_parser.h"

#include "absl/strings/str_cat.h"

namespace pdserve::loadgen {

absl::Status SseParser::Feed(std::string_view bytes, const EventCallback& on_event) {
  if (!error_.ok()) return error_;
  size_t begin = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c != '\n' && c != '\r') {
      after_cr_ = false;
      continue;
    }
    // "\r\n" is one line end: the '\n' after a '\r' that ended a line is skipped.
    const bool second_half_of_crlf = c == '\n' && after_cr_;
    after_cr_ = c == '\r';
    if (second_half_of_crlf) {
      begin = i + 1;
      continue;
    }
    line_.append(bytes.substr(begin, i - begin));
    begin = i + 1;
    EndLine(on_event);
  }
  line_.append(bytes.substr(begin));
  if (line_.size() > max_line_bytes_) {
    error_ = absl::ResourceExhaustedError(
        absl::StrCat("SSE: a line longer than ", max_line_bytes_, " bytes"));
  }
  return error_;
}

void SseParser::EndLine(const EventCallback& on_event) {
  if (line_.size() > max_line_bytes_) {
    error_ = absl::ResourceExhaustedError(
        absl::StrCat("SSE: a line longer than ", max_line_bytes_, " bytes"));
    line_.clear();
    return;
  }
  if (!error_.ok()) return;
  if (line_.empty()) {  // the event ends
    if (has_data_) on_event(data_);
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view line = line_;
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  if (field == "data") {
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
    if (data_.size() > max_line_bytes_) {
      error_ = absl::ResourceExhaustedError(
          absl::StrCat("SSE: an event longer than ", max_line_bytes_, " bytes"));
    }
  }
  // Comments (an empty field name) and other fields carry nothing a completion needs.
  line_.clear();
}

}  // namespace pdserve::loadgen
