// The table, JSON rows and summary of `pdserve bench transfer` (transfer_rows.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/transfer_pair.h"
#include "bench/transfer_rows.h"

namespace pdserve::bench::transfer_rows {

double OverheadUs(const Row& r) {
  if (r.baseline_gbps <= 0 || r.m.gbps <= 0) return 0;
  return (r.m.bytes_per_batch / r.m.gbps - r.m.bytes_per_batch / r.baseline_gbps) / 1e3;
}

std::string TransportsOf(const std::string& transports) {
  return transports.substr(0, std::min<size_t>(transports.find(" ("), 24));
}

void PrintPreamble(bool full) {
  std::printf("pdserve bench transfer  (two processes; %s sweep; GB/s = 1e9 bytes/s; "
              "latency = submit to completion with 4 batches in flight)\n",
              full ? "full" : "default");
  std::printf(
      "destination blocks: runs of 8 in shuffled order; every batch of a row re-sends the same "
      "blocks, so its working set is bytes/batch on each side\n"
      "baselines, measured in this run with the same bytes and working set as the row:\n"
      "  local: memcpy of exactly the batch's coalesced operations between two regions of the "
      "pools' size, on the threads the copy engine uses for it (x1 = inline on the submitting "
      "thread, as the backend does up to 256 KiB; more threads copy back to back, no barrier per "
      "round); all bytes / all time, like the rows; the row's measurement and memcpy's "
      "alternate %d times and each side reports its median round\n"
      "  ucx:   ucx_perftest -t ucp_put_bw -s <bytes/batch> at the same UCX_TLS (one message the "
      "size of the batch: same bytes and working set, one operation instead of ops); [hot S: x] "
      "is ucx_perftest with one cache-hot message of the batch's mean operation size S, for "
      "reference (one run; over shared memory with --full only)\n"
      "         over shared memory the row's measurement and ucx_perftest alternate %d times "
      "(ours, perftest, ours, ...) and each side reports its median round: perftest's server "
      "spins for its whole run, so any third busy thread on a 2-core host shares a core with "
      "its client and halves it (measured: 13.0 -> 8.7 GB/s at 512 MiB with one busy loop, "
      "6.6 with both pinned to one core); tcp: one perftest run per size, "
      "cut after 2 s (a crawling run; the row then takes the other run, or has no baseline)\n"
      "         CPUs: %s\n"
      "  ucx (no /TLS): UCX_TLS unset, UCX chooses (a receiver on this host: shared memory, "
      "watched by pid); its baseline is ucx/posix between two processes of its own, measured "
      "in rounds that alternate with the row's (%d each, medians); a row whose receiver UCX "
      "reaches over tcp is marked [TCP ON ONE HOST]\n"
      "  ovh us = per-batch time beyond the baseline's time for the same bytes (batch hand-off, "
      "notification, completion): latency-bound rows are those where it dominates\n"
      "UCX: batches up to 4 MiB are issued by the submitting thread when the worker is free "
      "(a put on posix is the copy; the batch is usually complete when Submit returns), larger "
      "ones by a progress thread that polls the worker, yields the CPU on a turn without "
      "progress, and after 200 us without work sleeps on the worker's event fd; batches above "
      "16 MiB (or 3/4 of the last-level cache if less) are copied with streaming stores into "
      "the peer's pool mapped through ucp_rkey_ptr (glibc's memcpy streams only single copies "
      "above 3/4 of the reported cache, which perftest's one message can be and our blocks "
      "never are); over tcp the data goes as active messages the receiver copies (UCX would "
      "emulate puts)\n"
      "ucx_perftest: %s\n\n",
      kInterleavedRounds, kInterleavedRounds,
      SideCpus().first < 0
          ? "not pinned (one CPU, or no taskset)"
          : absl::StrCat("the row's sender (with its transport threads) and ucx_perftest's client "
                         "on CPU ",
                         SideCpus().first, ", the receiver and perftest's server on CPU ",
                         SideCpus().second,
                         " (the scheduler does not always spread two new "
                         "busy processes: unpinned perftest runs measured 12-13 GB/s at 2 MiB "
                         "against 17-19 pinned)")
                .c_str(),
      kInterleavedRounds,
      access("/usr/bin/ucx_perftest", X_OK) == 0
          ? "/usr/bin/ucx_perftest, run as a subprocess pair per message size and UCX_TLS"
          : "not installed: ucx rows have no baseline (install ucx-utils)");
  std::printf("%-10s %12s %-12s %5s %13s %6s %9s %9s %9s   %-18s %9s %6s %9s  %s\n", "backend",
              "block", "layout", "batch", "bytes/batch", "ops", "GB/s", "p50 ms", "p99 ms",
              "baseline", "base GB/s", "ratio", "ovh us", "transports (ucx: lanes UCX chose)");
}

void PrintRow(const Row& r) {
  const double ratio = r.baseline_gbps > 0 ? r.m.gbps / r.baseline_gbps : 0;
  std::printf(
      "%-10s %8.0f KiB %-12s %5u %9.1f MiB %6u %9.2f %9.3f %9.3f   %-18s %9.2f %6s %9.1f  "
      "%s%s%s\n",
      r.backend.c_str(), r.block_bytes / 1024.0, r.layout.c_str(), r.batch,
      r.m.bytes_per_batch / 1048576.0, r.m.ops_per_batch, r.m.gbps, r.m.p50_ms, r.m.p99_ms,
      r.baseline.c_str(), r.baseline_gbps,
      ratio > 0 ? absl::StrFormat("%.2fx", ratio).c_str() : "n/a", OverheadUs(r),
      r.transports.c_str(), r.same_host_network ? " [TCP ON ONE HOST]" : "",
      r.hot_gbps > 0
          ? absl::StrFormat("  [hot %lluK: %.2f]",
                            static_cast<unsigned long long>(r.hot_size / 1024), r.hot_gbps)
                .c_str()
          : "");
  std::fflush(stdout);
}

nlohmann::json RowJson(const Row& r) {
  return {{"backend", r.backend},
          {"preset", r.preset},
          {"block_size_tokens", r.block_size},
          {"block_bytes", r.block_bytes},
          {"layout", r.layout},
          {"batch_blocks", r.batch},
          {"bytes_per_batch", r.m.bytes_per_batch},
          {"ops_per_batch", r.m.ops_per_batch},
          {"gbps", r.m.gbps},
          {"p50_ms", r.m.p50_ms},
          {"p99_ms", r.m.p99_ms},
          {"batches", r.m.batches},
          {"baseline", r.baseline},
          {"baseline_gbps", r.baseline_gbps},
          {"ratio", r.baseline_gbps > 0 ? r.m.gbps / r.baseline_gbps : 0.0},
          {"overhead_us_per_batch", OverheadUs(r)},
          {"perftest_hot_size", r.hot_size},
          {"perftest_hot_gbps", r.hot_gbps},
          {"rounds_gbps", r.rounds_gbps},
          {"rounds_baseline_gbps", r.rounds_baseline_gbps},
          {"transports", r.transports},
          {"same_host_network", r.same_host_network},
          {"note", r.note}};
}

namespace {

// The median and minimum ratio of the rows of `backend` with blocks of `min_block` and
// more, and how many are below `target` (and latency-bound): printed, and as JSON.
nlohmann::json MinRatio(const std::vector<Row>& rows, const std::string& backend,
                        uint64_t min_block, const char* kind, double target) {
  std::vector<double> ratios;
  int below = 0, latency_bound = 0;
  for (const Row& r : rows) {
    if (r.backend != backend || r.block_bytes < min_block || r.baseline_gbps <= 0) {
      continue;
    }
    const double ratio = r.m.gbps / r.baseline_gbps;
    ratios.push_back(ratio);
    if (ratio < target) {
      ++below;
      // Latency-bound: the per-batch overhead exceeds the baseline's time for the bytes.
      if (OverheadUs(r) * 1e3 > r.m.bytes_per_batch / r.baseline_gbps) ++latency_bound;
    }
  }
  std::sort(ratios.begin(), ratios.end());
  const double median = ratios.empty() ? 0 : ratios[ratios.size() / 2];
  const double lo = ratios.empty() ? 0 : ratios.front();
  std::printf("%-46s median %.2fx, min %.2fx over %zu rows; %d below %.1fx (%d of them "
              "latency-bound: overhead > copy time)\n",
              kind, median, lo, ratios.size(), below, target, latency_bound);
  return nlohmann::json{{"median", median},          {"min", lo},
                        {"rows", ratios.size()},     {"target", target},
                        {"rows_below_target", below}, {"below_latency_bound", latency_bound}};
}

}  // namespace

nlohmann::json Summarize(const std::vector<Row>& rows, const nlohmann::json& request) {
  // Ratios against the targets.
  std::printf(
      "\nsummary (targets: local >= 0.8x memcpy; ucx >= 0.9x ucx_perftest for blocks >= "
      "64 KiB; plain ucx (UCX_TLS unset) >= 0.9x ucx/posix; layer-major >= 0.8x "
      "block-major for the 256 MiB request)\n");
  nlohmann::json summary;
  summary["local_vs_memcpy"] = MinRatio(rows, "local", 0, "local / memcpy:", 0.8);
  summary["ucx_posix_vs_perftest_64k"] = MinRatio(
      rows, "ucx/posix", 64 * 1024, "ucx/posix / ucx_perftest (blocks >= 64 KiB):", 0.9);
  summary["ucx_plain_vs_ucx_posix"] =
      MinRatio(rows, "ucx", 0, "ucx (UCX_TLS unset) / ucx/posix (all rows):", 0.9);
  int flagged = 0;
  for (const Row& r : rows) flagged += r.same_host_network;
  summary["rows_tcp_on_one_host"] = flagged;
  if (flagged > 0) {
    std::printf(
        "%-46s %d rows (marked [TCP ON ONE HOST]: UCX chose tcp between two processes "
        "of this host)\n",
        "tcp between processes of one host:", flagged);
  }
  summary["ucx_tcp_vs_perftest_64k"] = MinRatio(
      rows, "ucx/tcp", 64 * 1024, "ucx/tcp / ucx_perftest (blocks >= 64 KiB):", 0.9);
  for (auto& [label, r] : request.items()) {
    std::printf("%-44s layer-major %.2f GB/s / block-major %.2f GB/s = %.2fx\n",
                absl::StrCat("request 256 MiB, ", label, ":").c_str(),
                r["layer_major_gbps"].get<double>(), r["block_major_gbps"].get<double>(),
                r["ratio"].get<double>());
  }
  summary["request_layer_vs_block"] = request;
  return summary;
}

}  // namespace pdserve::bench::transfer_rows
