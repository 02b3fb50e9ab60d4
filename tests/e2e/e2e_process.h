#pragma once

// Running the pdserve binary once from an end-to-end test and collecting what it printed.

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pdserve::e2e {

struct Exit {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs the pdserve binary with `args` (no shell quoting needed: plain words) and waits for it.
inline Exit RunPdserve(const std::vector<std::string>& args) {
  const std::string command =
      absl::StrCat("timeout 60 ", PDSERVE_BINARY, " ", absl::StrJoin(args, " "), " 2>&1");
  Exit out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.output.append(buf, n);
  const int status = pclose(pipe);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace pdserve::e2e
