#pragma once

// The API a load run speaks, chosen by LoadOptions::api (`pdserve loadgen --backend`): pdserve's
// own gRPC Router.Generate, or OpenAI's completions / chat completions over HTTP. The runner
// (load_runner.h) owns the schedule, the workload, the tracker and the metrics; a client only
// reads the target's model, turns specs into requests and sends them, filling the same
// RequestRecord either way, so that both paths give the same metrics, JSON and CSV.
//
// Use, from one thread: Connect -> FetchModel -> per phase: Prepare, Send each request (in
// index order, the sender thread), wait for the tracker, EndPhase. Completions arrive on the
// client's own threads; a record is complete once the tracker has counted its request done.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "loadgen/call_tracker.h"
#include "loadgen/load_options.h"
#include "loadgen/request_record.h"
#include "loadgen/workload.h"

namespace pdserve::loadgen {

class LoadClient {
 public:
  virtual ~LoadClient() = default;

  // The model the target serves, as it reports it (prompts' vocabulary, --verify's oracle).
  virtual absl::StatusOr<ModelConfig> FetchModel(absl::Duration timeout) = 0;

  // Builds one phase's requests (off the timed path). `model` is the run's model; with
  // `name_preset` every request names it so that a target serving another refuses it. An API
  // that cannot send token ids (chat) rewrites `specs[i].prompt` to the ids the server will
  // tokenize its text into, so that --verify recomputes from what the server saw.
  virtual absl::Status Prepare(std::vector<RequestSpec>& specs, const std::string& id_prefix,
                               const ModelConfig& model, bool name_preset) = 0;
  // The id request `i` of the prepared phase goes by until the server names it.
  virtual std::string RequestId(int i) const = 0;
  // Sends prepared request `i`, filling `record` (times relative to `t0_ns`) and reporting to
  // `tracker`. Returns at once; called from the sender thread only.
  virtual void Send(int i, RequestRecord* record, CallTracker* tracker, int64_t t0_ns,
                    double timeout_s) = 0;
  // Every request of the phase is done: their state goes.
  virtual void EndPhase() = 0;
};

// The client for options.api, connected to its target (Unavailable when it cannot be reached
// within options.connect_timeout_s).
absl::StatusOr<std::unique_ptr<LoadClient>> ConnectLoadClient(const LoadOptions& options);

// The name a target is reported under in logs ("127.0.0.1:8000", "http://127.0.0.1:8001").
std::string TargetName(const LoadOptions& options);

}  // namespace pdserve::loadgen
