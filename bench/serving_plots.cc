#include "bench/serving_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/capacity.h"
#include "bench/serving_backends.h"
#include "common/ttft_stages.h"

namespace pdserve::bench {
namespace {

// Workloads and backends in the order the runs came (the sweep's order).
struct Axes {
  std::vector<std::string> workloads, backends;
  std::vector<int> input_lens;
};

template <typename T>
void AddOnce(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

Axes AxesOf(const std::vector<CellAnalysis>& cells) {
  Axes a;
  for (const CellAnalysis& c : cells) {
    AddOnce(a.workloads, WorkloadName(*c.run));
    AddOnce(a.backends, c.run->backend);
    AddOnce(a.input_lens, c.run->input_len);
  }
  std::sort(a.input_lens.begin(), a.input_lens.end());
  return a;
}

// gnuplot reads "nan" as a missing point.
std::string Num(double v) { return std::isnan(v) ? "nan" : absl::StrFormat("%.6g", v); }

std::string Quoted(const std::string& s) { return absl::StrCat("'", s, "'"); }

absl::Status RunGnuplot(const std::string& dir, const std::string& script_name,
                        const std::string& script) {
  std::ofstream(dir + "/" + script_name) << script;
  const std::string cmd =
      absl::StrCat("cd '", dir, "' && gnuplot ", script_name, " 2>>gnuplot.log");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("gnuplot failed on ", script_name, ", see ", dir, "/gnuplot.log"));
  }
  return absl::OkStatus();
}

// A multiplot of one panel per workload: rows x columns, at most 3 columns.
std::string MultiplotHeader(const std::string& png, size_t panels, const std::string& title) {
  const size_t cols = std::min<size_t>(3, std::max<size_t>(1, panels));
  const size_t rows = (panels + cols - 1) / cols;
  return absl::StrFormat(
      "set terminal pngcairo size %d,%d font ',10'\nset output '%s'\n"
      "set multiplot layout %d,%d title '%s' font ',12'\n",
      static_cast<int>(520 * cols), static_cast<int>(380 * rows + 50), png, static_cast<int>(rows),
      static_cast<int>(cols), title);
}

// TTFT or TPOT p50 (solid) and p99 (dashed) against the rate.
absl::Status PlotVsRate(const std::string& dir, const std::vector<CellAnalysis>& cells,
                        const Axes& axes, const std::string& metric, const std::string& label,
                        const std::string& png) {
  std::string script = MultiplotHeader(
      png, axes.workloads.size(),
      absl::StrCat(
          label,
          " vs request rate: p50 solid (bars: 95% bootstrap interval where per-request values "
          "exist), p99 dashed; circled: host-bound or unverified cell"));
  absl::StrAppend(&script,
                  "set logscale x 2\nset logscale y\nset grid\nset key top left font ',8'\n"
                  "set xlabel 'request rate (req/s)'\nset ylabel '",
                  label, " (ms)'\n");
  bool any = false;
  for (size_t w = 0; w < axes.workloads.size(); ++w) {
    std::string plot;
    for (size_t b = 0; b < axes.backends.size(); ++b) {
      const std::string file = absl::StrCat(metric, "_w", w, "_b", b, ".dat");
      std::ofstream out(dir + "/" + file);
      out << "# rate p50 p99 not_usable (host-bound or unverified) p50_lo p50_hi (95% CI; TTFT "
             "only)\n";
      for (const CellAnalysis& c : cells) {
        const ServingRun& r = *c.run;
        if (WorkloadName(r) != axes.workloads[w] || r.backend != axes.backends[b] ||
            !r.error.empty() || std::isinf(r.request_rate)) {
          continue;
        }
        out << r.request_rate << " " << Num(ResultNumber(r.result, "median_" + metric + "_ms"))
            << " " << Num(ResultNumber(r.result, "p99_" + metric + "_ms")) << " "
            << (c.usable() ? 0 : 1);
        // The bootstrap interval of the cell's p50 (bench/bootstrap.h), where the per-request
        // values are in the result (TTFT).
        const bool bars = metric == "ttft" && c.ttft_p50_ci.Valid();
        out << " " << Num(bars ? c.ttft_p50_ci.lo : NAN) << " "
            << Num(bars ? c.ttft_p50_ci.hi : NAN) << "\n";
        any = true;
      }
      const int color = static_cast<int>(b) + 1;
      absl::StrAppend(&plot, plot.empty() ? "" : ", ", Quoted(file),
                      " using 1:2 with linespoints lw 2 pt 7 lc ", color, " dt 1 title '",
                      axes.backends[b], " p50', ", Quoted(file),
                      " using 1:2:5:6 with yerrorbars lc ", color, " pt 7 ps 0.5 notitle, ",
                      Quoted(file),
                      " using 1:3 with linespoints lw 2 pt 7 lc ", color, " dt 2 title '",
                      axes.backends[b], " p99', ", Quoted(file),
                      " using 1:($4 > 0 ? $3 : 1/0) with points pt 6 ps 2.5 lc rgb 'black' "
                      "notitle, ",
                      Quoted(file),
                      " using 1:($4 > 0 ? $2 : 1/0) with points pt 6 ps 2.5 lc rgb 'black' "
                      "notitle");
    }
    absl::StrAppend(&script, "set title '", axes.workloads[w], "'\nplot ", plot, "\n");
  }
  absl::StrAppend(&script, "unset multiplot\n");
  if (!any) return absl::OkStatus();
  return RunGnuplot(dir, png + ".gp", script);
}

// Served throughput against TTFT p50 per backend, a panel per workload, in rate order: where a
// backend stops keeping up, the points bunch at its capacity while TTFT climbs. Overloaded
// points (served < 0.9x offered) are circled.
absl::Status PlotThroughputLatency(const std::string& dir, const std::vector<CellAnalysis>& cells,
                                   const Axes& axes) {
  std::string script = MultiplotHeader(
      "throughput_vs_latency.png", axes.workloads.size(),
      "Served rate (completions over the arrival window) vs TTFT p50; circled: served < 0.9x "
      "offered");
  absl::StrAppend(&script,
                  "set logscale y\nset grid\nset key top left font ',8'\n"
                  "set xlabel 'served (req/s)'\nset ylabel 'TTFT p50 (ms)'\n");
  bool any = false;
  for (size_t w = 0; w < axes.workloads.size(); ++w) {
    std::string plot;
    for (size_t b = 0; b < axes.backends.size(); ++b) {
      const std::string file = absl::StrCat("throughput_w", w, "_b", b, ".dat");
      std::ofstream out(dir + "/" + file);
      out << "# offered served ttft_p50 overloaded\n";
      for (const CellAnalysis& c : cells) {
        const ServingRun& r = *c.run;
        if (WorkloadName(r) != axes.workloads[w] || r.backend != axes.backends[b] ||
            !r.error.empty() || std::isinf(r.request_rate)) {
          continue;
        }
        const double served = ServedRate(r.result);
        out << r.request_rate << " " << Num(served) << " "
            << Num(ResultNumber(r.result, "median_ttft_ms")) << " "
            << (served < 0.9 * r.request_rate ? 1 : 0) << "\n";
        any = true;
      }
      const int color = static_cast<int>(b) + 1;
      absl::StrAppend(&plot, plot.empty() ? "" : ", ", Quoted(file),
                      " using 2:3 with linespoints lw 2 pt 7 lc ", color, " title '",
                      axes.backends[b], "', ", Quoted(file),
                      " using 2:($4 > 0 ? $3 : 1/0) with points pt 6 ps 2.5 lc rgb 'black' "
                      "notitle");
    }
    absl::StrAppend(&script, "set title '", axes.workloads[w], "'\nplot ", plot, "\n");
  }
  absl::StrAppend(&script, "unset multiplot\n");
  if (!any) return absl::OkStatus();
  return RunGnuplot(dir, "throughput_vs_latency.gp", script);
}

// Mean KV transfer time per prompt length at each backend's lowest rate, and the microbenchmark.
absl::Status PlotTransferVsPrompt(const std::string& dir, const std::vector<CellAnalysis>& cells,
                                  const Axes& axes,
                                  const std::vector<RequestTransferBaseline>& baselines) {
  std::string plot;
  for (size_t b = 0; b < axes.backends.size(); ++b) {
    // Colocated moves no KV (and has 0 ms on a log scale): nothing to draw.
    if (IsColocated(axes.backends[b])) continue;
    double lowest = INFINITY;
    for (const CellAnalysis& c : cells) {
      if (c.run->backend == axes.backends[b] && c.run->error.empty()) {
        lowest = std::min(lowest, c.run->request_rate);
      }
    }
    const std::string file = absl::StrCat("kv_transfer_b", b, ".dat");
    std::ofstream out(dir + "/" + file);
    out << "# input_len serving_mean_ms microbench_mean_ms\n";
    for (int len : axes.input_lens) {
      double sum = 0;
      int n = 0;
      for (const CellAnalysis& c : cells) {
        const ServingRun& r = *c.run;
        const double v = ResultNumber(r.result, "mean_kv_transfer_ms");
        if (r.backend != axes.backends[b] || r.input_len != len || !r.error.empty() ||
            r.request_rate != lowest || std::isnan(v)) {
          continue;
        }
        sum += v;
        ++n;
      }
      double micro = NAN;
      for (const RequestTransferBaseline& m : baselines) {
        if (m.backend == axes.backends[b] && m.input_len == len) micro = m.Reference();
      }
      out << len << " " << Num(n > 0 ? sum / n : NAN) << " " << Num(micro) << "\n";
    }
    const int color = static_cast<int>(b) + 1;
    absl::StrAppend(&plot, plot.empty() ? "" : ", ", Quoted(file),
                    " using 1:2 with linespoints lw 2 pt 7 lc ", color, " title '",
                    axes.backends[b], " serving (", RateName(lowest), " req/s)', ", Quoted(file),
                    " using 1:3 with linespoints lw 1 pt 4 dt 2 lc ", color, " title '",
                    axes.backends[b], " microbenchmark'");
  }
  if (plot.empty()) return absl::OkStatus();
  return RunGnuplot(
      dir, "kv_transfer_vs_prompt.gp",
      absl::StrCat("set terminal pngcairo size 900,560 font ',10'\n"
                   "set output 'kv_transfer_vs_prompt.png'\n"
                   "set title 'Mean KV transfer time per request vs prompt length (serving: mean "
                   "over the workloads of that prompt length)'\n"
                   "set xlabel 'prompt length (tokens)'\nset ylabel 'ms'\n"
                   "set logscale x 2\nset logscale y\nset grid\nset key top left\nplot ",
                   plot, "\n"));
}

// What the TTFT breakdown stacks: the TTFT stages (common/ttft_stages.h, the same split as the
// router's pdserve:ttft_stage_seconds) and what is left of the client's TTFT ("other": the
// client <-> router legs). Results written before the stages existed (`bench report` on an old
// folder) get the parts they have, with the rest computed from the mean TTFT.
struct BreakdownParts {
  std::vector<std::string> fields, titles;
  bool staged = false;
};

BreakdownParts PartsOf(const std::vector<CellAnalysis>& cells) {
  BreakdownParts p;
  p.staged = std::any_of(cells.begin(), cells.end(), [](const CellAnalysis& c) {
    return !std::isnan(ResultNumber(c.run->result, "mean_ttft_stage_queue_ms"));
  });
  if (p.staged) {
    for (absl::string_view stage : TtftStageNames()) {
      p.fields.push_back(absl::StrCat("mean_ttft_stage_", stage, "_ms"));
      p.titles.push_back(std::string(stage));
    }
    p.fields.push_back("mean_ttft_stage_other_ms");
  } else {
    p.fields = {"mean_queue_ms", "mean_prefill_ms", "mean_kv_transfer_ms", "mean_first_step_ms"};
    p.titles = {"queue", "prefill", "KV transfer", "first step"};
  }
  p.titles.push_back(p.staged ? "other" : "rest");
  return p;
}

// Stacked mean TTFT parts per (backend, rate), a panel per workload.
absl::Status PlotBreakdown(const std::string& dir, const std::vector<CellAnalysis>& cells,
                           const Axes& axes) {
  const BreakdownParts parts = PartsOf(cells);
  std::string script = MultiplotHeader(
      "ttft_breakdown.png", axes.workloads.size(),
      parts.staged
          ? "Where mean TTFT goes: the TTFT stages of the router (README, Metrics), then other: "
            "client <-> router"
          : "Where mean TTFT goes (first step: decode join -> first token, when reported; "
            "rest: everything else)");
  // noenhanced: the stage names' underscores are not subscripts.
  absl::StrAppend(&script,
                  "set termoption noenhanced\n"
                  "set style data histograms\nset style histogram rowstacked\n"
                  "set style fill solid 0.8 border -1\nset boxwidth 0.7\n"
                  "set xtics rotate by -40 font ',8'\nset key outside right top font ',8'\n"
                  "set grid y\nset ylabel 'ms'\n");
  // Nine parts: gnuplot's default colours repeat after eight.
  static const char* const kColours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f"};
  bool any = false;
  for (size_t w = 0; w < axes.workloads.size(); ++w) {
    const std::string file = absl::StrCat("ttft_breakdown_w", w, ".dat");
    std::ofstream out(dir + "/" + file);
    out << "# cell";
    for (const std::string& t : parts.titles) out << " " << t;
    out << "\n";
    int rows = 0;
    for (const CellAnalysis& c : cells) {
      const ServingRun& r = *c.run;
      if (WorkloadName(r) != axes.workloads[w] || !r.error.empty()) continue;
      std::vector<double> v;
      for (const std::string& f : parts.fields) v.push_back(ResultNumber(r.result, f));
      if (parts.staged) {
        if (std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); })) continue;
        // Two clocks make "other" slightly negative at times; a stack cannot draw that.
        v.back() = std::max(0.0, v.back());
      } else {
        const double ttft = ResultNumber(r.result, "mean_ttft_ms");
        if (std::isnan(ttft) || std::isnan(v[0]) || std::isnan(v[1]) || std::isnan(v[2])) continue;
        if (std::isnan(v[3])) v[3] = 0;
        v.push_back(std::max(0.0, ttft - v[0] - v[1] - v[2] - v[3]));
      }
      out << '"' << r.backend << " " << RateName(r.request_rate) << "/s" << (c.usable() ? "" : "*")
          << '"';
      for (double x : v) out << " " << x;
      out << "\n";
      ++rows;
    }
    if (rows == 0) continue;
    any = true;
    absl::StrAppend(&script, "set title '", axes.workloads[w],
                    " (* host-bound or unverified)'\nplot '", file, "'");
    for (size_t i = 0; i < parts.titles.size(); ++i) {
      absl::StrAppend(&script, i == 0 ? "" : ", ''", " using ", i + 2, i == 0 ? ":xtic(1)" : "",
                      " title '", parts.titles[i], "' lc rgb '", kColours[i], "'");
    }
    absl::StrAppend(&script, "\n");
  }
  absl::StrAppend(&script, "unset multiplot\n");
  if (!any) return absl::OkStatus();
  return RunGnuplot(dir, "ttft_breakdown.gp", script);
}

}  // namespace

