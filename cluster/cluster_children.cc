// The cluster's children (cluster.h): starting, restarting, reaping and stopping them, and
// waiting for their port files. Starting the whole cluster is in cluster.cc.

#include "cluster/cluster.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <grpcpp/grpcpp.h>
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/child_process.h"
#include "kvcache/kv_memory.h"
#include "service/grpc_util.h"
#include "service/host_address.h"
#include "common/cluster_secret.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::cluster {

absl::Status Cluster::Spawn(const std::string& name, const std::vector<std::string>& args,
                           std::vector<std::pair<std::string, std::string>> env) {
  Child child;
  child.name = name;
  child.args = args;
  child.env = std::move(env);
  child.log_path = absl::StrCat(options_.log_dir, "/", name, ".log");
  children_.push_back(child);
  absl::Status launched = Launch(children_.back(), /*append_log=*/false);
  // No pid to wait for: a waitpid on -1 would reap any child.
  if (!launched.ok()) children_.pop_back();
  return launched;
}

absl::Status Cluster::Launch(Child& child, bool append_log) {
  unlink(MetricsPortFile(child.name).c_str());  // a restarted worker writes its new port
  ChildSpec spec{.argv = {options_.binary, "--log-level", options_.log_level},
                 .env = ChildEnv(options_.env, child.env),
                 .log_path = child.log_path,
                 .append_log = append_log};
  spec.argv.insert(spec.argv.end(), child.args.begin(), child.args.end());
  ASSIGN_OR_RETURN(child.pid, SpawnChild(spec));
  child.reaped = false;
  child.exit_reported = false;
  child.wait_status = 0;
  child.started = absl::Now();
  ComponentLogger("cluster")->debug("started {} (pid {}): {}", child.name, child.pid,
                                    absl::StrJoin(spec.argv, " "));
  return absl::OkStatus();
}

absl::Status Cluster::Restart(const std::string& name) {
  if (stopping_) return absl::FailedPreconditionError("the cluster is stopping");
  for (Child& c : children_) {
    if (c.name != name) continue;
    if (!Reap(c)) {
      return absl::FailedPreconditionError(absl::StrCat(name, " (pid ", c.pid, ") still runs"));
    }
    if (name == "router") {
      // The port it bound, not the 0 it may have been given: the workers know it by that port.
      for (size_t i = 0; i + 1 < c.args.size(); ++i) {
        if (c.args[i] == "--port") c.args[i + 1] = std::to_string(router_port_);
        if (c.args[i] == "--internal-port") c.args[i + 1] = std::to_string(internal_port_);
        if (c.args[i] == "--http-port" && http_port_ > 0) {
          c.args[i + 1] = std::to_string(http_port_);
        }
      }
    }
    return Launch(c, /*append_log=*/true);
  }
  return absl::NotFoundError(absl::StrCat("no process named ", name, " in this cluster"));
}

std::vector<ChildExit> Cluster::CollectExits() {
  std::vector<ChildExit> exits;
  for (Child& c : children_) {
    if (c.exit_reported || !Reap(c)) continue;
    c.exit_reported = true;
    exits.push_back(ChildExit{.name = c.name,
                              .pid = c.pid,
                              .wait_status = c.wait_status,
                              .log_path = c.log_path,
                              .uptime = c.exited - c.started});
  }
  return exits;
}

bool Cluster::Reap(Child& child) {
  if (child.reaped) return true;
  int status = 0;
  const pid_t r = waitpid(child.pid, &status, WNOHANG);
  if (r == child.pid) {
    child.reaped = true;
    child.wait_status = status;
    child.exited = absl::Now();
    if (!ExitedCleanly(status)) ever_failed_ = true;
    RemoveSharedMemoryOf(child.pid);
    return true;
  }
  return false;
}

absl::Status Cluster::DescribeExit(const Child& child) const {
  return absl::UnavailableError(absl::StrCat(child.name, " (pid ", child.pid, ") ",
                                             DescribeWaitStatus(child.wait_status), "; last lines of ",
                                             child.log_path, ":\n", TailOfFile(child.log_path, 8)));
}

absl::Status Cluster::CheckChildren() {
  for (Child& c : children_) {
    if (Reap(c)) return DescribeExit(c);
  }
  return absl::OkStatus();
}

absl::Status Cluster::WaitForChildExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    RETURN_IF_ERROR(CheckChildren());
    if (absl::Now() >= deadline) return absl::OkStatus();
    // waitpid on several specific children has no timed form: poll at a short interval.
    absl::SleepFor(std::min(absl::Milliseconds(50), deadline - absl::Now()));
  }
}

absl::Status Cluster::WaitForPortFile(const std::string& path, const Child& child, int* port) {
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    if (in >> *port && *port > 0) return absl::OkStatus();
    for (Child& c : children_) {
      if (c.pid == child.pid && Reap(c)) {
        absl::Status died = DescribeExit(c);
        Stop();
        return died;
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Stop();
  return absl::DeadlineExceededError(absl::StrCat(child.name, " did not report its port within ",
                                                  absl::FormatDuration(options_.ready_timeout),
                                                  "; see ", child.log_path));
}

void Cluster::Stop() {
  stopping_ = true;
  // Workers first: SIGTERM makes each drain (nothing new is placed on it, what it holds
  // finishes) while the router still runs; then the router.
  TerminateAndReap([](const Child& c) { return c.name != "router"; },
                   options_.drain_grace + options_.stop_grace);
  TerminateAndReap([](const Child& c) { return c.name == "router"; }, options_.stop_grace);
}

void Cluster::TerminateAndReap(const std::function<bool(const Child&)>& which,
                               absl::Duration grace) {
  bool any = false;
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    if (which(*it) && !Reap(*it)) {
      kill(it->pid, SIGTERM);
      any = true;
    }
  }
  if (!any) return;
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    bool all = true;
    for (Child& c : children_) all = (!which(c) || Reap(c)) && all;
    if (all) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (Child& c : children_) {
    if (!which(c) || Reap(c)) continue;
    ComponentLogger("cluster")->warn("{} (pid {}) did not exit within {} of SIGTERM; killing it",
                                     c.name, c.pid, absl::FormatDuration(grace));
    kill(c.pid, SIGKILL);
    int status = 0;
    waitpid(c.pid, &status, 0);
    c.reaped = true;
    c.wait_status = status;
    c.exited = absl::Now();
    ever_failed_ = true;
    RemoveSharedMemoryOf(c.pid);
  }
}

}  // namespace pdserve::cluster
