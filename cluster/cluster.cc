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
namespace {

// A port given explicitly must be free now: say so clearly instead of letting a child fail.
absl::Status CheckPortFree(const std::string& host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("host ", host, " is not an IPv4 address"));
  }
  const int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::FailedPreconditionError(absl::StrCat("port ", port, " on ", host,
                                                      " is not available (", std::strerror(err),
                                                      "); pick another or 0 for a free one"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with code ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return absl::StrCat("was killed by signal ", sig, " (", strsignal(sig), ")");
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

ModelOverrides ClusterModel(const ClusterOptions& options) {
  ModelOverrides o;
  o.preset = options.preset;
  o.block_size = options.block_size;
  o.dtype = options.dtype;
  o.num_layers = options.num_layers;
  o.max_model_len = options.max_model_len;
  return o;
}

void SetClusterModel(const ModelOverrides& model, ClusterOptions& options) {
  options.preset = model.preset;
  options.block_size = model.block_size;
  options.dtype = model.dtype;
  options.num_layers = model.num_layers;
  options.max_model_len = model.max_model_len;
}

std::vector<std::string> ModelFlagArgs(const ModelConfig& model) {
  // Block size and dtype always, so that a child's log line shows them; layers and max length
  // only where they are not the preset's, to keep the usual command line short.
  std::vector<std::string> args = {"--preset", model.name, "--block-size",
                                   std::to_string(model.block_size), "--dtype",
                                   std::string(DTypeName(model.dtype))};
  absl::StatusOr<ModelConfig> preset = PresetConfig(model.name);
  if (!preset.ok() || preset->num_layers != model.num_layers) {
    args.insert(args.end(), {"--num-layers", std::to_string(model.num_layers)});
  }
  if (!preset.ok() || preset->max_model_len != model.max_model_len) {
    args.insert(args.end(), {"--max-model-len", std::to_string(model.max_model_len)});
  }
  return args;
}

Cluster::Cluster(ClusterOptions options, ModelConfig model)
    : options_(std::move(options)), model_(std::move(model)) {}

Cluster::~Cluster() {
  Stop();
  if (!remove_log_dir_) return;
  if (!AllExitedCleanly()) {
    ComponentLogger("cluster")->warn("a cluster process exited abnormally; logs kept in {}",
                                     options_.log_dir);
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(options_.log_dir, ec);
}

bool Cluster::ExitedCleanly(int s) {
  return (WIFEXITED(s) && WEXITSTATUS(s) == 0) || (WIFSIGNALED(s) && WTERMSIG(s) == SIGTERM);
}

bool Cluster::AllExitedCleanly() const {
  if (ever_failed_) return false;
  for (const Child& c : children_) {
    if (!c.reaped || !ExitedCleanly(c.wait_status)) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(ClusterOptions options) {
  if (options.num_colocated > 0) {
    options.num_prefill = 0;
    options.num_decode = 0;
  } else if (options.num_prefill < 1 || options.num_decode < 1) {
    return absl::InvalidArgumentError(absl::StrCat("a cluster needs at least one prefill and one "
                                                   "decode worker, got ",
                                                   options.num_prefill, " and ",
                                                   options.num_decode));
  }
  ASSIGN_OR_RETURN(ModelConfig model, ResolveModelConfig(ClusterModel(options)));
  if (options.binary.empty()) options.binary = SelfExe();
  if (access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("pdserve binary '", options.binary,
                                            "' is not executable"));
  }
  // Checked here, before any child starts, so that a typo is one clear error and not one per
  // child; the children check again (they may be started without the launcher).
  ASSIGN_OR_RETURN(options.host, service::ParseListenAddress("--listen", options.host));
  ASSIGN_OR_RETURN(options.advertise,
                   service::ResolveAdvertiseAddress(options.host, options.advertise));
  if (options.router_port != 0) RETURN_IF_ERROR(CheckPortFree(options.host, options.router_port));
  const bool own_log_dir = options.log_dir.empty();
  if (own_log_dir) {
    char tmpl[] = "/tmp/pdserve-cluster-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
    }
    options.log_dir = tmpl;
  } else if (mkdir(options.log_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create log folder ", options.log_dir,
                                                   ": ", std::strerror(errno)));
  }
  RETURN_IF_ERROR(CheckPlacement(options.gpus));  // before anything starts
  std::unique_ptr<Cluster> cluster(new Cluster(std::move(options), std::move(model)));
  const ClusterOptions& o = cluster->options_;
  // The children read the secret from a 0600 file, never from their command line.
  ASSIGN_OR_RETURN(ClusterSecret secret, ClusterSecret::Generate());
  ASSIGN_OR_RETURN(cluster->secret_file_, SecretFile::Create(secret));
  const std::vector<std::string> auth_args = {"--cluster-secret-file", cluster->secret_file()};
  const std::vector<std::string> model_args = ModelFlagArgs(cluster->model_);

  const std::string router_port_file = o.log_dir + "/router.port";
  const std::string internal_port_file = o.log_dir + "/router-internal.port";
  unlink(router_port_file.c_str());
  unlink(internal_port_file.c_str());
  const std::string http_port_file = o.log_dir + "/router-http.port";
  unlink(http_port_file.c_str());
  std::vector<std::string> router_args = {"router",          "--listen",    o.host,
                                          "--advertise",     o.advertise,
                                          "--port",          std::to_string(o.router_port),
                                          "--port-file",     router_port_file,
                                          "--transfer",      o.transfer,
                                          "--internal-port", "0",
                                          "--internal-port-file", internal_port_file};
  router_args.insert(router_args.end(),
                     {"--http-port", std::to_string(o.http_port), "--http-port-file", http_port_file});
  router_args.insert(router_args.end(), auth_args.begin(), auth_args.end());
  router_args.insert(router_args.end(), model_args.begin(), model_args.end());
  router_args.insert(router_args.end(), o.router_args.begin(), o.router_args.end());
  RETURN_IF_ERROR(cluster->Spawn("router", router_args));
  RETURN_IF_ERROR(
      cluster->WaitForPortFile(router_port_file, cluster->children_[0], &cluster->router_port_));
  RETURN_IF_ERROR(cluster->WaitForPortFile(internal_port_file, cluster->children_[0],
                                           &cluster->internal_port_));
  if (o.http_port >= 0) {  // written before the client port's file, so it is there by now
    RETURN_IF_ERROR(
        cluster->WaitForPortFile(http_port_file, cluster->children_[0], &cluster->http_port_));
  }

  auto worker_args = [&](const std::string& role, int index, uint32_t blocks,
                         const std::vector<std::string>& extra) {
    const std::string name = absl::StrCat(role, "-", index);
    std::vector<std::string> args = {role,         "--worker-id", name,
                                     "--listen",   o.host,        "--advertise",
                                     o.advertise,  "--port",
                                     "0",          "--router",    cluster->internal_endpoint(),
                                     "--transfer", o.transfer,    "--layout",
                                     o.layout,     "--compute",   o.compute,
                                     "--gpu",      o.gpu,         "--threads",
                                     std::to_string(role == "decode" && o.decode_threads >= 0
                                                        ? o.decode_threads
                                                        : o.threads)};
    args.insert(args.end(), auth_args.begin(), auth_args.end());
    args.insert(args.end(), model_args.begin(), model_args.end());
    args.insert(args.end(),
                {"--drain-grace-s", absl::StrCat(absl::ToDoubleSeconds(o.drain_grace))});
    args.insert(args.end(),
                {"--metrics-port", "0", "--metrics-port-file", cluster->MetricsPortFile(name)});
    if (blocks > 0) {
      args.insert(args.end(), {"--num-blocks", std::to_string(blocks)});
    } else if (o.pool_gib > 0) {
      args.insert(args.end(), {"--pool-gib", absl::StrCat(o.pool_gib)});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  // Placement ids count in the launcher's own CUDA_VISIBLE_DEVICES when it has one (Slurm).
  const char* visible_env = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string parent_visible = visible_env != nullptr ? visible_env : "";
  for (int i = 0; i < o.num_colocated; ++i) {
    std::vector<std::string> extra = o.prefill_args;
    extra.insert(extra.end(), o.decode_args.begin(), o.decode_args.end());
    ASSIGN_OR_RETURN(auto env, WorkerGpuEnv(o.gpus, "colocated", i, parent_visible));
    RETURN_IF_ERROR(cluster->Spawn(absl::StrCat("colocated-", i),
                                   worker_args("colocated", i, o.decode_blocks, extra),
                                   std::move(env)));
  }
  for (int i = 0; i < o.num_decode; ++i) {
    std::vector<std::string> extra = o.decode_args;
    if (static_cast<size_t>(i) < o.decode_worker_args.size()) {
      extra.insert(extra.end(), o.decode_worker_args[i].begin(), o.decode_worker_args[i].end());
    }
    ASSIGN_OR_RETURN(auto env, WorkerGpuEnv(o.gpus, "decode", i, parent_visible));
    RETURN_IF_ERROR(cluster->Spawn(absl::StrCat("decode-", i),
                                   worker_args("decode", i, o.decode_blocks, extra),
                                   std::move(env)));
  }
  for (int i = 0; i < o.num_prefill; ++i) {
    std::vector<std::string> extra = o.prefill_args;
    if (static_cast<size_t>(i) < o.prefill_worker_args.size()) {
      extra.insert(extra.end(), o.prefill_worker_args[i].begin(), o.prefill_worker_args[i].end());
    }
    ASSIGN_OR_RETURN(auto env, WorkerGpuEnv(o.gpus, "prefill", i, parent_visible));
    RETURN_IF_ERROR(cluster->Spawn(absl::StrCat("prefill-", i),
                                   worker_args("prefill", i, o.prefill_blocks, extra),
                                   std::move(env)));
  }
  RETURN_IF_ERROR(cluster->WaitUntilReady());
  cluster->remove_log_dir_ = own_log_dir;
  return cluster;
}

// Addresses handed out are the advertised ones: the listen address may be 0.0.0.0.
std::string Cluster::endpoint() const {
  return service::JoinHostPort(options_.advertise, router_port_);
}

std::string Cluster::http_url() const {
  if (http_port_ <= 0) return "";
  return absl::StrCat("http://", service::JoinHostPort(options_.advertise, http_port_));
}

std::string Cluster::internal_endpoint() const {
  return service::JoinHostPort(options_.advertise, internal_port_);
}

const std::string& Cluster::secret_file() const { return secret_file_->path(); }

std::string Cluster::MetricsPortFile(const std::string& name) const {
  return absl::StrCat(options_.log_dir, "/", name, "-metrics.port");
}

absl::StatusOr<std::string> Cluster::MetricsUrl(const std::string& name) const {
  const bool worker = std::any_of(children_.begin(), children_.end(), [&](const Child& c) {
    return c.name == name && c.name != "router";
  });
  if (!worker) {
    return absl::NotFoundError(absl::StrCat("no worker named ", name,
                                            " (the router's /metrics is on its HTTP API)"));
  }
  std::ifstream in(MetricsPortFile(name));
  int port = 0;
  if (!(in >> port) || port <= 0) {
    return absl::UnavailableError(absl::StrCat(name, " has not written its metrics port yet"));
  }
  return absl::StrCat("http://", service::JoinHostPort(options_.advertise, port));
}

std::vector<std::string> Cluster::ChildNames() const {
  std::vector<std::string> names;
  for (const Child& c : children_) names.push_back(c.name);
  return names;
}

absl::StatusOr<pid_t> Cluster::Pid(const std::string& name) const {
  for (const Child& c : children_) {
    if (c.name == name) return c.pid;
  }
  return absl::NotFoundError(absl::StrCat("no process named ", name, " in this cluster"));
}

absl::Status Cluster::Kill(const std::string& name, int signal) {
  ASSIGN_OR_RETURN(pid_t pid, Pid(name));
  if (kill(pid, signal) != 0) {
    return absl::InternalError(absl::StrCat("kill ", name, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::cluster
