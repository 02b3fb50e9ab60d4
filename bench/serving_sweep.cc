#include "bench/serving_sweep.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_backends.h"
#include "common/model_config.h"
#include "common/roofline.h"
#include "loadgen/arrival_schedule.h"
#include "loadgen/metrics.h"
#include "transfer/kv_transport.h"

namespace pdserve::bench {
namespace {

// UCX_TLS names (UCX 1.13-1.18 documentation): what `ucx-<name>` may pin UCX to. A name UCX
// does not know would start a cluster whose workers fail to connect, after the backends before
// it had run.
constexpr const char* kUcxTransports[] = {
    "all",  "sm",   "shm",  "posix", "sysv",      "cma",      "knem",     "xpmem",
    "tcp",  "self", "rc",   "rc_v",  "rc_x",      "rc_mlx5",  "ud",       "ud_v",
    "ud_x", "dc",   "dc_x", "ib",    "cuda",      "cuda_copy", "cuda_ipc", "gdr_copy",
    "mm",   "srd",  "rocm", "ugni",  "dc_mlx5",   "ud_mlx5"};

absl::Status CheckBackend(const std::string& b, const std::string& device) {
  if (b == "local" || b == "ucx" || IsColocated(b)) return absl::OkStatus();
  if (device == "cuda" && (b == "cuda-ipc" || b == "ucx-staged" || b == "cuda-ipc-zc")) {
    return absl::OkStatus();
  }
  if (device == "cuda" && b == "nccl") {
    const std::vector<std::string> built = transfer::KvTransportBackends();
    if (std::find(built.begin(), built.end(), b) != built.end()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "--backends: nccl is not in this build (it needs NCCL where CMake looks: NCCL_ROOT)");
  }
  if (b == "local-zc") return absl::OkStatus();  // zero-copy: local, or cuda-ipc on the GPU
  if (b.rfind("ucx-", 0) == 0) {
    std::string tls = b.substr(4);
    if (device == "cuda" && tls.rfind("staged-", 0) == 0) tls = tls.substr(7);
    if (std::find_if(std::begin(kUcxTransports), std::end(kUcxTransports),
                     [&](const char* t) { return tls == t; }) != std::end(kUcxTransports)) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--backends: '", b, "' names UCX transport '", tls,
                     "', which UCX_TLS does not know (e.g. ucx-posix, ucx-tcp, ucx-cma)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--backends: unknown backend '", b, "' (local, local-zc (zero-copy), ucx, "
      "ucx-<transport> such as ucx-posix, ucx-tcp, ucx-cma",
      device == "cuda" ? "; on the GPU also cuda-ipc, cuda-ipc-zc, ucx-staged, nccl" : "",
      "; and colocated, the deployment P/D is compared with)"));
}

}  // namespace

