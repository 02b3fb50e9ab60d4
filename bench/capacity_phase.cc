#include "bench/capacity_phase.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_backends.h"
#include "bench/serving_cell.h"
#include "cluster/cluster.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_json.h"

namespace pdserve::bench {
namespace {

WorkloadCapacity Search(const ServingBenchOptions& o, const CapacityOptions& copts,
                        cluster::Cluster& cl, const std::string& backend, int in, int out,
                        uint64_t seed) {
  WorkloadCapacity w{.backend = backend, .input_len = in, .output_len = out};
  CapacitySearch search(copts);
  int k = 0;
  while (std::optional<double> rate = search.NextRate()) {
    const CellPlan probe{
        .input_len = in, .output_len = out, .rate = *rate, .prompts = ProbePrompts(*rate, copts)};
    loadgen::LoadOptions load = CellLoad(o, cl, backend, probe);
    load.goodput = copts.slos;
    load.seed = seed + static_cast<uint64_t>(k++);
    load.progress = loadgen::ProgressMode::kOff;
    absl::StatusOr<loadgen::BenchmarkResult> r = loadgen::RunLoad(load);
    if (!r.ok()) {
      w.error = std::string(r.status().message());
      break;
    }
    const CapacityProbe p = JudgeProbe(*rate, loadgen::ResultToJson(*r, false), copts);
    std::printf("        probe %g req/s: %d prompts, %.0f%% within SLOs, served %.2fx: %s\n",
                *rate, probe.prompts, p.attainment * 100, p.served_ratio,
                p.holds ? "holds" : "does not hold");
    std::fflush(stdout);
    search.Record(p);
  }
  w.capacity = search.Capacity();
  w.unbounded = search.Unbounded();
  w.probes = search.probes();
  return w;
}

}  // namespace

absl::StatusOr<std::vector<WorkloadCapacity>> FindCapacities(const ServingBenchOptions& o,
                                                             const CapacityOptions& copts,
                                                             const std::vector<CellPlan>& cells,
                                                             uint32_t decode_blocks,
                                                             const std::string& dir) {
  std::vector<std::pair<int, int>> workloads;
  for (const CellPlan& c : cells) {
    const std::pair<int, int> w{c.input_len, c.output_len};
    if (std::find(workloads.begin(), workloads.end(), w) == workloads.end()) workloads.push_back(w);
  }
  std::vector<WorkloadCapacity> all;
  std::error_code ec;
  std::filesystem::create_directories(dir + "/capacity", ec);  // the clusters' log folders
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, "/capacity: ", ec.message()));
  for (const std::string& user_backend : o.backends) {
    const std::string backend = BackendLabel(user_backend, o.device);
    std::printf("[%s] capacity: the highest rate within %s for %zu workloads...\n",
                backend.c_str(), DescribeSlos(copts.slos).c_str(), workloads.size());
    std::fflush(stdout);
    cluster::ClusterOptions c;
    absl::StatusOr<std::unique_ptr<cluster::Cluster>> cl =
        StartServingCluster(o, user_backend, decode_blocks, cells, dir + "/capacity", c);
    if (!cl.ok()) {
      std::printf("[%s] capacity not found: the cluster did not start: %s\n", backend.c_str(),
                  std::string(cl.status().message()).c_str());
    }
    for (size_t i = 0; i < workloads.size(); ++i) {
      const auto [in, out] = workloads[i];
      if (!cl.ok()) {
        all.push_back({.backend = backend,
                       .input_len = in,
                       .output_len = out,
                       .error = absl::StrCat("cluster did not start: ", cl.status().message())});
        continue;
      }
      std::printf("[%s capacity %zu/%zu] in %d out %d\n", backend.c_str(), i + 1, workloads.size(),
                  in, out);
      all.push_back(Search(o, copts, **cl, backend, in, out, o.seed ^ (0xca9ull << 20) ^ (i << 8)));
      const WorkloadCapacity& w = all.back();
      if (!w.error.empty()) {
        std::printf("        capacity not found: %s\n", w.error.c_str());
      } else {
        std::printf("        capacity %g req/s%s\n", w.capacity,
                    w.unbounded ? " or more (the search's maximum)" : "");
      }
    }
    if (cl.ok()) (*cl)->Stop();
  }
  return all;
}

