#pragma once

// One cell of `pdserve bench` (bench/serving_bench.h): the load it sends and the run it
// records, on a running cluster.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/serving_bench.h"
#include "bench/serving_plan.h"
#include "bench/serving_report.h"
#include "cluster/cluster.h"
#include "loadgen/load_options.h"

namespace pdserve::bench {

// The load of one cell (or the warm-up) against `cl`, labelled with the backend and workload.
loadgen::LoadOptions CellLoad(const ServingBenchOptions& o, const cluster::Cluster& cl,
                              const std::string& backend, const CellPlan& cell);

// One cell on a running cluster: the measured requests between two usage samples, written to
// `dir`/<backend>_in<I>_out<O>_rate<R>.json/.csv. A failed load is a run with an error, not an
// error: the report shows it.
absl::StatusOr<ServingRun> RunCell(const ServingBenchOptions& o, cluster::Cluster& cl,
                                   const std::string& backend, const CellPlan& cell, uint64_t seed,
                                   const std::string& dir);

// Starts `user_backend`'s cluster (options in `c`, for the report's transports line) and warms
// it with a few requests of the cells' longest prompt, all at once: connections, first touches
// of the pools and the first batches happen here, not in the first cell. A failed warm-up is
// printed; a cluster that did not start is the error.
absl::StatusOr<std::unique_ptr<cluster::Cluster>> StartServingCluster(
    const ServingBenchOptions& o, const std::string& user_backend, uint32_t decode_blocks,
    const std::vector<CellPlan>& cells, const std::string& dir, cluster::ClusterOptions& c);

}  // namespace pdserve::bench
