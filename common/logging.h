#pragma once

#include <memory>
#include <string>

#include "spdlog/spdlog.h"

namespace pdserve {

// One named logger per component ("router", "prefill", "decode", "transfer", "kvcache", ...),
// created on first use, all writing to stderr with the same pattern.
std::shared_ptr<spdlog::logger> ComponentLogger(const std::string& component);

// Sets the level of every component logger ("trace", "debug", "info", "warn", "error").
void SetLogLevel(const std::string& level);

}  // namespace pdserve
