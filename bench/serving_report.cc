#include "bench/serving_report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace pdserve::bench {
namespace {

// The report's columns: JSON field, header, printf format. report.md prints exactly these
// values with these formats, so its numbers can be checked against the JSON.
struct Column {
  const char* field;
  const char* header;
  const char* format;
};
constexpr Column kColumns[] = {
    {"mean_ttft_ms", "TTFT mean (ms)", "%.2f"},
    {"p99_ttft_ms", "TTFT p99 (ms)", "%.2f"},
    {"mean_tpot_ms", "TPOT mean (ms)", "%.2f"},
    {"p99_tpot_ms", "TPOT p99 (ms)", "%.2f"},
    {"p99_itl_ms", "ITL p99 (ms)", "%.2f"},
    {"p99_e2el_ms", "E2E p99 (ms)", "%.2f"},
    {"request_throughput", "req/s", "%.3f"},
    {"output_throughput", "out tok/s", "%.1f"},
    {"mean_kv_transfer_ms", "KV xfer mean (ms)", "%.3f"},
    {"p99_kv_transfer_ms", "KV xfer p99 (ms)", "%.3f"},
    {"kv_transfer_gbps", "KV GB/s", "%.2f"},
    {"kv_transfer_share_of_ttft", "xfer share of TTFT", "%.3f"},
};

std::string Format(const char* format, double v) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string RateName(double rate) {
  return std::isinf(rate) ? std::string("inf") : absl::StrFormat("%g", rate);
}

std::string Workload(const ServingRun& r) {
  return absl::StrCat("in", r.input_len, "/out", r.output_len);
}

bool HaveGnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// A gnuplot data file per (backend, workload): rate and the plotted values.
void WritePlotData(const std::string& dir, const std::vector<ServingRun>& runs,
                          std::vector<std::pair<std::string, std::string>>* series) {
  std::map<std::string, std::vector<const ServingRun*>> by_series;
  std::set<std::string> workloads;
  for (const ServingRun& r : runs) workloads.insert(Workload(r));
  for (const ServingRun& r : runs) {
    if (!r.error.empty() || std::isinf(r.request_rate)) continue;
    std::string name = workloads.size() > 1 ? absl::StrCat(r.backend, " ", Workload(r)) : r.backend;
    by_series[name].push_back(&r);
  }
  int i = 0;
  for (auto& [name, list] : by_series) {
    const std::string file = absl::StrCat("plot_series_", i++, ".dat");
    std::ofstream out(dir + "/" + file);
    out << "# rate p99_ttft_ms p99_tpot_ms\n";
    for (const ServingRun* r : list) {
      out << r->request_rate << " " << ResultNumber(r->result, "p99_ttft_ms") << " "
          << ResultNumber(r->result, "p99_tpot_ms") << "\n";
    }
    series->push_back({name, file});
  }
}

absl::Status RunGnuplot(const std::string& dir, const std::string& script_name,
                        const std::string& script) {
  std::ofstream(dir + "/" + script_name) << script;
  const std::string cmd = absl::StrCat("cd '", dir, "' && gnuplot ", script_name, " 2>gnuplot.log");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("gnuplot failed, see ", dir, "/gnuplot.log"));
  }
  return absl::OkStatus();
}

absl::Status WritePlots(const std::string& dir, const std::vector<ServingRun>& runs) {
  std::vector<std::pair<std::string, std::string>> series;
  WritePlotData(dir, runs, &series);
  for (const auto& [column, title, png] :
       {std::tuple<int, std::string, std::string>{2, "TTFT p99 (ms)", "ttft_p99_vs_rate.png"},
        {3, "TPOT p99 (ms)", "tpot_p99_vs_rate.png"}}) {
    std::string plot;
    for (const auto& [name, file] : series) {
      absl::StrAppend(&plot, plot.empty() ? "" : ", ", "'", file, "' using 1:", column,
                      " with linespoints lw 2 title '", name, "'");
    }
    if (plot.empty()) continue;
    absl::Status s = RunGnuplot(
        dir, png + ".gp",
        absl::StrCat("set terminal pngcairo size 900,560\nset output '", png,
                     "'\nset title '", title, " vs request rate'\nset xlabel 'request rate "
                     "(req/s)'\nset ylabel '", title, "'\nset logscale x 2\nset grid\nset key "
                     "top left\nplot ", plot, "\n"));
    if (!s.ok()) return s;
  }
  // Where TTFT goes: mean queue, prefill, KV transfer and the rest, per backend and rate.
  std::ofstream bars(dir + "/ttft_breakdown.dat");
  bars << "# run queue prefill transfer other\n";
  int rows = 0;
  for (const ServingRun& r : runs) {
    if (!r.error.empty()) continue;
    const double ttft = ResultNumber(r.result, "mean_ttft_ms");
    const double queue = ResultNumber(r.result, "mean_queue_ms");
    const double prefill = ResultNumber(r.result, "mean_prefill_ms");
    const double transfer = ResultNumber(r.result, "mean_kv_transfer_ms");
    if (std::isnan(ttft) || std::isnan(queue) || std::isnan(prefill) || std::isnan(transfer)) {
      continue;
    }
    const double other = std::max(0.0, ttft - queue - prefill - transfer);
    bars << '"' << r.backend << " " << RateName(r.request_rate) << "/s"
         << '"' << " " << queue << " " << prefill << " " << transfer << " " << other << "\n";
    ++rows;
  }
  bars.close();
  if (rows == 0) return absl::OkStatus();
  return RunGnuplot(dir, "ttft_breakdown.gp",
                    "set terminal pngcairo size 1000,560\nset output 'ttft_breakdown.png'\n"
                    "set title 'Where TTFT goes (mean per request)'\nset ylabel 'ms'\n"
                    "set style data histograms\nset style histogram rowstacked\n"
                    "set style fill solid 0.8 border -1\nset boxwidth 0.7\nset xtics rotate by "
                    "-30\nset key outside right\nset grid y\n"
                    "plot 'ttft_breakdown.dat' using 2:xtic(1) title 'queue', '' using 3 title "
                    "'prefill', '' using 4 title 'KV transfer', '' using 5 title 'decode + "
                    "network'\n");
}

}  // namespace

