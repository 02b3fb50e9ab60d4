#pragma once

// A `pdserve bench` results folder as `pdserve doctor` reads it: report-inputs.json (the run's
// context, each backend's transports line, the same-run transfer baselines, one entry per
// cell), summary.csv (one row per cell), and each cell's JSON with its per-request timelines
// where the folder kept it (committed folders often leave those out: the doctor then works from
// summary.csv and says what it could not see).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pdserve::doctor {

// One cell: one backend at one workload (input, output length) and request rate.
struct Cell {
  std::string backend;  // as the bench labels it: "local", "ucx-tcp", "cuda-ipc", ...
  int input_len = 0;
  int output_len = 0;
  std::string rate;         // as written: "1", "16", "inf"
  std::string error;        // non-empty: the cell failed
  bool host_bound = false;  // summary.csv: the host, not the modelled device, set the pace
  std::map<std::string, double> summary;  // summary.csv's numeric columns of this cell
  nlohmann::json result;  // the cell's loadgen JSON (server_timelines, ...); null when absent
  // Without the cell's JSON: the per-request CSV (loadgen/result_csv.cc's numeric columns:
  // ttft_ms, queue_ms, prefill_ms, transfer_ms, first_step_ms, ...), which committed folders
  // keep in requests/ or runs/ when they leave the JSON out. Empty when neither is there.
  std::vector<std::map<std::string, double>> requests;

  // `name` from the cell's JSON when it holds a number there, else from summary.csv; nullopt
  // when neither has it (older folders) or it is NaN.
  std::optional<double> Metric(const std::string& name) const;
  // The per-request server timelines (empty without the cell's JSON).
  const nlohmann::json& Timelines() const;
};

// `pdserve bench`'s same-run microbenchmark of one request's KV
// (bench/request_transfer_baseline.h).
struct TransferBaseline {
  std::string backend;
  int input_len = 0;
  uint64_t bytes = 0;
  double p50_ms = 0;  // the cold median: the figure the bench holds serving transfers to
};

struct ResultsFolder {
  std::string dir;
  std::string device;   // "" or "cpu": CPU run; "cuda": GPU run
  std::string cluster;  // the bench's description of the cluster ("... on one host, ...")
  std::string layout;   // "layer-major" / "block-major"; "" when not recorded
  int block_size = 0;   // tokens per KV block; 0 when not recorded
  std::vector<std::string> backends;              // in run order
  std::map<std::string, std::string> transports;  // backend -> its transports line
  std::vector<TransferBaseline> baselines;
  std::string baseline_note;  // why there are none (e.g. not measured on the GPU)
  std::vector<Cell> cells;
  // Transport registration counters, where the results carry any ("registrations" anywhere in
  // report-inputs.json or a cell's JSON): the sum per backend. Absent: not recorded.
  std::map<std::string, double> registrations;

  bool OneHost() const;
};

// Reads `dir`. Fails (NotFound / InvalidArgument, naming what is missing) when `dir` is not a
// results folder: no report-inputs.json, or one that is not the bench's.
absl::StatusOr<ResultsFolder> LoadResultsFolder(const std::string& dir);

// One CSV line split into fields (RFC 4180 quoting: "a,b" and "" inside quotes).
std::vector<std::string> SplitCsvLine(const std::string& line);

}  // namespace pdserve::doctor
