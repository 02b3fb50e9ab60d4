#pragma once

// The parts of `pdserve bench transfer` (transfer_bench.cc, the sweep) that its other files
// hold: the measurement of one row and its baselines (transfer_measure.cc), and the table,
// JSON and summary it prints (transfer_report.cc). Internal to the bench.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "transfer/kv_transport.h"

namespace pdserve::bench::transfer_rows {

struct Measurement {
  double gbps = 0;
  double p50_ms = 0, p99_ms = 0;
  uint64_t bytes_per_batch = 0;
  uint32_t ops_per_batch = 0;
  int batches = 0;
};

struct Row {
  std::string backend;
  std::string preset;
  int block_size;
  uint64_t block_bytes;
  std::string layout;
  uint32_t batch;
  Measurement m;
  std::string baseline;
  double baseline_gbps;
  std::string note;
  // ucx: ucx_perftest with one hot message of the batch's mean operation size (for reference;
  // the ratio is taken against the same-working-set run in baseline_gbps).
  double hot_gbps = -1;
  uint64_t hot_size = 0;
  // Interleaved rounds (ucx over shared memory): ours and perftest's, in run order.
  std::vector<double> rounds_gbps;
  std::vector<double> rounds_baseline_gbps;
  // What the sender's transport reports it moves the row's bytes with (TransportsOf), and
  // whether the receiver, a process on this host, is reached over tcp (ucx: flagged).
  std::string transports;
  bool same_host_network = false;
};

// local rows and ucx rows over shared memory: our measurement and the baseline's (memcpy,
// ucx_perftest) alternate this many times and each side reports its median round, so that
// both see the same host (other load, cache and page state) and one unlucky run of either
// side does not make the ratio.
constexpr int kInterleavedRounds = 3;

// --- transfer_measure.cc

// Batches of `copies` to `peer`, up to `depth` in flight, for at least `min_seconds` and
// `min_batches` (after one warm-up batch).
absl::StatusOr<Measurement> MeasureBatches(transfer::KvTransport& t, transfer::PeerId peer,
                                           const std::vector<transfer::BlockCopy>& copies,
                                           double min_seconds, int min_batches);

// ucx_perftest ucp_put_bw between two of its own processes on 127.0.0.1 (one busy thread each,
// buffers from ucp_mem_map(ALLOCATE) like our pools); every iteration puts the same `size`
// bytes from the same buffer to the same buffer, so the working set is `size` on each side.
// GB/s ("overall" column), or a negative value when it is not installed or failed.
double RunUcxPerftest(const std::string& tls, uint64_t size);

// One perftest run per (UCX_TLS, size), for the reference columns.
double UcxPerftestGBps(const std::string& tls, uint64_t size);

// The median of `v`; -1 when empty.
double Median(std::vector<double> v);

// Development filter (PDSERVE_BENCH_TRANSFER_ONLY="ucx/posix@256@1,local"): entries
// LABEL[@BLOCK_KIB[@BATCH]]; a row runs when one entry matches it. Unset: every row.
bool Selected(const std::string& label, uint64_t block_bytes, uint32_t batch);

// The threads the local backend copies a batch of `bytes` on (the memcpy baseline's).
int CopyThreadsFor(uint64_t bytes);
// Whether the local backend copies a batch of `bytes` with streaming stores (its memcpy
// baseline then does too: like for like).
bool StreamsBatch(uint64_t bytes);

// --- transfer_report.cc

// Per-batch time beyond the baseline's time for the same bytes (microseconds): what the
// backend adds per batch (hand-off, notification, completion). Large next to the batch's
// copy time means the row is latency-bound, not bandwidth-bound.
double OverheadUs(const Row& r);

// The title, the legend and the column header of the table.
void PrintPreamble(bool full);

// The short form of KvTransport::counters().transports for a row: the text before any " ("
// ("posix/memory+cma/memory"), at most 24 characters.
std::string TransportsOf(const std::string& transports);

// One line of the table.
void PrintRow(const Row& r);

// One element of the JSON's "rows".
nlohmann::json RowJson(const Row& r);

// The summary against the targets (printed), with the request's layer-major / block-major
// ratios per backend (`request`, printed too) under "request_layer_vs_block".
nlohmann::json Summarize(const std::vector<Row>& rows, const nlohmann::json& request);

}  // namespace pdserve::bench::transfer_rows
