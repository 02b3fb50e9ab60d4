// The checklist items about how the KV moves: transports, staging, registrations, op sizes,
// batching, and the serving transfer against the same-run microbenchmark.
#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "doctor/checks.h"

namespace pdserve::doctor {
namespace {

std::string Workload(const std::vector<const Cell*>& cells) {
  return cells.empty() ? "all" : absl::StrCat("in", cells.front()->input_len);
}

// The part of a transports line after "transports used: " (the whole line when it has none).
std::string TransportsUsed(const std::string& line) {
  const std::string key = "transports used: ";
  const size_t at = line.find(key);
  std::string used = at == std::string::npos ? line : line.substr(at + key.size());
  // The colocated line wraps it in parentheses: "no KV transfer (transports used: none (...))".
  if (std::count(used.begin(), used.end(), ')') > std::count(used.begin(), used.end(), '(')) {
    used.pop_back();
  }
  return used;
}

bool MovesNoKv(const std::vector<const Cell*>& cells) {
  const std::optional<double> bytes = MeanOf(cells, "mean_kv_bytes");
  return !bytes || *bytes <= 0;
}

}  // namespace

std::string Bytes(double b) {
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.1f MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return absl::StrFormat("%.1f KiB", b / 1024.0);
  return absl::StrFormat("%.0f B", b);
}


Finding CheckTransports(const ResultsFolder& f, const std::string& backend) {
  const auto it = f.transports.find(backend);
  if (it == f.transports.end())
    return Make(kTransports, "all", "not recorded", Verdict::kNotApplicable);
  const std::string used = TransportsUsed(it->second);
  if (absl::StartsWith(used, "none") || absl::StartsWith(used, "unknown")) {
    return Make(kTransports, "all", used, Verdict::kNotApplicable);
  }
  // "tcp/lo", "posix,tcp", "cma/memory+tcp/lo": tcp named as a transport, not inside a word;
  // or the ucx backend's own mark for a peer on the same host reached over tcp.
  const bool tcp = absl::StartsWith(used, "tcp") || absl::StrContains(used, ",tcp") ||
                   absl::StrContains(used, " tcp") || absl::StrContains(used, "+tcp") ||
                   absl::StrContains(used, "(same host over ");
  if (tcp && f.OneHost()) {
    return Make(kTransports, "all", absl::StrCat(used, " between processes on one host"),
                Verdict::kWarn,
                f.device == "cuda" ? "CUDA-aware UCX with UCX_TLS=cuda_ipc,cuda_copy,posix,cma, or "
                                     "--backends local (cuda-ipc)"
                                   : "UCX_TLS=posix,cma (bench: --backends ucx-posix)");
  }
  return Make(kTransports, "all", used, Verdict::kOk);
}

Finding CheckStaging(const ResultsFolder& f, const std::string& backend,
                     const std::vector<const Cell*>& cells) {
  const auto it = f.transports.find(backend);
  const bool staged = absl::StartsWith(backend, "ucx-staged") ||
                      (it != f.transports.end() && absl::StrContains(it->second, "staged"));
  if (MovesNoKv(cells)) return Make(kStaging, "all", "no KV moved", Verdict::kNotApplicable);
  if (!staged) return Make(kStaging, "all", "0 bytes through host memory", Verdict::kOk);
  // Staging copies the KV device -> host on the sender and host -> device on the receiver.
  const double bytes = MeanOf(cells, "mean_kv_bytes").value_or(0);
  return Make(kStaging, "all",
              absl::StrCat(Bytes(bytes), " per request staged through host memory (x2 copies)"),
              Verdict::kWarn,
              "CUDA-aware UCX (scripts/fetch-ucx-cuda.sh, libucx-cu13) so ucx moves device "
              "memory; or --backends local (cuda-ipc) on one host");
}

Finding CheckRegistrations(const ResultsFolder& f, const std::string& backend,
                           const std::vector<const Cell*>& cells) {
  const auto it = f.registrations.find(backend);
  if (it == f.registrations.end()) {
    return Make(kRegistration, "all", "not recorded (the results carry no transport counters)",
                Verdict::kNotApplicable);
  }
  double requests = 0;
  for (const Cell* c : cells) requests += c->Metric("completed").value_or(0);
  if (requests <= 0)
    return Make(kRegistration, "all", "no completed requests", Verdict::kNotApplicable);
  const double per = it->second / requests;
  // Pools are registered once per worker at start: more than one registration per couple of
  // transfers means memory is registered per transfer.
  const std::string figure = absl::StrFormat("%.2f registrations per transfer", per);
  if (per > 0.5) {
    return Make(kRegistration, "all", figure, Verdict::kWarn,
                "register the KV pools once at start; UCX: keep its registration cache "
                "(UCX_RCACHE_ENABLE=y)");
  }
  return Make(kRegistration, "all", figure, Verdict::kOk);
}

Finding CheckSmallOps(const ResultsFolder& f, const std::vector<const Cell*>& cells) {
  const std::string w = Workload(cells);
  if (MovesNoKv(cells)) return Make(kSmallOps, w, "no KV moved", Verdict::kNotApplicable);
  const std::optional<double> ops = MeanOf(cells, "mean_transfer_ops");
  const double bytes = MeanOf(cells, "mean_kv_bytes").value_or(0);
  if (!ops) return Make(kSmallOps, w, "ops not recorded", Verdict::kNotApplicable);
  if (*ops <= 0) {
    return Make(kSmallOps, w, absl::StrCat(Bytes(bytes), " per request, 0 copy ops (zero-copy)"),
                Verdict::kOk);
  }
  return SmallOpsFinding(w, *ops, bytes / *ops, f.layout, f.block_size);
}

Finding SmallOpsFinding(std::string workload, double ops_per_request, double bytes_per_op,
                        const std::string& layout, int block_size) {
  const std::string figure =
      absl::StrFormat("%.0f ops/request, %s/op", ops_per_request, Bytes(bytes_per_op));
  const Verdict v = bytes_per_op < kFailBytesPerOp   ? Verdict::kFail
                    : bytes_per_op < kWarnBytesPerOp ? Verdict::kWarn
                                                     : Verdict::kOk;
  std::string fix = layout == "block-major" ? "" : "--layout block-major (one run per block); ";
  absl::StrAppend(&fix, "larger blocks: --block-size ", (block_size > 0 ? block_size : 16) * 4);
  return Make(kSmallOps, std::move(workload), figure, v, fix);
}

Finding CheckBatching(const std::vector<const Cell*>& cells) {
  const std::string w = Workload(cells);
  if (MovesNoKv(cells)) return Make(kBatching, w, "no KV moved", Verdict::kNotApplicable);
  double ops = 0, batches = 0;
  int requests = 0;
  for (const Cell* c : cells) {
    for (const nlohmann::json& t : c->Timelines()) {
      if (!t.is_object() || !t.contains("transfer_batches")) continue;
      ops += t.value("transfer_ops", 0.0);
      batches += t.value("transfer_batches", 0.0);
      ++requests;
    }
  }
  if (requests == 0 || batches <= 0) {
    return Make(kBatching, w, "not recorded (no per-request transfer_batches in this folder)",
                Verdict::kNotApplicable);
  }
  const double per_batch = ops / batches, batches_per_request = batches / requests;
  if (ops <= 0) {
    return Make(
        kBatching, w,
        absl::StrFormat("0 copy ops (zero-copy), %.1f batches/request", batches_per_request),
        Verdict::kOk);
  }
  const std::string figure =
      absl::StrFormat("%.1f ops/batch, %.1f batches/request", per_batch, batches_per_request);
  // One batch per request is batched by definition; many batches of about one op each is
  // every op paying a batch's post-and-wait on its own.
  if (batches_per_request > 1.5 && per_batch < 2) {
    return Make(kBatching, w, figure, Verdict::kWarn,
                "post a request's ops in one batch: larger --stream-chunk-tokens (or 0: whole KV "
                "after the prefill)");
  }
  return Make(kBatching, w, figure, Verdict::kOk);
}

Finding CheckVsBaseline(const ResultsFolder& f, const std::vector<const Cell*>& cells) {
  const std::string w = Workload(cells);
  if (MovesNoKv(cells)) return Make(kVsBaseline, w, "no KV moved", Verdict::kNotApplicable);
  const Cell& first = *cells.front();
  const TransferBaseline* base = nullptr;
  for (const TransferBaseline& b : f.baselines) {
    if (b.backend == first.backend && b.input_len == first.input_len && b.p50_ms > 0) base = &b;
  }
  if (base == nullptr) {
    return Make(
        kVsBaseline, w,
        absl::StrCat("no same-run baseline",
                     f.baseline_note.empty() ? "" : absl::StrCat(" (", f.baseline_note, ")")),
        Verdict::kNotApplicable);
  }
  // As the bench does: serving mean against the cold median, cells the host set the pace of
  // left out (their transfer shares two cores with everything else).
  double worst = 0, sum_ms = 0;
  int n = 0, over = 0, host_bound = 0;
  std::string worst_cell;
  for (const Cell* c : cells) {
    const std::optional<double> ms = c->Metric("mean_kv_transfer_ms");
    if (!ms || *ms <= 0) continue;
    if (c->host_bound) {
      ++host_bound;
      continue;
    }
    const double ratio = *ms / base->p50_ms;
    sum_ms += *ms;
    ++n;
    if (ratio > kWarnVsBaseline) ++over;
    if (ratio > worst) {
      worst = ratio;
      worst_cell = absl::StrCat("out", c->output_len, " @", c->rate, "/s");
    }
  }
  const std::string skipped =
      host_bound > 0 ? absl::StrCat(", ", host_bound, " host-bound cell(s) left out") : "";
  if (n == 0)
    return Make(kVsBaseline, w, absl::StrCat("no usable cell", skipped), Verdict::kNotApplicable);
  const double gbps = base->bytes / (sum_ms / n) / 1e6,
               base_gbps = base->bytes / base->p50_ms / 1e6;
  const std::string figure = absl::StrFormat(
      "%.1f GB/s serving vs %.1f GB/s baseline; worst %.2fx (%s), %d of %d cells > %.1fx%s", gbps,
      base_gbps, worst, worst_cell, over, n, kWarnVsBaseline, skipped);
  const Verdict v = worst > kFailVsBaseline   ? Verdict::kFail
                    : worst > kWarnVsBaseline ? Verdict::kWarn
                                              : Verdict::kOk;
  return Make(
      kVsBaseline, w, figure, v,
      "the transfer is slower under load than alone: check transports and small-ops "
      "above; fewer transfers at once (lower rate) or --stream-chunk-tokens to spread them");
}

}  // namespace pdserve::doctor
