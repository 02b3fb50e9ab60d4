#pragma once

// Starting one pdserve child process for the cluster launcher: fork + execve with the output in a
// log file, its own process group, and PR_SET_PDEATHSIG so that it never outlives the launcher
// thread that started it (the supervisor restarts children from that same thread for this
// reason).

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::cluster {

struct ChildSpec {
  std::vector<std::string> argv;                         // argv[0]: the executable
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
  std::string log_path;                                  // stdout and stderr
  bool append_log = false;  // a restart keeps the log of the process before it
};

// The child's pid; Internal when the log cannot be opened or fork fails. An execve failure shows
// as the child exiting with code 127.
absl::StatusOr<pid_t> SpawnChild(const ChildSpec& spec);

// This process's own executable (/proc/self/exe), empty when unknown.
std::string SelfExe();

// The last `lines` lines of a text file ("" when it cannot be read).
std::string TailOfFile(const std::string& path, int lines);

}  // namespace pdserve::cluster
