#pragma once

// A file's whole text, for tests that check what a command wrote (empty when it cannot be
// read: the assertions on its content then fail and say so).

#include <fstream>
#include <sstream>
#include <string>

namespace pdserve::testing_util {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace pdserve::testing_util
