#pragma once

// The slow-KV-transfer checklist applied to a results folder: per backend, and per workload
// (prompt length) where the figure depends on it, one finding per item with a figure, a verdict
// and, for every warn / fail, the flag or environment variable that addresses it. Verdicts are
// information for the operator, not errors.

#include <optional>
#include <string>
#include <vector>

#include "doctor/results_folder.h"

namespace pdserve::doctor {

enum class Verdict {
  kOk,
  kWarn,
  kFail,
  kNotApplicable,  // nothing to judge: no KV moved (colocated), or the run did not record it
};
const char* VerdictName(Verdict v);  // "ok", "warn", "fail", "n/a"

// The checklist items, in the order the output lists them.
inline constexpr const char* kSmallOps = "small-ops";         // ops per request, bytes per op
inline constexpr const char* kBatching = "batching";          // ops per batch
inline constexpr const char* kRegistration = "registration";  // registrations per transfer
inline constexpr const char* kTransports = "transports";      // tcp fallback on one host
inline constexpr const char* kStaging = "staging";            // GPU KV through host memory
inline constexpr const char* kOverlap = "overlap";            // transfer hidden under compute
inline constexpr const char* kVsBaseline = "vs-baseline";     // serving vs same-run microbench
inline constexpr const char* kTtftP99 = "ttft-p99";           // where the TTFT tail goes
inline constexpr const char* kPlacement = "placement";        // where prefill and decode sit

struct Finding {
  std::string item;      // one of the k* names above
  std::string workload;  // "all" for backend-wide items, else "in<N>" (prompt tokens)
  std::string figure;    // what the run shows, with units
  Verdict verdict = Verdict::kNotApplicable;
  std::string fix;  // set for warn / fail: the flag or env var to try
};

struct BackendDiagnosis {
  std::string backend;
  std::string transports;  // the bench's transports line for it ("" when not recorded)
  std::vector<Finding> findings;
};

struct Diagnosis {
  std::string dir;
  int cells = 0;
  bool timelines = false;  // at least one cell's JSON with per-request timelines was found
  bool live = false;       // a running cluster's counters (--endpoint), not a results folder
  std::vector<BackendDiagnosis> backends;
};

// Thresholds, with why (figures from docs/results and the domain notes):
// A put / copy costs a few microseconds of set-up whatever its size; posix shm moves 20-35 GB/s,
// so below 256 KiB an op spends a noticeable share of its time in set-up, below 64 KiB most.
inline constexpr double kWarnBytesPerOp = 256.0 * 1024;
inline constexpr double kFailBytesPerOp = 64.0 * 1024;
// Overlap matters only where the exposed transfer is a visible part of TTFT.
inline constexpr double kMinHiddenShare = 0.5;
inline constexpr double kExposedShareOfTtft = 0.10;
// The bench's own target (bench/serving_report.h, issue 13): serving within 1.5x of the
// same-run microbenchmark of the same request size; 3x is far enough off to call it failing.
inline constexpr double kWarnVsBaseline = 1.5;
inline constexpr double kFailVsBaseline = 3.0;

Diagnosis Diagnose(const ResultsFolder& folder);

// The small-ops verdict of `bytes_per_op` (kWarnBytesPerOp / kFailBytesPerOp) and its fix for
// the pool's layout and block size (0: the default 16), shared by the folder and live checks.
Finding SmallOpsFinding(std::string workload, double ops_per_request, double bytes_per_op,
                        const std::string& layout, int block_size);

// "1.5 MiB", "64.0 KiB", "512 B".
std::string Bytes(double b);

// A finding; the fix is kept only for warn / fail.
Finding Make(const char* item, std::string workload, std::string figure, Verdict v,
             std::string fix = "");
// Mean over the cells that have `name` (cells weigh alike: each is one load of the workload).
std::optional<double> MeanOf(const std::vector<const Cell*>& cells, const std::string& name);

// The items over one backend's cells, backend-wide (checks_transfer.cc).
Finding CheckTransports(const ResultsFolder& f, const std::string& backend);
Finding CheckStaging(const ResultsFolder& f, const std::string& backend,
                     const std::vector<const Cell*>& cells);
Finding CheckRegistrations(const ResultsFolder& f, const std::string& backend,
                           const std::vector<const Cell*>& cells);
// The items over the cells of one backend and one prompt length.
Finding CheckSmallOps(const ResultsFolder& f, const std::vector<const Cell*>& cells);
Finding CheckBatching(const std::vector<const Cell*>& cells);
Finding CheckVsBaseline(const ResultsFolder& f, const std::vector<const Cell*>& cells);
Finding CheckOverlap(const ResultsFolder& f, const std::vector<const Cell*>& cells);
Finding CheckTtftTail(const std::vector<const Cell*>& cells);

}  // namespace pdserve::doctor