double CapacityOf(const std::vector<WorkloadCapacity>& all, const std::string& backend,
                  int input_len, int output_len) {
  for (const WorkloadCapacity& w : all) {
    if (w.backend == backend && w.input_len == input_len && w.output_len == output_len) {
      return w.capacity;
    }
  }
  return 0;
}

nlohmann::json CapacitiesToJson(const std::vector<WorkloadCapacity>& all) {
  nlohmann::json out = nlohmann::json::array();
  for (const WorkloadCapacity& w : all) {
    nlohmann::json probes = nlohmann::json::array();
    for (const CapacityProbe& p : w.probes) {
      probes.push_back({{"rate", p.rate},
                        {"completed", p.completed},
                        {"failed", p.failed},
                        {"attainment", p.attainment},
                        {"served_ratio", p.served_ratio},
                        {"holds", p.holds}});
    }
    out.push_back({{"backend", w.backend},
                   {"input_len", w.input_len},
                   {"output_len", w.output_len},
                   {"capacity", w.capacity},
                   {"unbounded", w.unbounded},
                   {"error", w.error},
                   {"probes", probes}});
  }
  return out;
}

std::vector<WorkloadCapacity> CapacitiesFromJson(const nlohmann::json& j) {
  std::vector<WorkloadCapacity> all;
  if (!j.is_array()) return all;
  for (const nlohmann::json& w : j) {
    if (!w.is_object()) continue;
    WorkloadCapacity c{.backend = w.value("backend", ""),
                       .input_len = w.value("input_len", 0),
                       .output_len = w.value("output_len", 0),
                       .capacity = w.value("capacity", 0.0),
                       .unbounded = w.value("unbounded", false),
                       .error = w.value("error", "")};
    for (const nlohmann::json& p : w.value("probes", nlohmann::json::array())) {
      c.probes.push_back({.rate = p.value("rate", 0.0),
                          .completed = p.value("completed", 0),
                          .failed = p.value("failed", 0),
                          .attainment = p.value("attainment", 0.0),
                          .served_ratio = p.value("served_ratio", 0.0),
                          .holds = p.value("holds", false)});
    }
    all.push_back(std::move(c));
  }
  return all;
}

std::string CapacitySection(const nlohmann::json& capacities, const std::string& slos,
                            const std::string& baseline) {
  const std::vector<WorkloadCapacity> all = CapacitiesFromJson(capacities);
  if (all.empty()) return "";
  std::string md = absl::StrCat(
      "## Capacity\n\n`--find-capacity`: per backend and workload, the highest request rate "
      "at which a probe load (Poisson arrivals) had no failed request, at least 90% of its "
      "requests within the SLOs (", slos,
      ") and completions over the arrival window at least 0.9x the rate the load generator "
      "sent (a queue that grows makes them fall behind); found by doubling from 0.5 req/s "
      "until a probe failed, then bisecting 3 times. The sweep adds rates at 0.25, 0.5, 0.75, "
      "0.9 and 1.1x the ", baseline,
      " backend's capacity per workload to its fixed rates, so every backend runs the same "
      "cells. Probes are not judged for host-boundness: on a small host a capacity can be the "
      "host's rather than the modelled system's, which the host-bound verdicts of the cells at "
      "0.9 and 1.1x of it show.\n\n| backend | workload | capacity (req/s) | probes: rate "
      "(within SLOs, served / sent) |\n|---|---|---|---|\n");
  for (const WorkloadCapacity& w : all) {
    std::vector<std::string> probes;
    for (const CapacityProbe& p : w.probes) {
      probes.push_back(absl::StrFormat("%g%s (%.0f%%, %.2f)", p.rate, p.holds ? "" : " x",
                                       p.attainment * 100, p.served_ratio));
    }
    const std::string capacity =
        !w.error.empty() ? absl::StrCat("- (", w.error, ")")
        : w.unbounded    ? absl::StrFormat(">= %g", w.capacity)
                         : absl::StrFormat("%g", w.capacity);
    absl::StrAppend(&md, "| ", w.backend, " | in", w.input_len, "/out", w.output_len, " | ",
                    capacity, " | ", absl::StrJoin(probes, ", "), " |\n");
  }
  absl::StrAppend(&md, "\nx: the probe did not hold.\n\n");
  return md;
}

}  // namespace pdserve::bench
