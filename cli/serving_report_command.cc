#include <cstdio>
#include <memory>
#include <string>

#include "bench/serving_report.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

// `pdserve bench report --dir D`: draws report.md, summary.csv and the plots of a finished
// `pdserve bench` results folder again, e.g. on a machine with gnuplot after a GPU run without.
void AddServingReportCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "report", "Write the report (report.md, summary.csv, plots) of a pdserve bench results folder again");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("--dir", *dir, "the results folder (holds report-inputs.json)")->required();
  cmd->callback([dir] {
    std::string headline;
    const absl::Status status = bench::RewriteServingReport(*dir, &headline);
    if (status.ok()) std::printf("report: %s/report.md\n%s\n", dir->c_str(), headline.c_str());
    ExitWith(status);
  });
}

const bool registered = RegisterCommand("bench report", AddServingReportCommand);

}  // namespace
}  // namespace pdserve::cli
