#pragma once

// Launches and supervises a pdserve cluster on this host: a router, N prefill workers and M decode
// workers, each a child process of the pdserve binary. Used by `pdserve cluster` and, in-process,
// by benchmarks and end-to-end tests:
//
//   ClusterOptions options;
//   options.num_prefill = 2; options.num_decode = 2; options.transfer = "ucx";
//   ASSIGN_OR_RETURN(std::unique_ptr<Cluster> cluster, Cluster::Start(options));
//   ... talk to cluster->endpoint() (Router.Generate) ...
//   cluster->Stop();  // or let the destructor do it
//
// Children: own process group (a terminal's Ctrl-C reaches only the launcher, which then stops
// them in order), PR_SET_PDEATHSIG so that they never outlive the launcher's thread that started
// them (call Start from a thread that lives as long as the cluster), stdout and stderr into
// <log_dir>/<name>.log, ports chosen by the children themselves (port 0) and reported through
// port files, so there is no window between "found a free port" and "bound it".

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/model_config.h"
#include "pdserve.pb.h"

namespace pdserve::cluster {

struct ClusterOptions {
  std::string binary;               // the pdserve executable; empty: this process's own binary
  int num_prefill = 1;
  int num_decode = 1;
  std::string transfer = "local";   // local | ucx
  // The model every process serves (passed to each as --preset/--block-size/--dtype, plus
  // --num-layers/--max-model-len where they are not the preset's); 0 / empty: the preset's.
  std::string preset = "tiny";
  int block_size = 0;
  std::string dtype;
  int num_layers = 0;
  int max_model_len = 0;
  std::string host = "127.0.0.1";
  int router_port = 0;              // 0: a free port; a taken port is an error
  std::string log_dir;              // empty: a fresh /tmp/pdserve-cluster-XXXXXX, removed
                                    // after a clean run (kept when a start or a child failed)
  uint32_t prefill_blocks = 0;      // per prefill worker; 0: from pool_gib
  uint32_t decode_blocks = 0;       // per decode worker; 0: from pool_gib
  double pool_gib = 0;              // 0: the workers' default (1 GiB)
  std::string layout = "layer-major";
  std::string compute = "real";     // real | roofline
  std::string gpu = "h100";
  int threads = 1;                  // kernel threads per worker
  int decode_threads = -1;          // decode workers' kernel threads (< 0: `threads`)
  std::string log_level = "info";
  std::vector<std::string> router_args;   // extra flags for `pdserve router`
  std::vector<std::string> prefill_args;  // extra flags for every `pdserve prefill`
  // Extra flags for single prefill workers: [i] goes to prefill-i after prefill_args (a slow
  // worker among fast ones, in fault tests).
  std::vector<std::vector<std::string>> prefill_worker_args;
  std::vector<std::string> decode_args;   // extra flags for every `pdserve decode`
  std::vector<std::pair<std::string, std::string>> env;  // added to every child's environment
  absl::Duration ready_timeout = absl::Seconds(60);
  absl::Duration stop_grace = absl::Seconds(5);  // SIGTERM, then SIGKILL after this
};

class Cluster {
 public:
  // Starts every process and returns once each worker is registered with the router and ready
  // (or an error naming the process that failed, with the tail of its log; nothing is left
  // running then). InvalidArgument, before anything starts, for a model that does not resolve.
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(ClusterOptions options);
  ~Cluster();  // Stop()
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // host:port of the router (the client endpoint).
  std::string endpoint() const;
  // host:port of the router's cluster-internal API (RouterControl): workers' --router.
  std::string internal_endpoint() const;
  // The 0600 file holding this cluster's secret (removed with the cluster): what a process
  // started by hand needs to join it (--cluster-secret-file).
  const std::string& secret_file() const;
  const std::string& log_dir() const { return options_.log_dir; }
  const ClusterOptions& options() const { return options_; }
  // The resolved model every process was started with.
  const ModelConfig& model() const { return model_; }

  // "router", "prefill-0", ..., "decode-0", ...
  std::vector<std::string> ChildNames() const;
  absl::StatusOr<pid_t> Pid(const std::string& name) const;
  // Sends `signal` to the named child (fault injection).
  absl::Status Kill(const std::string& name, int signal);

  // OK while every child runs; otherwise Unavailable naming the first that exited and why
  // ("decode-1 (pid 123) was killed by signal 9 (Killed)"), with the tail of its log.
  absl::Status CheckChildren();
  // Waits up to `timeout` for a child to exit: OK when none did, else as CheckChildren.
  absl::Status WaitForChildExit(absl::Duration timeout);

  // The router's view of the cluster.
  absl::StatusOr<v1::ClusterStatus> GetStatus(absl::Duration timeout = absl::Seconds(5)) const;

  // SIGTERM to every child, SIGKILL to those still running after stop_grace; reaps them all.
  // Idempotent.
  void Stop();

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    std::string log_path;
    bool reaped = false;
    int wait_status = 0;
  };

  Cluster(ClusterOptions options, ModelConfig model);
  absl::Status Spawn(const std::string& name, const std::vector<std::string>& args);
  absl::Status WaitForPortFile(const std::string& path, const Child& child, int* port);
  absl::Status WaitUntilReady();
  // Reaps `child` if it exited; true when it has.
  bool Reap(Child& child);
  absl::Status DescribeExit(const Child& child) const;

  // True when every child exited with code 0 or on the SIGTERM that Stop sent.
  bool AllExitedCleanly() const;

  ClusterOptions options_;
  ModelConfig model_;
  int router_port_ = 0;
  int internal_port_ = 0;
  std::unique_ptr<SecretFile> secret_file_;
  std::vector<Child> children_;
  // A log folder this cluster made itself (no log_dir given) goes when the cluster is destroyed
  // after a clean run; after a failed start or an abnormal exit it stays for the operator.
  bool remove_log_dir_ = false;
};

// `options`' model fields as overrides, and back.
ModelOverrides ClusterModel(const ClusterOptions& options);
void SetClusterModel(const ModelOverrides& model, ClusterOptions& options);

// The command-line flags that make `pdserve router|prefill|decode` serve `model`.
std::vector<std::string> ModelFlagArgs(const ModelConfig& model);

// "exited with code 1", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace pdserve::cluster