absl::Status ValidateServingOptions(const ServingBenchOptions& o) {
  if (o.backends.empty()) return absl::InvalidArgumentError("--backends: none given");
  for (size_t i = 0; i < o.backends.size(); ++i) {
    if (absl::Status s = CheckBackend(o.backends[i], o.device); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j) {
      if (o.backends[j] == o.backends[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("--backends: '", o.backends[i], "' given twice"));
      }
    }
  }
  if (o.device != "cpu" && o.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device must be cpu or cuda, not '", o.device, "'"));
  }
  if (o.compute != "real" && o.compute != "roofline" && o.compute != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--compute must be real, roofline or cuda, not '", o.compute, "'"));
  }
  if (o.compute == "cuda" && o.device != "cuda") {
    return absl::InvalidArgumentError("--compute cuda needs --device cuda");
  }
  if (o.api != "grpc" && o.api != "http") {
    return absl::InvalidArgumentError(absl::StrCat("--api must be grpc or http, not '", o.api, "'"));
  }
  if (o.stream_chunk_tokens < 0) {
    return absl::InvalidArgumentError("--stream-chunk-tokens must be >= 0");
  }
  if (o.layout != "layer-major" && o.layout != "block-major") {
    return absl::InvalidArgumentError(
        absl::StrCat("--layout must be layer-major or block-major, not '", o.layout, "'"));
  }
  if (absl::StatusOr<ModelConfig> c = PresetConfig(o.preset); !c.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--preset: ", c.status().message()));
  }
  if (o.compute == "roofline") {
    if (absl::StatusOr<GpuSpec> g = GpuSpecByName(o.gpu); !g.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--gpu: ", g.status().message()));
    }
  }
  if (o.num_prefill < 1 || o.num_decode < 1) {
    return absl::InvalidArgumentError("--prefill and --decode need at least 1 worker each");
  }
  if (!(o.pool_gib > 0)) return absl::InvalidArgumentError("--pool-gib must be > 0");
  for (int n : o.input_lens) {
    if (n < 1) return absl::InvalidArgumentError(absl::StrCat("--input-lens: ", n, " < 1"));
  }
  for (int n : o.output_lens) {
    if (n < 1) return absl::InvalidArgumentError(absl::StrCat("--output-lens: ", n, " < 1"));
  }
  for (double r : o.rates) {
    if (!(r > 0)) return absl::InvalidArgumentError(absl::StrCat("--rates: ", r, " is not > 0"));
  }
  if (o.cell_seconds < 0 || o.min_prompts < 0 || o.max_prompts < 0) {
    return absl::InvalidArgumentError("--cell-seconds, --min-prompts, --max-prompts must be >= 0");
  }
  if (absl::StatusOr<loadgen::SloSpec> slo = loadgen::ParseSloSpec(o.slo); !slo.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--slo: ", slo.status().message()));
  }
  if (o.max_prompts > 0 && o.min_prompts > o.max_prompts) {
    return absl::InvalidArgumentError("--min-prompts is above --max-prompts");
  }
  return absl::OkStatus();
}

nlohmann::json SweepOptionsToJson(const ServingBenchOptions& o) {
  return {{"backends", o.backends},
          {"matrix", o.matrix},
          {"preset", o.preset},
          {"compute", o.compute},
          {"gpu", o.gpu},
          {"device", o.device},
          {"prefill", o.num_prefill},
          {"decode", o.num_decode},
          {"pool_gib", o.pool_gib},
          {"decode_pool_gib", o.decode_pool_gib},
          {"layout", o.layout},
          {"stream_chunk_tokens", o.stream_chunk_tokens},
          {"input_lens", o.input_lens},
          {"output_lens", o.output_lens},
          {"rates", o.rates},
          {"cell_seconds", o.cell_seconds},
          {"min_prompts", o.min_prompts},
          {"max_prompts", o.max_prompts},
          {"transfer_baseline", o.transfer_baseline},
          {"verify", o.verify},
          {"api", o.api},
          {"seed", o.seed},
          {"find_capacity", o.find_capacity},
          {"slo", o.slo},
          {"command_line", o.command_line}};
}

absl::StatusOr<ServingBenchOptions> SweepOptionsFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("backends") || !j.contains("matrix")) {
    return absl::FailedPreconditionError(
        "no sweep options in report-inputs.json (written by a pdserve bench without --resume)");
  }
  ServingBenchOptions o;
  try {
    o.backends = j.at("backends").get<std::vector<std::string>>();
    o.matrix = j.at("matrix").get<std::string>();
    o.preset = j.at("preset").get<std::string>();
    o.compute = j.at("compute").get<std::string>();
    o.gpu = j.at("gpu").get<std::string>();
    o.device = j.at("device").get<std::string>();
    o.num_prefill = j.at("prefill").get<int>();
    o.num_decode = j.at("decode").get<int>();
    o.pool_gib = j.at("pool_gib").get<double>();
    o.decode_pool_gib = j.at("decode_pool_gib").get<double>();
    o.layout = j.at("layout").get<std::string>();
    o.stream_chunk_tokens = j.value("stream_chunk_tokens", 0);
    o.input_lens = j.at("input_lens").get<std::vector<int>>();
    o.output_lens = j.at("output_lens").get<std::vector<int>>();
    o.rates = j.at("rates").get<std::vector<double>>();
    o.cell_seconds = j.at("cell_seconds").get<double>();
    o.min_prompts = j.at("min_prompts").get<int>();
    o.max_prompts = j.at("max_prompts").get<int>();
    o.transfer_baseline = j.at("transfer_baseline").get<bool>();
    o.verify = j.at("verify").get<bool>();
    o.api = j.at("api").get<std::string>();
    o.seed = j.at("seed").get<uint64_t>();
    o.find_capacity = j.value("find_capacity", false);
    o.slo = j.value("slo", std::vector<std::string>{});
    o.command_line = j.value("command_line", "");
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("report-inputs.json: sweep options unreadable: ", e.what()));
  }
  return o;
}

