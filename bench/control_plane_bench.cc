#include "bench/control_plane_bench.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bootstrap.h"
#include "bench/handoff_floor.h"
#include "cluster/cluster.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "loadgen/metrics.h"
#include "nlohmann/json.hpp"
#include "pdserve.grpc.pb.h"

namespace pdserve::bench {
namespace {

using Timeline = v1::RequestTimeline;

// One row of the table: a stage of the first token's path, from a request's timeline. A stage
// whose end or start the timeline lacks (a field this build does not set) is left out.
struct Stage {
  const char* name;
  const char* what;
  std::function<int64_t(const Timeline&)> from;
  std::function<int64_t(const Timeline&)> to;
};

const std::vector<Stage>& Stages() {
  static const std::vector<Stage> stages = {
      {"queue", "arrival -> scheduled (router)",
       &Timeline::arrival_us, &Timeline::scheduled_us},
      {"allocate", "scheduled -> decode blocks allocated (router)",
       &Timeline::scheduled_us, &Timeline::allocated_us},
      {"prefill call", "allocated -> prefill_start (prefill worker)",
       &Timeline::allocated_us, &Timeline::prefill_start_us},
      {"dispatch", "scheduled -> prefill_start (the two above)",
       &Timeline::scheduled_us, &Timeline::prefill_start_us},
      {"prefill", "prefill_start -> prefill_end (kernels)",
       &Timeline::prefill_start_us, &Timeline::prefill_end_us},
      {"submit", "prefill_end -> transfer_start",
       &Timeline::prefill_end_us, &Timeline::transfer_start_us},
      {"transfer", "transfer_start -> transfer_end (KV bytes)",
       &Timeline::transfer_start_us, &Timeline::transfer_end_us},
      {"admitted-landed", "decode_admitted - transfer_end (< 0: stream waited)",
       &Timeline::transfer_end_us, &Timeline::decode_admitted_us},
      {"notify", "transfer_end -> kv_landed (decode worker)",
       &Timeline::transfer_end_us, &Timeline::kv_landed_us},
      {"start", "kv_landed -> decode_join",
       &Timeline::kv_landed_us, &Timeline::decode_join_us},
      {"join", "transfer_end -> decode_join",
       &Timeline::transfer_end_us, &Timeline::decode_join_us},
      {"first step", "decode_join -> first_token",
       &Timeline::decode_join_us, &Timeline::first_token_us},
      {"relay", "first_token -> relayed to the client (router)",
       &Timeline::first_token_us, &Timeline::first_token_relayed_us},
      {"TTFT relayed", "arrival -> first token relayed (router)",
       &Timeline::arrival_us, &Timeline::first_token_relayed_us},
  };
  return stages;
}

int64_t TtftUs(const Timeline& t) { return t.first_token_us() - t.arrival_us(); }

// TTFT less the two stages that are the model's and the transport's, not the control plane's.
// The transfer ends at the earlier of the prefill worker's transfer_end and the decode worker's
// kv_landed (one clock per host; the bench's cluster is on one host): every byte had landed
// when the decode side heard of it, and the prefill side's later stamp is its own wake-up to
// learn so, which the first token does not wait for (on 2 vCPUs it waits behind the decode
// side's work and would otherwise count that work as transfer).
int64_t GapUs(const Timeline& t) {
  int64_t transfer_end = t.transfer_end_us();
  if (t.kv_landed_us() > 0) transfer_end = std::min(transfer_end, t.kv_landed_us());
  return TtftUs(t) - (t.prefill_end_us() - t.prefill_start_us()) -
         (transfer_end - t.transfer_start_us());
}

double Quantile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return loadgen::Percentile(values, p);
}

struct Sent {
  grpc::Status status;
  std::vector<int32_t> tokens;
  Timeline timeline;
};

Sent Send(v1::Router::Stub& stub, const std::string& id, int input_len, int output_len,
          uint64_t seed) {
  v1::GenerateRequest request;
  request.set_request_id(id);
  request.set_prompt_len(input_len);
  request.set_max_tokens(output_len);
  request.set_seed(seed);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  Sent out;
  auto reader = stub.Generate(&ctx, request);
  v1::GenerateResponse chunk;
  while (reader->Read(&chunk)) {
    out.tokens.insert(out.tokens.end(), chunk.tokens().begin(), chunk.tokens().end());
    if (chunk.finished()) out.timeline = chunk.timeline();
  }
  out.status = reader->Finish();
  return out;
}

std::string LoadAverage() {
  std::string line = "?";
  std::getline(std::ifstream("/proc/loadavg"), line);
  return line;
}

}  // namespace

