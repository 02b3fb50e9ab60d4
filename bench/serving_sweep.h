#pragma once

// The parts of `pdserve bench` that make a long sweep usable: every argument checked before
// anything starts, an ETA before and during the sweep, and `--resume DIR`, which continues an
// interrupted sweep from the report-inputs.json that the sweep rewrites after every cell.
// Plain functions over plain data, tested without clusters (tests/bench/serving_sweep_test.cc).

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/serving_bench.h"
#include "bench/serving_plan.h"
#include "bench/serving_report.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

// Every option of a sweep, checked before a cluster or a baseline starts: the backend names
// (local, ucx, ucx-<transport> with a transport UCX knows, cuda-ipc and ucx-staged on the
// GPU, colocated), device, compute, api, layout, worker counts, pool sizes, lengths and rates.
// The message is one line and names the bad value and what would be accepted.
absl::Status ValidateServingOptions(const ServingBenchOptions& options);

// The options that decide what a sweep runs, as report-inputs.json keeps them ("sweep"), and
// back. FromJson refuses a file without them (written before --resume existed).
nlohmann::json SweepOptionsToJson(const ServingBenchOptions& options);
absl::StatusOr<ServingBenchOptions> SweepOptionsFromJson(const nlohmann::json& sweep);

// What an interrupted sweep already has: the runs it finished (one per backend and cell, in run
// order) and each backend's transports line. Cells that a kill cut short have no run: they run
// again.
struct ResumedSweep {
  ServingBenchOptions options;  // as the interrupted sweep ran, result_dir = the folder
  ServingReportContext context;
  std::vector<ServingRun> runs;
  std::vector<std::string> transports;  // one line per backend that finished
};
absl::StatusOr<ResumedSweep> LoadSweep(const std::string& dir);

// The finished run of `backend` (label, as ServingRun::backend) for `cell`, or nullptr.
const ServingRun* FindRun(const std::vector<ServingRun>& runs, const std::string& backend,
                          const CellPlan& cell);

// The ETA: planned cell time scaled by how the finished cells compared with their plan, plus a
// cluster set-up per backend still to start.
class SweepProgress {
 public:
  // `cells` per backend (as planned), `backends` in all.
  SweepProgress(const std::vector<CellPlan>& cells, int backends);
  // A cell finished (or was restored by --resume: wall_s < 0, counted as done at its plan).
  void CellDone(const CellPlan& cell, double wall_s);
  void BackendSetUp(double setup_s);  // one backend's baseline + cluster start + warm-up
  int done() const { return done_; }
  int total() const { return total_; }
  double RemainingSeconds() const;
  // "12/81 cells, 3.2 min in, about 11.5 min left (ETA 14:32)"
  std::string Line(double elapsed_s) const;

 private:
  std::vector<double> planned_s_;  // per cell index, one backend
  int backends_;
  int total_;
  int done_ = 0;
  double planned_left_s_;
  double planned_done_s_ = 0;  // of measured cells only
  double measured_s_ = 0;
  int setups_ = 0;
  double setup_s_ = 0;
};

// "HH:MM" local time `seconds` from now.
std::string ClockIn(double seconds);

}  // namespace pdserve::bench
