#pragma once

// The probing half of `pdserve bench --find-capacity` (bench/capacity.h has the rules): one
// cluster per backend, a capacity search per workload on it, then the cluster stops. Runs
// before the sweep, whose rates then include fractions of the baseline backend's capacity.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/capacity.h"
#include "bench/serving_bench.h"
#include "bench/serving_plan.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

struct WorkloadCapacity {
  std::string backend;  // label, as ServingRun::backend
  int input_len = 0;
  int output_len = 0;
  double capacity = 0;     // req/s; 0: not even the start rate held
  bool unbounded = false;  // held up to max_rate
  std::string error;       // the cluster did not start or a probe's load could not run
  std::vector<CapacityProbe> probes;
};

// Every backend of `o`, every workload (distinct input/output lengths) of `cells`.
absl::StatusOr<std::vector<WorkloadCapacity>> FindCapacities(const ServingBenchOptions& o,
                                                             const CapacityOptions& copts,
                                                             const std::vector<CellPlan>& cells,
                                                             uint32_t decode_blocks,
                                                             const std::string& dir);

// The capacity of `backend` for a workload, or 0.
double CapacityOf(const std::vector<WorkloadCapacity>& all, const std::string& backend,
                  int input_len, int output_len);

nlohmann::json CapacitiesToJson(const std::vector<WorkloadCapacity>& all);
std::vector<WorkloadCapacity> CapacitiesFromJson(const nlohmann::json& j);

// The report's section: SLOs, rules, a table of capacities with each search's probes.
std::string CapacitySection(const nlohmann::json& capacities, const std::string& slos,
                            const std::string& baseline);

}  // namespace pdserve::bench