bool HaveGnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

absl::Status WriteServingPlots(const std::string& dir, const std::vector<CellAnalysis>& cells,
                               const std::vector<RequestTransferBaseline>& baselines,
                               std::vector<std::pair<std::string, std::string>>* drawn) {
  const Axes axes = AxesOf(cells);
  std::filesystem::remove(dir + "/gnuplot.log");
  const std::pair<std::string, std::string> plots[] = {
      {"ttft_vs_rate.png", "TTFT p50 / p99 vs request rate"},
      {"tpot_vs_rate.png", "TPOT p50 / p99 vs request rate"},
      {"kv_transfer_vs_prompt.png", "KV transfer time vs prompt length"},
      {"ttft_breakdown.png", "Where TTFT goes"},
      {"throughput_vs_latency.png", "Served rate vs TTFT p50 (overloaded points circled)"}};
  for (const auto& [png, caption] : plots) std::filesystem::remove(dir + "/" + png);
  if (absl::Status s = PlotVsRate(dir, cells, axes, "ttft", "TTFT", "ttft_vs_rate.png"); !s.ok()) {
    return s;
  }
  if (absl::Status s = PlotVsRate(dir, cells, axes, "tpot", "TPOT", "tpot_vs_rate.png"); !s.ok()) {
    return s;
  }
  if (absl::Status s = PlotTransferVsPrompt(dir, cells, axes, baselines); !s.ok()) return s;
  if (absl::Status s = PlotBreakdown(dir, cells, axes); !s.ok()) return s;
  if (absl::Status s = PlotThroughputLatency(dir, cells, axes); !s.ok()) return s;
  for (const auto& plot : plots) {
    if (std::filesystem::exists(dir + "/" + plot.first)) drawn->push_back(plot);
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
