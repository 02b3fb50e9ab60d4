#include <signal.h>

#include <array>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cluster/cluster.h"
#include "cluster/supervisor.h"
#include "service/worker_process.h"

namespace pdserve::cli {
namespace {

absl::Status RunCluster(cluster::ClusterOptions options, bool quiet) {
  // Before any thread exists, so that every thread of this process leaves them to sigtimedwait.
  service::BlockTerminationSignals();
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> started = cluster::Cluster::Start(options);
  if (!started.ok()) return started.status();
  cluster::Cluster& c = **started;
  const std::string workers =
      options.num_colocated > 0
          ? absl::StrCat(options.num_colocated, " colocated, no KV transfer")
          : absl::StrCat(options.num_prefill, " prefill, ", options.num_decode, " decode, transfer ",
                         options.transfer);
  std::printf("pdserve cluster ready: router at %s (%s, model %s)\n", c.endpoint().c_str(),
              workers.c_str(), ModelSummary(c.model()).c_str());
  // A line of its own: scripts parse the line above ("router at HOST:PORT (").
  if (!c.http_url().empty()) {
    std::printf("  OpenAI-compatible HTTP API at %s (model \"%s\")\n", c.http_url().c_str(),
                c.model().name.c_str());
  }
  // Prometheus targets: the router's series on its HTTP API, each worker's on its own port.
  std::printf("  Prometheus metrics at");
  if (!c.http_url().empty()) std::printf(" %s/metrics (router)", c.http_url().c_str());
  for (const std::string& name : c.ChildNames()) {
    if (absl::StatusOr<std::string> url = c.MetricsUrl(name); url.ok()) {
      std::printf(" %s/metrics (%s)", url->c_str(), name.c_str());
    }
  }
  std::printf("\n");
  std::printf("  cluster-internal API at %s (authenticated; secret in %s)\n",
              c.internal_endpoint().c_str(), c.secret_file().c_str());
  std::printf("  logs in %s\n", c.log_dir().c_str());
  std::printf("  try:  pdserve generate --endpoint %s --prompt-len 32 --max-tokens 16\n",
              c.endpoint().c_str());
  std::printf("        pdserve status --endpoint %s\n", c.endpoint().c_str());
  if (!c.http_url().empty()) {
    std::printf("        curl -N %s/v1/completions -d '{\"model\":\"%s\",\"prompt\":\"hello\","
                "\"max_tokens\":16,\"stream\":true}'\n",
                c.http_url().c_str(), c.model().name.c_str());
  }
  std::printf("  a process that dies is restarted; Ctrl-C stops the cluster (workers drain "
              "first).\n");
  std::fflush(stdout);
  // On this thread: it started the children, and PR_SET_PDEATHSIG ties restarted ones to it.
  cluster::Supervisor supervisor(c);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  while (true) {
    timespec wait{0, 200 * 1000 * 1000};
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      std::printf("pdserve cluster: %s received, stopping %zu processes\n", strsignal(sig),
                  c.ChildNames().size());
      std::fflush(stdout);
      c.Stop();
      std::printf("pdserve cluster: stopped\n");
      return absl::OkStatus();
    }
    if (absl::Status kept = supervisor.Poll(); !kept.ok()) {
      c.Stop();
      return absl::UnavailableError(absl::StrCat("cluster stopped: ", kept.message()));
    }
  }
  (void)quiet;
}

void AddClusterCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "cluster", "Start a router, prefill and decode workers on this host and supervise them");
  auto o = std::make_shared<cluster::ClusterOptions>();
  cmd->add_option("--prefill", o->num_prefill, "prefill workers")->capture_default_str();
  cmd->add_option("--decode", o->num_decode, "decode workers")->capture_default_str();
  cmd->add_option("--colocated", o->num_colocated,
                  "N > 0: N colocated workers (prefill and decode on one pool, no KV transfer) "
                  "instead of prefill and decode workers: the baseline P/D is compared with")
      ->capture_default_str();
  cmd->add_option("--transfer", o->transfer, "KV transfer backend: local, ucx, auto (local to peers with the same --host-id, ucx to the others), cuda-ipc, ucx-staged or nccl (the last three with --compute cuda; nccl with prefill and decode on different GPUs: --prefill-gpus / --decode-gpus)")
      ->capture_default_str();
  auto model = ModelFlags::Add(cmd, "every process of the cluster serves this model");
  // --host is the flag's older name, kept so that existing command lines keep working.
  cmd->add_option("--listen,--host", o->host, "IP address every process listens on")
      ->capture_default_str();
  cmd->add_option("--advertise", o->advertise,
                  "address every process registers and is dialled at (default: --listen)");
  cmd->add_option("--port", o->router_port, "router port (0: a free one)")->capture_default_str();
  cmd->add_option("--http-port", o->http_port,
                  "the router's OpenAI-compatible HTTP API (0: a free port; -1: off)")
      ->capture_default_str();
  cmd->add_option("--log-dir", o->log_dir, "folder for one log per process (default: a new /tmp "
                                           "folder)");
  auto num_blocks = std::make_shared<uint32_t>(0);
  cmd->add_option("--num-blocks", *num_blocks, "KV blocks per worker (prefill and decode)");
  cmd->add_option("--prefill-blocks", o->prefill_blocks, "KV blocks per prefill worker");
  cmd->add_option("--decode-blocks", o->decode_blocks, "KV blocks per decode worker");
  cmd->add_option("--pool-gib", o->pool_gib, "KV pool per worker in GiB (default 1)");
  cmd->add_option("--layout", o->layout, "layer-major or block-major")->capture_default_str();
  cmd->add_option("--compute", o->compute, "real, roofline or cuda (GPU kernels)")
      ->check(CLI::IsMember({"real", "roofline", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--gpu", o->gpu, "roofline: GPU whose time is modelled")->capture_default_str();
  cmd->add_option("--threads", o->threads, "kernel threads per worker (0: all cores)")
      ->capture_default_str();
  auto drain_grace_s = std::make_shared<double>(30);
  cmd->add_option("--drain-grace-s", *drain_grace_s,
                  "workers' drain on SIGTERM / Ctrl-C: longest wait for what they hold")
      ->capture_default_str();
  cmd->add_option("--binary", o->binary, "pdserve executable for the children (default: this one)");
  cmd->add_option("--router-arg", o->router_args, "extra flag for the router (repeatable)");
  cmd->add_option("--prefill-arg", o->prefill_args, "extra flag for prefill workers (repeatable)");
  cmd->add_option("--decode-arg", o->decode_args, "extra flag for decode workers (repeatable)");
  auto gpu_lists = std::make_shared<std::array<std::string, 3>>();
  cmd->add_option("--prefill-gpus", (*gpu_lists)[0],
                  "GPU of each prefill worker, e.g. 0 or 0,1 (worker i on the i-th, cycling); "
                  "each worker sees its GPU as device 0 and the cluster's other GPUs after it");
  cmd->add_option("--decode-gpus", (*gpu_lists)[1], "GPU of each decode worker, e.g. 1");
  cmd->add_option("--colocated-gpus", (*gpu_lists)[2], "GPU of each colocated worker");
  auto poison = std::make_shared<bool>(false);
  cmd->add_flag("--poison-freed-kv", *poison,
                "decode workers fill freed KV blocks with a poison pattern, so that reading "
                "blocks a request no longer owns changes its tokens (verification runs)");
  auto zero_copy = std::make_shared<bool>(false);
  cmd->add_flag("--zero-copy", *zero_copy,
                "prefill kernels write the decode workers' reserved blocks in place; the KV "
                "transfer is one notification (--transfer local, or cuda-ipc with --compute cuda)");
  cmd->callback([o, num_blocks, model, poison, drain_grace_s, zero_copy, gpu_lists] {
    cluster::ClusterOptions options = *o;
    std::vector<int>* placed[] = {&options.gpus.prefill, &options.gpus.decode,
                                  &options.gpus.colocated};
    for (size_t i = 0; i < gpu_lists->size(); ++i) {
      absl::StatusOr<std::vector<int>> gpus = cluster::ParseGpuList((*gpu_lists)[i]);
      if (!gpus.ok()) ExitWith(gpus.status());
      *placed[i] = std::move(*gpus);
    }
    options.drain_grace = absl::Seconds(*drain_grace_s);
    if (*poison) options.decode_args.push_back("--poison-freed-kv");
    if (*zero_copy) options.prefill_args.push_back("--zero-copy");
    absl::StatusOr<ModelOverrides> overrides = model->Overrides();
    if (!overrides.ok()) ExitWith(overrides.status());
    cluster::SetClusterModel(*overrides, options);
    if (options.prefill_blocks == 0) options.prefill_blocks = *num_blocks;
    if (options.decode_blocks == 0) options.decode_blocks = *num_blocks;
    ExitWith(RunCluster(options, false));
  });
}

const bool registered = RegisterCommand("cluster", AddClusterCommand);

}  // namespace
}  // namespace pdserve::cli
