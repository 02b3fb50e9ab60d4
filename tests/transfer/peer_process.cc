#include "tests/transfer/peer_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace pdserve::transfer::testing {

PeerProcess::PeerProcess(const std::vector<std::string>& args) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) std::abort();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<char*> argv;
  std::string program = TRANSFER_TEST_PEER;
  argv.push_back(program.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
  hello_ = ReadLine();
}

PeerProcess::~PeerProcess() {
  if (to_child_ >= 0) close(to_child_);
  if (pid_ > 0) {
    // Closing stdin asks it to quit; give it a moment, then insist.
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(10000);
    }
    if (pid_ > 0) Kill();
  }
  if (from_child_ >= 0) close(from_child_);
}

std::string PeerProcess::descriptor() const {
  const std::string prefix = "descriptor ";
  return hello_.rfind(prefix, 0) == 0 ? hello_.substr(prefix.size()) : "";
}

void PeerProcess::Send(const std::string& line) {
  std::string data = line + "\n";
  (void)!write(to_child_, data.data(), data.size());
}

std::string PeerProcess::ReadLine(int timeout_ms) {
  for (;;) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.rfind("@ ", 0) == 0) return line.substr(2);
      continue;  // a library's own output, not a reply
    }
    pollfd p{from_child_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "timeout";
    char chunk[65536];
    ssize_t n = read(from_child_, chunk, sizeof(chunk));
    if (n <= 0) return "eof";
    buffer_.append(chunk, n);
  }
}

bool PeerProcess::Stop() {
  if (kill(pid_, SIGSTOP) != 0) return false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    bool all_stopped = true;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(
             "/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      // "tid (comm) S ...": the state follows the last ')' (comm may hold spaces or parens).
      const size_t paren = line.rfind(')');
      const char state = paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
      if (state != 'T' && state != 't') all_stopped = false;
    }
    if (!ec && all_stopped) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void PeerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace pdserve::transfer::testing
