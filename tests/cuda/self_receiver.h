#pragma once

// Two-process transfer tests on one GPU: the test binary re-executes itself as the receiving
// process (selected by an environment variable), which prints its exported pool descriptor as
// its first line on stdout.

#include <poll.h>
#include <spawn.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace pdserve::testing_util {

struct SelfReceiver {
  pid_t pid = -1;
  std::string descriptor;  // the receiver's first stdout line, newline included
};

// Starts /proc/self/exe with `env_var`=`value` (and `extra_env`, "NAME=value" each, replacing
// this process's values of those names) added to the environment and waits (60 s at most) for
// its descriptor line.
inline absl::StatusOr<SelfReceiver> SpawnSelfReceiver(const std::string& env_var,
                                                      const std::string& value,
                                                      const std::vector<std::string>& extra_env = {}) {
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string role = absl::StrCat(env_var, "=", value);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const std::string& x : extra_env) {
      replaced |= entry.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0;
    }
    if (!replaced) env.push_back(*e);
  }
  for (const std::string& x : extra_env) env.push_back(const_cast<char*>(x.c_str()));
  env.push_back(const_cast<char*>(role.c_str()));
  env.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};
  SelfReceiver receiver;
  const int spawned =
      posix_spawn(&receiver.pid, "/proc/self/exe", &actions, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    return absl::InternalError("posix_spawn of the receiver failed");
  }
  pollfd pfd{out[0], POLLIN, 0};
  char ch;
  while (receiver.descriptor.empty() || receiver.descriptor.back() != '\n') {
    if (poll(&pfd, 1, 60000) <= 0) {
      close(out[0]);
      return absl::DeadlineExceededError("receiver did not export its pool");
    }
    if (read(out[0], &ch, 1) != 1) {
      close(out[0]);
      return absl::UnavailableError("receiver exited early");
    }
    receiver.descriptor.push_back(ch);
  }
  close(out[0]);
  return receiver;
}

}  // namespace pdserve::testing_util
