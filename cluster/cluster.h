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
//
// Supervision (supervisor.h) restarts children that die, through CollectExits and Restart.
// Stop drains: workers get SIGTERM first and finish what they hold, the router last.
// A Cluster is used from one thread: the one that called Start (PR_SET_PDEATHSIG ties every
// child, restarted ones included, to the thread that forked it).

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/gpu_placement.h"
#include "common/cluster_secret.h"
#include "common/model_config.h"
#include "pdserve.pb.h"

namespace pdserve::cluster {

struct ClusterOptions {
  std::string binary;               // the pdserve executable; empty: this process's own binary
  int num_prefill = 1;
  int num_decode = 1;
  // > 0: this many colocated workers (`pdserve colocated`, prefill and decode on one pool, no KV
  // transfer) instead of split prefill and decode workers ("colocated-0", ...). They take
  // decode_blocks (or pool_gib), and both prefill_args and decode_args.
  int num_colocated = 0;
  std::string transfer = "local";   // local | ucx
  // The model every process serves (passed to each as --preset/--block-size/--dtype, plus
  // --num-layers/--max-model-len where they are not the preset's); 0 / empty: the preset's.
  std::string preset = "tiny";
  int block_size = 0;
  std::string dtype;
  int num_layers = 0;
  int max_model_len = 0;
  std::string host = "127.0.0.1";   // --listen (alias --host) of every process
  std::string advertise;            // --advertise of every process; empty: `host`
  int router_port = 0;              // 0: a free port; a taken port is an error
  int http_port = 0;                // the router's OpenAI-compatible HTTP API; 0: free; -1: off
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
  // Extra flags for single decode workers: [i] goes to decode-i after decode_args.
  std::vector<std::vector<std::string>> decode_worker_args;
  std::vector<std::pair<std::string, std::string>> env;  // added to every child's environment
  // Which GPU each worker runs on (gpu_placement.h: its CUDA_VISIBLE_DEVICES); empty: all on
  // the launcher's device 0. Every child also runs with NCCL_NVLS_ENABLE=0 (NVLink multicast
  // off: NCCL would otherwise reserve multicast memory per communicator) unless `env` or the
  // launcher's environment sets it.
  GpuPlacement gpus;
  absl::Duration ready_timeout = absl::Seconds(60);
  absl::Duration stop_grace = absl::Seconds(5);  // SIGTERM, then SIGKILL after this
  // Workers' --drain-grace-s: on SIGTERM they finish what they hold for at most this long. Stop
  // waits this plus stop_grace for them before SIGKILL.
  absl::Duration drain_grace = absl::Seconds(30);
};

// A child that exited, as the launcher reaped it.
struct ChildExit {
  std::string name;
  pid_t pid = -1;
  int wait_status = 0;
  std::string log_path;
  absl::Duration uptime;  // from its (re)start to the reap
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
  // http://host:port of the router's OpenAI-compatible HTTP API; empty when off.
  std::string http_url() const;
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

  // Reaps the children that exited and returns those not returned before (each death once).
  std::vector<ChildExit> CollectExits();
  // Starts the named child again with its first arguments (the router on the port it bound,
  // where the workers look for it), appending to its log. FailedPrecondition while it runs or
  // once Stop began; NotFound for an unknown name.
  absl::Status Restart(const std::string& name);

  // http://host:port of the named worker's GET /metrics (its --metrics-port, read from the
  // port file it wrote, so a restarted worker's new port is seen); NotFound for the router or
  // an unknown name, Unavailable while the worker has not written it.
  absl::StatusOr<std::string> MetricsUrl(const std::string& name) const;

  // The router's view of the cluster.
  absl::StatusOr<v1::ClusterStatus> GetStatus(absl::Duration timeout = absl::Seconds(5)) const;

  // SIGTERM to every worker (they drain), SIGKILL to those still running after drain_grace +
  // stop_grace; then the same for the router with stop_grace. Reaps them all. Idempotent.
  void Stop();

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    std::vector<std::string> args;  // after the binary and --log-level
    std::vector<std::pair<std::string, std::string>> env;  // its own, over ClusterOptions::env
    std::string log_path;
    bool reaped = false;
    bool exit_reported = false;  // returned by CollectExits
    int wait_status = 0;
    absl::Time started;
    absl::Time exited;
  };

  Cluster(ClusterOptions options, ModelConfig model);
  std::string MetricsPortFile(const std::string& name) const;
  absl::Status Spawn(const std::string& name, const std::vector<std::string>& args,
                     std::vector<std::pair<std::string, std::string>> env = {});
  // Forks and execs `child` from its args; sets its pid and start time.
  absl::Status Launch(Child& child, bool append_log);
  // SIGTERM to the running children `which` selects, SIGKILL after `grace`; reaps them.
  void TerminateAndReap(const std::function<bool(const Child&)>& which, absl::Duration grace);
  static bool ExitedCleanly(int wait_status);
  absl::Status WaitForPortFile(const std::string& path, const Child& child, int* port);
  absl::Status WaitUntilReady();
  // Reaps `child` if it exited; true when it has.
  bool Reap(Child& child);
  absl::Status DescribeExit(const Child& child) const;

  // True when every child exited with code 0 or on the SIGTERM that Stop sent, and none
  // exited otherwise before (and was restarted).
  bool AllExitedCleanly() const;

  ClusterOptions options_;
  ModelConfig model_;
  int router_port_ = 0;
  int http_port_ = 0;
  int internal_port_ = 0;
  std::unique_ptr<SecretFile> secret_file_;
  std::vector<Child> children_;
  bool stopping_ = false;
  bool ever_failed_ = false;
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
