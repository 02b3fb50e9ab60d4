#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "spdlog/spdlog.h"

namespace pdserve {

// One named logger per component ("router", "prefill", "decode", "transfer", "kvcache", ...),
// created on first use, all writing to stderr with the same pattern.
//
// Every message is escaped on its way out (LogFormatter): request ids, worker ids, addresses and
// error texts come from clients and peers, and a newline or terminal escape in one of them must
// not forge a log line or rewrite an operator's terminal. Call sites need not escape anything.
std::shared_ptr<spdlog::logger> ComponentLogger(const std::string& component);

// Sets the level of every component logger ("trace", "debug", "info", "warn", "error").
void SetLogLevel(const std::string& level);

// `text` with every control byte (< 0x20, 0x7f) written as \n, \r, \t or \xNN and backslashes
// doubled, so the result is one printable line that still says exactly what was received.
std::string LogEscaped(std::string_view text);

// The formatter every component logger uses: the usual pattern with the message escaped as by
// LogEscaped.
std::unique_ptr<spdlog::formatter> LogFormatter();

}  // namespace pdserve
