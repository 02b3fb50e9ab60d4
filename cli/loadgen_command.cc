// `pdserve loadgen`: an open-loop load generator against a Router.Generate endpoint (gRPC) or an
// OpenAI-compatible HTTP API, with the flags and result fields of `vllm bench serve`.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/loadgen_flags.h"
#include "common/status_macros.h"
#include "loadgen/echo_target.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#include "loadgen/result_table.h"
#include "loadgen/run_verdict.h"
#include "loadgen/saved_result.h"

namespace pdserve::cli {
namespace {

// Runs the load, prints the table and writes the files; the exit code says whether every
// request completed (loadgen/run_verdict.h). An error status: the run did not happen.
absl::StatusOr<int> RunLoadgenCommand(LoadgenFlags f) {
  RETURN_IF_ERROR(ResolveLoadgenFlags(f));
  if (f.options.save_token_ids && !f.save_result && f.output_json.empty()) {
    return absl::InvalidArgumentError(
        "--save-token-ids writes the ids into the result JSON: add --save-result or --output-json");
  }
  std::unique_ptr<loadgen::EchoTarget> builtin;
  if (f.options.target == "builtin") {
    loadgen::EchoTargetOptions echo;
    echo.preset = f.options.preset.empty() ? "tiny" : f.options.preset;
    echo.tokens_per_chunk = f.builtin_tokens_per_chunk;
    echo.fail_every = f.builtin_fail_every;
    echo.reference_tokens = !f.builtin_wrong_tokens;
    ASSIGN_OR_RETURN(builtin, loadgen::EchoTarget::Start(echo));
    f.options.target = builtin->address();
    std::fprintf(stderr, "built-in echo target listening on %s\n", f.options.target.c_str());
  }
  ASSIGN_OR_RETURN(loadgen::BenchmarkResult result, loadgen::RunLoad(f.options));
  std::fputs(loadgen::FormatResultTable(result).c_str(), stdout);
  std::fflush(stdout);  // the table before any error about writing the files

  std::string json_path = f.output_json;
  if (json_path.empty() && f.save_result) {
    const std::string name =
        f.result_filename.empty() ? loadgen::DefaultResultFilename(result) : f.result_filename;
    json_path = (std::filesystem::path(f.result_dir) / name).string();
  }
  std::string csv_path = f.output_csv;
  if (csv_path.empty() && !json_path.empty()) {
    csv_path = std::filesystem::path(json_path).replace_extension(".csv").string();
  }
  for (const std::string& path : {json_path, csv_path}) {
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!path.empty() && !parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  if (!json_path.empty()) RETURN_IF_ERROR(loadgen::WriteResultJson(result, json_path));
  if (!csv_path.empty()) RETURN_IF_ERROR(loadgen::WriteRequestsCsv(result, csv_path));
  if (!json_path.empty() || !csv_path.empty()) {
    std::printf("Results: %s%s%s\n", json_path.c_str(),
                json_path.empty() || csv_path.empty() ? "" : " and ", csv_path.c_str());
  } else {
    std::printf("Results: console only (--save-result or --output-json to keep them)\n");
  }
  std::fflush(stdout);
  const loadgen::RunVerdict verdict = loadgen::JudgeRun(result, f.allow_failures);
  if (!verdict.message.empty()) {
    std::fprintf(stderr, "%s: %s\n", verdict.exit_code == 0 ? "note" : "error",
                 verdict.message.c_str());
  }
  return verdict.exit_code;
}

absl::Status RunVerifySaved(const std::string& path) {
  ASSIGN_OR_RETURN(loadgen::SavedResultCheck check, loadgen::VerifySavedResultFile(path));
  const std::string model = ModelSummary(check.model);
  const std::string counts = absl::StrCat(check.requests, " in the file, ", check.failed_in_run,
                                          " failed in the run and not checked");
  if (!check.mismatched.empty()) {
    const size_t shown = std::min<size_t>(check.mismatched.size(), 5);
    return absl::DataLossError(absl::StrCat(
        "verify: ", check.mismatched.size(), " of ", check.checked,
        " checked requests differ from model::ReferenceGenerate for model ", model, ": ",
        absl::StrJoin(check.mismatched.begin(), check.mismatched.begin() + shown, ", "),
        check.mismatched.size() > shown ? ", ..." : "", " (", counts, ")"));
  }
  std::printf("verify: OK, %d checked requests equal model::ReferenceGenerate for model %s (%s)\n",
              check.checked, model.c_str(), counts.c_str());
  return absl::OkStatus();
}

// `pdserve loadgen verify --result FILE`: re-checks a result saved with --save-token-ids,
// without the cluster.
void AddVerifySubcommand(CLI::App* loadgen) {
  CLI::App* cmd = loadgen->add_subcommand(
      "verify", "Re-verify a result saved with --save-token-ids against model::ReferenceGenerate");
  auto path = std::make_shared<std::string>();
  cmd->add_option("--result", *path, "the saved result JSON")->required();
  cmd->callback([path] { ExitWith(RunVerifySaved(*path)); });
}

void AddLoadgenCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "loadgen",
      "Open-loop load against Router.Generate (gRPC) or an OpenAI-compatible HTTP API; vllm "
      "bench serve flags, metrics and fields");
  auto f = std::make_shared<LoadgenFlags>();
  AddLoadgenFlags(cmd, *f);
  cmd->callback([f] {
    absl::StatusOr<int> code = RunLoadgenCommand(*f);
    if (!code.ok()) {
      std::fprintf(stderr, "error: %s\n", code.status().ToString().c_str());
      throw CLI::RuntimeError(loadgen::kExitNoRun);
    }
    throw CLI::RuntimeError(*code);
  });
  AddVerifySubcommand(cmd);
}

const bool registered = RegisterCommand("loadgen", AddLoadgenCommand);

}  // namespace
}  // namespace pdserve::cli
