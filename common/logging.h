#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace pdserve {

// One named logger per component ("router", "prefill", "decode", "transfer", "kvcache", ...),
// created on first use, all writing to stderr with the same pattern.
//
// Every message is escaped on its way out (LogFormatter): request ids, worker ids, addresses and
// error texts come from clients and peers, and a newline or terminal escape in one of them must
// not forge a log line or rewrite an operator's terminal. Call sites need not escape anything.
std::shared_ptr<spdlog::logger> ComponentLogger(const std::string& component);

// The level a `--log-level` value names: trace, debug, info, warn, error, critical or off.
// Anything else is InvalidArgument: spdlog's own parser turns an unknown name into "off", so a
// typo such as "verbose" would silence every log line instead of being reported.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// Sets the level of every component logger; `level` must be one ParseLogLevel accepts
// (validated where it is read: the root --log-level flag), unknown names leave it unchanged.
void SetLogLevel(const std::string& level);

// `text` with every control byte (< 0x20, 0x7f) written as \n, \r, \t or \xNN and backslashes
// doubled, so the result is one printable line that still says exactly what was received.
std::string LogEscaped(std::string_view text);

// The formatter every component logger uses: the usual pattern with the message escaped as by
// LogEscaped.
std::unique_ptr<spdlog::formatter> LogFormatter();

}  // namespace pdserve
