#include "common/logging.h"

#include <mutex>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace pdserve {
namespace {
std::mutex& LoggerMutex() {
  static std::mutex mu;
  return mu;
}
spdlog::level::level_enum& DefaultLevel() {
  static spdlog::level::level_enum level = spdlog::level::info;
  return level;
}
}  // namespace

std::shared_ptr<spdlog::logger> ComponentLogger(const std::string& component) {
  std::lock_guard<std::mutex> lock(LoggerMutex());
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = spdlog::stderr_color_mt(component);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] [pid %P] %v");
  logger->set_level(DefaultLevel());
  return logger;
}

void SetLogLevel(const std::string& level) {
  std::lock_guard<std::mutex> lock(LoggerMutex());
  DefaultLevel() = spdlog::level::from_str(level);
  spdlog::set_level(DefaultLevel());
}

}  // namespace pdserve