absl::Status RunControlPlaneBench(const ControlPlaneBenchOptions& o) {
  if (o.requests < 2 || o.warmup < 0 || o.input_len < 1 || o.output_len < 1) {
    return absl::InvalidArgumentError(
        "control-plane: --requests >= 2, --warmup >= 0, --input-len and --output-len >= 1");
  }
  if (o.floor_hops < 0 || o.floor_hops > 16) {
    return absl::InvalidArgumentError("control-plane: --floor-hops in [0, 16]");
  }
  // Before anything else runs (the chain's processes are forked from this one).
  const int floor_passes = std::min(o.requests, 100);
  std::optional<HandoffFloor> floor_before, floor_after;
  if (o.floor_hops > 0) {
    ASSIGN_OR_RETURN(floor_before, MeasureHandoffFloor(o.floor_hops, floor_passes,
                                                       absl::Milliseconds(o.gap_ms)));
  }
  cluster::ClusterOptions c;
  c.binary = o.binary;
  c.preset = o.preset;
  c.transfer = o.transfer;
  c.compute = o.compute;
  c.num_prefill = o.num_prefill;
  c.num_decode = o.num_decode;
  c.prefill_blocks = 256;
  c.decode_blocks = 256;
  c.threads = 1;
  c.http_port = -1;
  c.env = {{"UCX_TLS", "tcp,posix,cma"}};
  if (o.allocate_first) c.router_args.push_back("--allocate-first");
  if (o.no_fast_lane) c.router_args.push_back("--no-fast-lane");
  if (o.no_nudge) c.router_args.push_back("--no-nudge");
  if (o.no_inline_step) c.decode_args = {"--inline-first-step-kib", "0"};
  ASSIGN_OR_RETURN(std::unique_ptr<cluster::Cluster> cluster, cluster::Cluster::Start(c));
  const ModelConfig& model = cluster->model();
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(cluster->endpoint(), grpc::InsecureChannelCredentials()));

  std::printf("pdserve bench control-plane\n");
  std::printf("  cluster:      %d prefill + %d decode, --transfer %s, --preset %s, --compute %s\n",
              o.num_prefill, o.num_decode, o.transfer.c_str(), o.preset.c_str(),
              o.compute.c_str());
  std::printf("  decode blocks: %s\n", o.allocate_first ? "allocated before the prefill (--allocate-first)"
                                                       : "allocated alongside the prefill");
  std::printf("  first token:  %s\n", o.no_inline_step
                                         ? "made by the decode loop thread (--no-inline-step)"
                                         : "made by the thread that receives the KV, when idle");
  std::printf("  router calls: %s\n",
              o.no_fast_lane ? "gRPC only (--no-fast-lane)"
              : o.no_nudge   ? "fast lane to same-host workers, no nudge (--no-nudge)"
                             : "fast lane to same-host workers, nudged on arrival");
  std::printf("  requests:     %d measured after %d warm-up, one at a time, %.0f ms apart\n",
              o.requests, o.warmup, o.gap_ms);
  std::printf("  request:      %d prompt tokens, %d output tokens, tokens checked\n", o.input_len,
              o.output_len);
  std::printf("  host:         %u cores, load average %s\n", std::thread::hardware_concurrency(),
              LoadAverage().c_str());

  std::vector<Timeline> timelines;
  int failed = 0, wrong = 0;
  for (int i = 0; i < o.warmup + o.requests; ++i) {
    const uint64_t seed = o.seed * 1000003 + static_cast<uint64_t>(i);
    Sent sent = Send(*stub, absl::StrCat("cp-", i), o.input_len, o.output_len, seed);
    const std::vector<int32_t> expected = model::ReferenceGenerate(
        model::SyntheticPrompt(seed, o.input_len, model.vocab_size), o.output_len, model, seed);
    if (!sent.status.ok()) {
      failed++;
      std::fprintf(stderr, "request cp-%d failed: %s\n", i, sent.status.error_message().c_str());
    } else if (sent.tokens != expected) {
      wrong++;
    } else if (i >= o.warmup) {
      timelines.push_back(sent.timeline);
    }
    absl::SleepFor(absl::Milliseconds(o.gap_ms));
  }
  cluster->Stop();
  if (o.floor_hops > 0) {
    ASSIGN_OR_RETURN(floor_after, MeasureHandoffFloor(o.floor_hops, floor_passes,
                                                      absl::Milliseconds(o.gap_ms)));
  }
  if (failed > 0 || wrong > 0) {
    return absl::InternalError(absl::StrCat("control-plane: ", failed, " requests failed, ", wrong,
                                            " returned wrong tokens (logs: ", cluster->log_dir(),
                                            ")"));
  }

  nlohmann::json out = {{"requests", timelines.size()},
                        {"input_len", o.input_len},
                        {"output_len", o.output_len},
                        {"transfer", o.transfer},
                        {"preset", o.preset},
                        {"stages", nlohmann::json::array()}};
  std::printf("\n%-16s %-52s %9s %9s %9s\n", "stage", "", "p50 us", "p90 us", "mean us");
  auto row = [&out](const char* name, const char* what, const std::vector<double>& v) {
    if (v.empty()) {
      std::printf("%-16s %-52s %9s %9s %9s\n", name, what, "-", "-", "-");
      return;
    }
    double mean = 0;
    for (double x : v) mean += x / static_cast<double>(v.size());
    const double p50 = Quantile(v, 50), p90 = Quantile(v, 90);
    std::printf("%-16s %-52s %9.0f %9.0f %9.0f\n", name, what, p50, p90, mean);
    out["stages"].push_back({{"stage", name}, {"p50_us", p50}, {"p90_us", p90}, {"mean_us", mean}});
  };
  for (const Stage& s : Stages()) {
    std::vector<double> v;
    for (const Timeline& t : timelines) {
      if (s.from(t) == 0 || s.to(t) == 0) continue;
      v.push_back(static_cast<double>(s.to(t) - s.from(t)));
    }
    row(s.name, s.what, v);
  }
  std::vector<double> ttft, gap;
  for (const Timeline& t : timelines) {
    ttft.push_back(static_cast<double>(TtftUs(t)));
    gap.push_back(static_cast<double>(GapUs(t)));
  }
  row("TTFT", "arrival -> first_token", ttft);
  row("gap", "TTFT - prefill - transfer (to kv_landed if sooner)", gap);
  const Difference ci = BootstrapQuantile(gap, 0.5);
  std::printf("\ngap median: %.0f us, 95%% bootstrap interval [%.0f, %.0f] us (%zu requests)\n",
              ci.estimate, ci.lo, ci.hi, gap.size());
  out["gap_median_us"] = {{"estimate", ci.estimate}, {"lo", ci.lo}, {"hi", ci.hi}};
  if (floor_before.has_value() && floor_after.has_value()) {
    const double before = Quantile(floor_before->us, 50), after = Quantile(floor_after->us, 50);
    const double floor = (before + after) / 2;
    std::printf("host floor: %d bare hand-offs between processes (unix sockets, %.0f ms idle "
                "before each, %d passes): p50 %.0f us (p90 %.0f) before the cluster, %.0f us "
                "(p90 %.0f) after\n",
                o.floor_hops, o.gap_ms, floor_passes, before, Quantile(floor_before->us, 90),
                after, Quantile(floor_after->us, 90));
    std::printf("gap median / host floor: %.2fx\n", ci.estimate / floor);
    out["host_floor"] = {{"hops", o.floor_hops},
                         {"passes", floor_passes},
                         {"before_p50_us", before},
                         {"before_p90_us", Quantile(floor_before->us, 90)},
                         {"after_p50_us", after},
                         {"after_p90_us", Quantile(floor_after->us, 90)},
                         {"gap_to_floor", ci.estimate / floor}};
  }
  out["allocate_first"] = o.allocate_first;
  out["no_fast_lane"] = o.no_fast_lane;
  out["no_nudge"] = o.no_nudge;
  out["no_inline_step"] = o.no_inline_step;
  // Every measured request's own stamps (microseconds since the epoch, one host clock): the
  // stages' medians do not add up, so a reader decomposing the gap needs the rows.
  out["timelines"] = nlohmann::json::array();
  for (const Timeline& t : timelines) {
    out["timelines"].push_back({{"arrival", t.arrival_us()},
                                {"scheduled", t.scheduled_us()},
                                {"prefill_start", t.prefill_start_us()},
                                {"prefill_end", t.prefill_end_us()},
                                {"transfer_start", t.transfer_start_us()},
                                {"transfer_end", t.transfer_end_us()},
                                {"kv_landed", t.kv_landed_us()},
                                {"decode_join", t.decode_join_us()},
                                {"first_token", t.first_token_us()},
                                {"gap", GapUs(t)}});
  }
  if (!o.json_path.empty()) {
    std::ofstream file(o.json_path);
    file << out.dump(2) << "\n";
    if (!file) return absl::UnavailableError(absl::StrCat("writing ", o.json_path));
    std::printf("figures written to %s\n", o.json_path.c_str());
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
