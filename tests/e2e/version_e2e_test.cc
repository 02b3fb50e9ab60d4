// `pdserve --version` names the build's mode for Abseil's lock-cycle checks, which the executable
// turns off outside Debug and sanitizer builds (cli/main.cc): they were keyed on NDEBUG, which no
// build of this tree defines, and ran in every build until 2026-12-06.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

TEST(VersionTest, NamesWhetherAbseilsLockCycleChecksRunInThisBuild) {
  const Exit e = RunPdserve({"--version"});
  ASSERT_EQ(e.code, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr("pdserve "));
  // This build's CMake decides (CMakeLists.txt): on only for Debug and sanitizer builds.
  const std::string expected =
      PDSERVE_LOCK_CYCLE_CHECKS ? "(lock-cycle checks on)" : "(lock-cycle checks off)";
  EXPECT_THAT(e.output, HasSubstr(expected));
}

}  // namespace
}  // namespace pdserve::e2e
