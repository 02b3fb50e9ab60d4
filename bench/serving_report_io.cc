// report-inputs.json: everything WriteServingReport needs besides the per-run JSON files, so
// that `pdserve bench report --dir D` draws the same report again (say, plots on a machine with
// gnuplot after a GPU run on one without).
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "bench/serving_analysis.h"
#include "bench/serving_report.h"

namespace pdserve::bench {
namespace {

nlohmann::json BaselineToJson(const RequestTransferBaseline& b) {
  return {{"backend", b.backend}, {"input_len", b.input_len},
          {"blocks", b.blocks},   {"bytes", b.bytes},
          {"ops", b.ops},         {"transfers", b.transfers},
          {"mean_ms", b.mean_ms}, {"p50_ms", b.p50_ms},
          {"min_ms", b.min_ms},   {"warm_mean_ms", b.warm_mean_ms},
          {"cold_ms", b.cold_ms}, {"cold_wait_share", b.cold_wait_share},
          {"rounds", b.rounds}};
}

RequestTransferBaseline BaselineFromJson(const nlohmann::json& j) {
  return {.backend = j.value("backend", ""),
          .input_len = j.value("input_len", 0),
          .blocks = j.value("blocks", 0u),
          .bytes = j.value("bytes", uint64_t{0}),
          .ops = j.value("ops", 0u),
          .transfers = j.value("transfers", 0),
          .mean_ms = j.value("mean_ms", 0.0),
          .p50_ms = j.value("p50_ms", 0.0),
          .min_ms = j.value("min_ms", 0.0),
          .warm_mean_ms = j.value("warm_mean_ms", 0.0),
          .cold_ms = j.value("cold_ms", std::vector<double>{}),
          .cold_wait_share = j.value("cold_wait_share", std::vector<double>{}),
          .rounds = j.value("rounds", 1)};
}

}  // namespace

absl::Status WriteServingReportInputs(const std::string& dir, const ServingReportContext& context,
                                      const std::vector<ServingRun>& runs,
                                      const nlohmann::json& colocated_ratios) {
  nlohmann::json j = {{"date", context.date},
                      {"preset", context.preset},
                      {"compute", context.compute},
                      {"cluster", context.cluster},
                      {"choices", context.choices},
                      {"command", context.command},
                      {"backends", context.backends},
                      {"device", context.device},
                      {"baseline", context.baseline},
                      {"timing", context.timing},
                      {"slo", context.slo},
                      {"decode_pool_gib", context.decode_pool_gib},
                      {"transfer_baseline_note", context.transfer_baseline_note},
                      {"transfer_baselines", nlohmann::json::array()},
                      {"sweep", context.sweep},
                      {"runs", nlohmann::json::array()}};
  for (const RequestTransferBaseline& b : context.transfer_baselines) {
    j["transfer_baselines"].push_back(BaselineToJson(b));
  }
  if (!colocated_ratios.is_null()) j["colocated_ratios"] = colocated_ratios;
  for (const ServingRun& r : runs) {
    j["runs"].push_back({{"backend", r.backend},
                         {"input_len", r.input_len},
                         {"output_len", r.output_len},
                         {"request_rate", RateName(r.request_rate)},
                         {"result_file", r.result_file},
                         {"error", r.error},
                         {"planned_prompts", r.planned_prompts},
                         {"prompts", r.prompts},
                         {"seed", r.seed},
                         {"usage", CellUsageToJson(r.usage)}});
  }
  // Written aside and renamed: a sweep killed mid-write (the file is rewritten after every
  // cell) leaves the previous complete file for --resume.
  const std::string path = dir + "/report-inputs.json", tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status ReadServingReportInputs(const std::string& dir, ServingReportContext* out_context,
                                     std::vector<ServingRun>* out_runs) {
  const std::string path = dir + "/report-inputs.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no ", path, " (written by pdserve bench)"));
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("runs") || !j["runs"].is_array()) {
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
  context.timing = j.value("timing", "");
  context.slo = j.value("slo", std::vector<std::string>{});
  context.decode_pool_gib = j.value("decode_pool_gib", 0.0);
  context.transfer_baseline_note = j.value("transfer_baseline_note", "");
  for (const nlohmann::json& b : j.value("transfer_baselines", nlohmann::json::array())) {
    context.transfer_baselines.push_back(BaselineFromJson(b));
  }
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
    run.usage = CellUsageFromJson(r.value("usage", nlohmann::json()));
    run.planned_prompts = r.value("planned_prompts", 0);
    run.prompts = r.value("prompts", 0);
    run.seed = r.value("seed", uint64_t{0});
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
  context.sweep = j.value("sweep", nlohmann::json());
  *out_context = std::move(context);
  *out_runs = std::move(runs);
  return absl::OkStatus();
}

absl::Status RewriteServingReport(const std::string& dir, std::string* headline) {
  ServingReportContext context;
  std::vector<ServingRun> runs;
  if (absl::Status s = ReadServingReportInputs(dir, &context, &runs); !s.ok()) return s;
  return WriteServingReport(dir, context, runs, headline);
}

}  // namespace pdserve::bench
