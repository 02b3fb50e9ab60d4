#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "doctor/checks.h"
#include "doctor/doctor_output.h"
#include "doctor/results_folder.h"

namespace pdserve::cli {
namespace {

// `pdserve doctor RESULTS_DIR [--json]`: the slow-KV-transfer checklist over a `pdserve bench`
// results folder. Exit 0 whenever the folder was read: warn / fail verdicts are findings for the
// operator, not a failure of the command.
void AddDoctorCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "doctor",
      "Check a pdserve bench results folder against the slow KV transfer checklist: a figure, a "
      "verdict (ok / warn / fail) and a fix per item, per backend and prompt length");
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("results_dir", *dir, "the results folder (holds report-inputs.json)")->required();
  cmd->add_flag("--json", *json, "print the findings as JSON instead of a table");
  cmd->callback([dir, json] {
    const absl::StatusOr<doctor::ResultsFolder> folder = doctor::LoadResultsFolder(*dir);
    if (!folder.ok()) ExitWith(folder.status());
    const doctor::Diagnosis d = doctor::Diagnose(*folder);
    const std::string text = *json ? doctor::ToJson(d).dump(2) + "\n" : doctor::RenderText(d);
    std::fputs(text.c_str(), stdout);
    ExitWith(absl::OkStatus());
  });
}

const bool registered = RegisterCommand("doctor", AddDoctorCommand);

}  // namespace
}  // namespace pdserve::cli