double ResultNumber(const nlohmann::json& result, const std::string& field) {
  auto it = result.find(field);
  if (it == result.end() || !it->is_number()) return std::nan("");
  return it->get<double>();
}

absl::Status WriteServingReport(const std::string& dir, const ServingReportContext& context,
                                const std::vector<ServingRun>& runs, std::string* headline) {
  // summary.csv: one row per run, every column of the report plus the run's settings.
  {
    std::ofstream csv(dir + "/summary.csv");
    csv << "backend,input_len,output_len,request_rate,completed,failed";
    for (const Column& c : kColumns) csv << "," << c.field;
    csv << ",result_file,error\n";
    for (const ServingRun& r : runs) {
      csv << r.backend << "," << r.input_len << "," << r.output_len << ","
          << RateName(r.request_rate) << "," << ResultNumber(r.result, "completed") << ","
          << ResultNumber(r.result, "failed");
      for (const Column& c : kColumns) csv << "," << ResultNumber(r.result, c.field);
      csv << "," << r.result_file << ",\"" << r.error << "\"\n";
    }
    if (!csv) return absl::InternalError(absl::StrCat("cannot write ", dir, "/summary.csv"));
  }

  std::string plots_note;
  if (HaveGnuplot()) {
    if (absl::Status s = WritePlots(dir, runs); !s.ok()) {
      plots_note = absl::StrCat("Plots could not be drawn: ", s.message(), "\n");
    }
  } else {
    plots_note = "gnuplot is not installed: no plots were drawn (apt-get install gnuplot-nox).\n";
  }

  // The headline: each non-local backend against local at the middle rate.
  std::map<std::pair<std::string, double>, const ServingRun*> index;
  std::set<double> rates;
  std::set<std::string> backends;
  for (const ServingRun& r : runs) {
    if (!r.error.empty()) continue;
    index[{r.backend, r.request_rate}] = &r;
    rates.insert(r.request_rate);
    backends.insert(r.backend);
  }
  std::vector<std::string> lines;
  if (!rates.empty()) {
    auto mid = rates.begin();
    std::advance(mid, (rates.size() - 1) / 2);
    const auto local = index.find({context.baseline, *mid});
    for (const std::string& b : backends) {
      if (b == context.baseline || local == index.end()) continue;
      const auto other = index.find({b, *mid});
      if (other == index.end()) continue;
      const double delta = ResultNumber(other->second->result, "p99_ttft_ms") -
                           ResultNumber(local->second->result, "p99_ttft_ms");
      const double tdelta = ResultNumber(other->second->result, "mean_kv_transfer_ms") -
                            ResultNumber(local->second->result, "mean_kv_transfer_ms");
      lines.push_back(absl::StrFormat(
          "%s %s %.2f ms to TTFT p99 at %s req/s vs %s (mean KV transfer %+.3f ms)", b,
          delta >= 0 ? "adds" : "saves", std::fabs(delta), RateName(*mid), context.baseline,
          tdelta));
    }
  }
  *headline = lines.empty() ? absl::StrCat("no comparison: a ", context.baseline,
                                         " run and another backend's run are needed")
                            : absl::StrJoin(lines, "; ");

  std::ofstream md(dir + "/report.md");
  md << "# pdserve serving benchmark: KV transfer backends across request rates\n\n";
  md << "- date: " << context.date << "\n- preset: " << context.preset
     << "\n- compute: " << context.compute << "\n- cluster: " << context.cluster;
  if (!context.device.empty()) md << "\n- device: " << context.device;
  md << "\n- command: `" << context.command << "`\n";
  if (!context.backends.empty()) md << "- backends: " << context.backends << "\n";
  if (!context.choices.empty()) md << "- sweep: " << context.choices << "\n";
  md << "\n**Headline:** " << *headline << "\n\n";
  md << "Metric definitions follow `vllm bench serve`: TTFT = time to the first token-carrying "
        "chunk; TPOT = (E2E - TTFT) / (output tokens - 1); ITL = every gap between token "
        "chunks, pooled; percentiles linearly interpolated. KV transfer times are server-side "
        "(prefill worker), GB/s = KV bytes / transfer time.\n\n";
  md << "| backend | workload | rate (req/s) | completed | failed |";
  for (const Column& c : kColumns) md << " " << c.header << " |";
  md << "\n|---|---|---|---|---|";
  for (size_t i = 0; i < std::size(kColumns); ++i) md << "---|";
  md << "\n";
  for (const ServingRun& r : runs) {
    md << "| " << r.backend << " | " << Workload(r) << " | " << RateName(r.request_rate) << " | ";
    if (!r.error.empty()) {
      md << "FAILED | - |";
      for (size_t i = 0; i < std::size(kColumns); ++i) md << (i == 0 ? " " + r.error : " -") << " |";
      md << "\n";
      continue;
    }
    md << Format("%.0f", ResultNumber(r.result, "completed")) << " | "
       << Format("%.0f", ResultNumber(r.result, "failed")) << " |";
    for (const Column& c : kColumns) md << " " << Format(c.format, ResultNumber(r.result, c.field)) << " |";
    md << "\n";
  }
  md << "\nPer-run JSON (vllm field names plus pdserve's `kv_*` extras) and per-request CSV: ";
  std::vector<std::string> files;
  for (const ServingRun& r : runs) {
    if (!r.result_file.empty()) files.push_back(absl::StrCat("`", r.result_file, "`"));
  }
  md << absl::StrJoin(files, ", ") << ". Summary: `summary.csv`.\n\n";
  if (plots_note.empty()) {
    md << "## Plots\n\n![TTFT p99 vs rate](ttft_p99_vs_rate.png)\n\n"
          "![TPOT p99 vs rate](tpot_p99_vs_rate.png)\n\n"
          "![Where TTFT goes](ttft_breakdown.png)\n";
  } else {
    md << "## Plots\n\n" << plots_note;
  }
  if (!md) return absl::InternalError(absl::StrCat("cannot write ", dir, "/report.md"));
  return absl::OkStatus();
}

