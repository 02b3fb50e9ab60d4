#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace pdserve::transfer::testing {

// A transfer_test_peer child process driven over its stdin / stdout.
class PeerProcess {
 public:
  // Starts the helper with `args` (after the program name) and reads its first line.
  explicit PeerProcess(const std::vector<std::string>& args);
  ~PeerProcess();  // kills and reaps the child if it still runs
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  // The helper's first line ("descriptor ..." or "err ...").
  const std::string& hello() const { return hello_; }
  // The descriptor bytes from the hello line (empty if it failed).
  std::string descriptor() const;

  void Send(const std::string& line);
  // Next line of output; "timeout" after `timeout_ms`, "eof" when the child closed stdout.
  std::string ReadLine(int timeout_ms = 60000);
  std::string Command(const std::string& line, int timeout_ms = 60000) {
    Send(line);
    return ReadLine(timeout_ms);
  }
  // SIGKILL and reap.
  void Kill();
  // SIGSTOP, then waits (10 s at most) until every thread of the child is stopped: kill()
  // returns before the signal takes effect, and a receiver still running for a moment drains
  // what a test expected to stay queued. False when it did not stop in time.
  bool Stop();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string buffer_;
  std::string hello_;
};

}  // namespace pdserve::transfer::testing
