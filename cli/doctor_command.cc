#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "cli/commands.h"
#include "common/status_macros.h"
#include "doctor/checks.h"
#include "doctor/doctor_output.h"
#include "doctor/live_checks.h"
#include "doctor/results_folder.h"
#include "pdserve.grpc.pb.h"
#include "service/grpc_util.h"

namespace pdserve::cli {
namespace {

// The router's view of its prefill workers' transports (live GetStatus answers only: a
// heartbeat carries no counters). Strings come from other processes: escaped for the terminal.
absl::StatusOr<doctor::Diagnosis> DiagnoseEndpoint(const std::string& endpoint) {
  auto stub =
      v1::Router::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  service::SetDeadline(ctx, absl::Seconds(10));
  v1::ClusterStatus s;
  RETURN_IF_ERROR(service::FromGrpc(stub->GetStatus(&ctx, v1::StatusRequest(), &s)));
  std::vector<doctor::LiveWorker> workers;
  std::vector<doctor::LivePlace> decode;
  for (const v1::WorkerStatus& w : s.workers()) {
    if (w.role() == v1::WORKER_ROLE_DECODE) {
      decode.push_back({.id = absl::CEscape(w.worker_id()),
                        .host = absl::CEscape(w.host_id()),
                        .gpu = absl::CEscape(w.gpu()),
                        .numa_node = w.has_numa_node() ? w.numa_node() : -1});
    }
  }
  for (const v1::WorkerStatus& w : s.workers()) {
    if (w.role() != v1::WORKER_ROLE_PREFILL || !w.live()) continue;
    const v1::TransferCounters& t = w.transfer();
    workers.push_back({.id = absl::CEscape(w.worker_id()),
                       .host = absl::CEscape(w.host_id()),
                       .backend = absl::CEscape(w.transfer_backend()),
                       .transports = absl::CEscape(w.transports()),
                       .requests = w.requests_served(),
                       .registrations = w.registrations(),
                       .batches = t.batches_completed(),
                       .failed_batches = t.batches_failed(),
                       .bytes = t.bytes_sent(),
                       .operations = t.operations_issued(),
                       .same_host_network_peers = t.same_host_network_peers(),
                       .block_size = static_cast<int>(s.model().block_size()),
                       .gpu = absl::CEscape(w.gpu()),
                       .numa_node = w.has_numa_node() ? w.numa_node() : -1});
  }
  if (workers.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the router at ", endpoint, " lists no live prefill worker"));
  }
  return doctor::DiagnoseLive(endpoint, workers, decode);
}

// `pdserve doctor RESULTS_DIR [--json]`: the slow-KV-transfer checklist over a `pdserve bench`
// results folder. Exit 0 whenever the folder was read: warn / fail verdicts are findings for the
// operator, not a failure of the command.
void AddDoctorCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "doctor",
      "Check a pdserve bench results folder (or, with --endpoint, a running cluster) against the slow KV transfer checklist: a figure, a "
      "verdict (ok / warn / fail) and a fix per item, per backend and prompt length");
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto endpoint = std::make_shared<std::string>();
  auto* folder_opt =
      cmd->add_option("results_dir", *dir, "the results folder (holds report-inputs.json)");
  auto* endpoint_opt = cmd->add_option(
      "--endpoint", *endpoint,
      "instead of a folder: a running cluster's router (client API host:port); its prefill "
      "workers' transfer counters since they started");
  folder_opt->excludes(endpoint_opt);
  cmd->add_flag("--json", *json, "print the findings as JSON instead of a table");
  cmd->callback([dir, json, endpoint] {
    if (dir->empty() == endpoint->empty()) {
      ExitWith(absl::InvalidArgumentError("give a results folder or --endpoint HOST:PORT"));
    }
    absl::StatusOr<doctor::Diagnosis> diagnosis;
    if (!endpoint->empty()) {
      diagnosis = DiagnoseEndpoint(*endpoint);
    } else if (absl::StatusOr<doctor::ResultsFolder> folder = doctor::LoadResultsFolder(*dir);
               folder.ok()) {
      diagnosis = doctor::Diagnose(*folder);
    } else {
      diagnosis = folder.status();
    }
    if (!diagnosis.ok()) ExitWith(diagnosis.status());
    const doctor::Diagnosis& d = *diagnosis;
    const std::string text = *json ? doctor::ToJson(d).dump(2) + "\n" : doctor::RenderText(d);
    std::fputs(text.c_str(), stdout);
    ExitWith(absl::OkStatus());
  });
}

const bool registered = RegisterCommand("doctor", AddDoctorCommand);

}  // namespace
}  // namespace pdserve::cli