absl::Status WriteServingReportInputs(const std::string& dir, const ServingReportContext& context,
                                      const std::vector<ServingRun>& runs) {
  nlohmann::json j = {{"date", context.date},         {"preset", context.preset},
                      {"compute", context.compute},   {"cluster", context.cluster},
                      {"choices", context.choices},   {"command", context.command},
                      {"backends", context.backends}, {"device", context.device},
                      {"baseline", context.baseline}, {"runs", nlohmann::json::array()}};
  for (const ServingRun& r : runs) {
    j["runs"].push_back({{"backend", r.backend},
                         {"input_len", r.input_len},
                         {"output_len", r.output_len},
                         {"request_rate", RateName(r.request_rate)},
                         {"result_file", r.result_file},
                         {"error", r.error}});
  }
  std::ofstream out(dir + "/report-inputs.json");
  out << j.dump(2) << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/report-inputs.json"));
  return absl::OkStatus();
}

absl::Status RewriteServingReport(const std::string& dir, std::string* headline) {
  const std::string path = dir + "/report-inputs.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no ", path, " (written by pdserve bench)"));
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("runs")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a report-inputs file"));
  }
  ServingReportContext context;
  context.date = j.value("date", "");
  context.preset = j.value("preset", "");
  context.compute = j.value("compute", "");
  context.cluster = j.value("cluster", "");
  context.choices = j.value("choices", "");
  context.command = j.value("command", "");
  context.backends = j.value("backends", "");
  context.device = j.value("device", "");
  context.baseline = j.value("baseline", "local");
  std::vector<ServingRun> runs;
  for (const nlohmann::json& r : j["runs"]) {
    ServingRun run;
    run.backend = r.value("backend", "");
    run.input_len = r.value("input_len", 0);
    run.output_len = r.value("output_len", 0);
    const std::string rate = r.value("request_rate", "inf");
    run.request_rate = rate == "inf" ? INFINITY : std::strtod(rate.c_str(), nullptr);
    run.result_file = r.value("result_file", "");
    run.error = r.value("error", "");
    if (!run.result_file.empty()) {
      std::ifstream result_in(absl::StrCat(dir, "/", run.result_file));
      run.result = nlohmann::json::parse(result_in, nullptr, /*allow_exceptions=*/false);
      if (run.result.is_discarded()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot read ", dir, "/", run.result_file, " as JSON"));
      }
    }
    runs.push_back(std::move(run));
  }
  return WriteServingReport(dir, context, runs, headline);
}

}  // namespace pdserve::bench
