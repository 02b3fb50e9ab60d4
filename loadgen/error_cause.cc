#include "loadgen/error_cause.h"

#include "absl/strings/ascii.h"

namespace pdserve::loadgen {
namespace {

bool IsWordChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool IsIdChar(char c) { return IsWordChar(c) || c == '-' || c == '.'; }

// Every whole occurrence of `id` (not inside a longer word or id) -> "<id>".
std::string MaskId(std::string_view text, std::string_view id) {
  if (id.empty()) return std::string(text);
  std::string out;
  size_t pos = 0;
  for (size_t at = text.find(id); at != std::string_view::npos; at = text.find(id, at + 1)) {
    const size_t end = at + id.size();
    if ((at > 0 && IsIdChar(text[at - 1])) || (end < text.size() && IsIdChar(text[end]))) {
      continue;
    }
    out.append(text.substr(pos, at - pos)).append("<id>");
    pos = end;
    at = end - 1;
  }
  out.append(text.substr(pos));
  return out;
}

// "request <word>:" -> "request <id>:", for ids other than the client's own (a server's
// "cmpl-..." id, or a request named in a message about another).
std::string MaskRequestWords(std::string_view text) {
  static constexpr std::string_view kWord = "request ";
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t at = text.find(kWord, pos);
    if (at == std::string_view::npos) break;
    const size_t id_start = at + kWord.size();
    size_t id_end = id_start;
    while (id_end < text.size() && text[id_end] != ' ' && text[id_end] != ':') ++id_end;
    out.append(text.substr(pos, id_start - pos));
    if (id_end > id_start && id_end < text.size() && text[id_end] == ':' &&
        text.substr(id_start, id_end - id_start) != "<id>") {
      out.append("<id>");
      pos = id_end;
    } else {
      pos = id_start;
    }
  }
  out.append(text.substr(pos));
  return out;
}

// Every standalone number (digits with an optional fraction, not part of a word) -> "<n>".
std::string MaskNumbers(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const bool starts = absl::ascii_isdigit(static_cast<unsigned char>(text[i])) &&
                        (i == 0 || !IsWordChar(text[i - 1]));
    if (!starts) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[end]))) ++end;
    if (end + 1 < text.size() && text[end] == '.' &&
        absl::ascii_isdigit(static_cast<unsigned char>(text[end + 1]))) {
      ++end;
      while (end < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[end]))) {
        ++end;
      }
    }
    if (end < text.size() && IsWordChar(text[end])) {  // "8b", "3x": part of a word
      out.append(text.substr(i, end - i));
    } else {
      out.append("<n>");
    }
    i = end;
  }
  return out;
}

}  // namespace

std::string ErrorCause(std::string_view error, std::string_view request_id) {
  if (error.empty()) return "unknown";
  // The code before the first ": " says what kind of failure it was; it is kept verbatim
  // ("HTTP 400" and "HTTP 503" are different causes).
  const size_t colon = error.find(": ");
  const size_t body_start = colon == std::string_view::npos ? 0 : colon + 2;
  std::string body(error.substr(body_start));
  body = MaskNumbers(MaskRequestWords(MaskId(body, request_id)));
  return std::string(error.substr(0, body_start)) + body;
}

}  // namespace pdserve::loadgen
