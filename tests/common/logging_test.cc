// Log lines cannot be forged: whatever a client or peer puts in an id lands escaped on one line.
#include "common/logging.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace pdserve {
namespace {

TEST(LogEscapedTest, ControlBytesAndBackslashesAreWrittenOut) {
  EXPECT_EQ(LogEscaped("req-1"), "req-1");
  EXPECT_EQ(LogEscaped("a\nb\rc\td\x1b[2J\x7f\\"), "a\\nb\\rc\\td\\x1b[2J\\x7f\\\\");
  EXPECT_EQ(LogEscaped(std::string("z\0z", 3)), "z\\x00z");
}

TEST(ComponentLoggerTest, RequestIdWithNewlineAndEscapeIsOneEscapedLine) {
  const std::string id = "r1\n[2026-12-03 10:00:00.000] [router] [info] forged\x1b[2J";
  ::testing::internal::CaptureStderr();
  ComponentLogger("logging_test")->info("request {} failed", id);
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_NE(out.find("request r1\\n[2026-12-03 10:00:00.000] [router] [info] forged\\x1b[2J failed"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace pdserve
