#pragma once

// A file or folder a test makes under the test temp dir (named after the process, so that
// parallel test binaries do not collide), removed with its contents when the object goes:
// the dummy secrets, keys and configs the tests write must not pile up in /tmp.

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace pdserve::testing_util {

class ScopedTempPath {
 public:
  explicit ScopedTempPath(const std::string& name)
      : path_(::testing::TempDir() + "/" + std::to_string(getpid()) + "-" + name) {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ~ScopedTempPath() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempPath(const ScopedTempPath&) = delete;
  ScopedTempPath& operator=(const ScopedTempPath&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace pdserve::testing_util