absl::StatusOr<ResumedSweep> LoadSweep(const std::string& dir) {
  ResumedSweep out;
  if (absl::Status s = ReadServingReportInputs(dir, &out.context, &out.runs); !s.ok()) return s;
  absl::StatusOr<ServingBenchOptions> o = SweepOptionsFromJson(out.context.sweep);
  if (!o.ok()) return o.status();
  out.options = *std::move(o);
  out.options.result_dir = dir;
  if (absl::Status s = ValidateServingOptions(out.options); !s.ok()) return s;
  for (const nlohmann::json& t : out.context.sweep.value("transports", nlohmann::json::array())) {
    if (t.is_string()) out.transports.push_back(t.get<std::string>());
  }
  return out;
}

const ServingRun* FindRun(const std::vector<ServingRun>& runs, const std::string& backend,
                          const CellPlan& cell) {
  for (const ServingRun& r : runs) {
    if (r.backend == backend && r.input_len == cell.input_len &&
        r.output_len == cell.output_len &&
        loadgen::RequestRateName(r.request_rate) == loadgen::RequestRateName(cell.rate)) {
      return &r;
    }
  }
  return nullptr;
}

SweepProgress::SweepProgress(const std::vector<CellPlan>& cells, int backends)
    : backends_(backends), total_(static_cast<int>(cells.size()) * backends) {
  double sum = 0;
  for (const CellPlan& c : cells) sum += c.expected_s;
  planned_left_s_ = sum * backends;
}

void SweepProgress::CellDone(const CellPlan& cell, double wall_s) {
  ++done_;
  planned_left_s_ = std::max(0.0, planned_left_s_ - cell.expected_s);
  if (wall_s >= 0) {
    planned_done_s_ += cell.expected_s;
    measured_s_ += wall_s;
  }
}

void SweepProgress::BackendSetUp(double setup_s) {
  ++setups_;
  setup_s_ += setup_s;
}

double SweepProgress::RemainingSeconds() const {
  // Until a cell has run, the plan is the estimate; after, the plan scaled by the measured pace.
  const double pace = planned_done_s_ > 0 ? measured_s_ / planned_done_s_ : 1.0;
  const double per_setup = setups_ > 0 ? setup_s_ / setups_ : 20.0;
  const int cells_per_backend = backends_ > 0 ? total_ / backends_ : 0;
  // Backends not started yet: those whose first cell has not run.
  const int started = cells_per_backend > 0 ? (done_ + cells_per_backend - 1) / cells_per_backend
                                            : 0;
  const int setups_left = std::max(0, backends_ - std::max(started, setups_));
  return planned_left_s_ * pace + setups_left * per_setup;
}

std::string SweepProgress::Line(double elapsed_s) const {
  const double left = RemainingSeconds();
  return absl::StrFormat("%d/%d cells, %.1f min in, about %.1f min left (ETA %s)", done_, total_,
                         elapsed_s / 60, left / 60, ClockIn(left));
}

std::string ClockIn(double seconds) {
  const std::time_t t = std::time(nullptr) + static_cast<std::time_t>(std::llround(seconds));
  char buf[16];
  std::strftime(buf, sizeof(buf), "%H:%M", std::localtime(&t));
  return buf;
}

}  // namespace pdserve::bench
