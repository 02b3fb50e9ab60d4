#include "loadgen/result_json.h"

#include <charconv>
#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/ttft_stages.h"
#include "loadgen/metric_definitions.h"

namespace pdserve::loadgen {
namespace {

using Json = nlohmann::ordered_json;

// A double as Python's str() writes it: the shortest text that reads back the same, with ".0"
// on whole numbers ("4.0", "0.5", "1e-05").
std::string PythonFloat(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string text(buf, ec == std::errc() ? end : buf);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

// NaN and infinity are not JSON: they become null.
Json Number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

void AddDistribution(Json& j, const std::string& metric, const Distribution& d) {
  j[absl::StrCat("mean_", metric, "_ms")] = Number(d.mean);
  j[absl::StrCat("median_", metric, "_ms")] = Number(d.median);
  j[absl::StrCat("std_", metric, "_ms")] = Number(d.std);
  for (const auto& [p, v] : d.percentiles) {
    j[absl::StrCat("p", PercentileName(p), "_", metric, "_ms")] = Number(v);
  }
}

// Server-timeline aggregates; every field is present (null without timelines) so that readers
// need not test for keys.
void AddTimeline(Json& j, const BenchmarkResult& result) {
  const auto& t = result.metrics.timeline;
  const std::pair<const char*, Distribution TimelineMetrics::*> parts[] = {
      {"queue", &TimelineMetrics::queue_ms},
      {"prefill", &TimelineMetrics::prefill_ms},
      {"kv_transfer", &TimelineMetrics::transfer_ms},
      {"decode", &TimelineMetrics::decode_ms}};
  for (const auto& [name, member] : parts) {
    const Distribution* d = t ? &((*t).*member) : nullptr;
    j[absl::StrCat("mean_", name, "_ms")] = d ? Number(d->mean) : Json(nullptr);
    j[absl::StrCat("median_", name, "_ms")] = d ? Number(d->median) : Json(nullptr);
    for (double p : result.options.percentiles) {
      double v = NAN;
      if (d) {
        for (const auto& [q, value] : d->percentiles) {
          if (q == p) v = value;
        }
      }
      j[absl::StrCat("p", PercentileName(p), "_", name, "_ms")] = Number(v);
    }
  }
  j["mean_kv_bytes"] = t ? Number(t->mean_kv_bytes) : Json(nullptr);
  j["kv_transfer_gbps"] = t ? Number(t->kv_transfer_gbps) : Json(nullptr);
  j["kv_transfer_share_of_ttft"] = t ? Number(t->transfer_share_of_ttft) : Json(nullptr);
  // The mock's own accounting and the TTFT model: null where the server did not report them.
  const std::pair<const char*, double TimelineMetrics::*> accounting[] = {
      {"mean_transfer_ops", &TimelineMetrics::mean_transfer_ops},
      {"mean_modelled_prefill_ms", &TimelineMetrics::mean_modelled_prefill_ms},
      {"mean_prefill_mock_cpu_ms", &TimelineMetrics::mean_prefill_mock_cpu_ms},
      {"mean_modelled_first_step_ms", &TimelineMetrics::mean_modelled_first_step_ms},
      {"mean_decode_verify_cpu_ms", &TimelineMetrics::mean_decode_verify_cpu_ms},
      {"mean_decode_join_ms", &TimelineMetrics::mean_decode_join_ms},
      {"mean_first_step_ms", &TimelineMetrics::mean_first_step_ms},
      {"mean_control_plane_ms", &TimelineMetrics::mean_control_plane_ms},
      {"mean_exposed_transfer_ms", &TimelineMetrics::mean_exposed_transfer_ms},
      {"mean_kv_hidden_share", &TimelineMetrics::mean_kv_hidden_share},
      {"mean_ttft_model_ms", &TimelineMetrics::mean_ttft_model_ms},
      {"ttft_to_model_ratio", &TimelineMetrics::ttft_to_model_ratio}};
  for (const auto& [name, member] : accounting) j[name] = t ? Number((*t).*member) : Json(nullptr);
  j["ttft_model_requests"] = t ? t->ttft_model_requests : 0;
  // Where TTFT goes (common/ttft_stages.h); named mean_ttft_stage_* because mean_queue_ms,
  // mean_kv_transfer_ms and the others above keep their older definitions.
  for (int i = 0; i < kNumTtftStages; ++i) {
    const bool have = t && t->mean_ttft_stage_ms.size() == kNumTtftStages;
    j[absl::StrCat("mean_ttft_stage_", TtftStageNames()[i], "_ms")] =
        have ? Number(t->mean_ttft_stage_ms[i]) : Json(nullptr);
  }
  j["mean_ttft_stage_other_ms"] = t ? Number(t->mean_ttft_stage_other_ms) : Json(nullptr);
  j["ttft_stage_requests"] = t ? t->ttft_stage_requests : 0;
}

// One request's TTFT stages by name (null when its timeline does not split).
Json StagesJson(const ServerTimeline& t) {
  if (t.ttft_stage_ms.size() != kNumTtftStages) return nullptr;
  Json out = Json::object();
  for (int i = 0; i < kNumTtftStages; ++i) {
    out[std::string(TtftStageNames()[i])] = t.ttft_stage_ms[i];
  }
  return out;
}

Json TimelineJson(const ServerTimeline& t) {
  if (!t.present) return nullptr;
  return Json{{"queue_ms", t.queue_ms},       {"prefill_ms", t.prefill_ms},
              {"transfer_ms", t.transfer_ms}, {"decode_ms", t.decode_ms},
              {"server_ttft_ms", t.server_ttft_ms}, {"kv_bytes", t.kv_bytes},
              {"transfer_ops", t.transfer_ops},     {"prefill_worker", t.prefill_worker},
              {"decode_worker", t.decode_worker},   {"transfer_backend", t.transfer_backend},
              {"transports", t.transports},
              {"modelled_prefill_ms", Number(t.modelled_prefill_ms)},
              {"prefill_mock_cpu_ms", Number(t.prefill_mock_cpu_ms)},
              {"modelled_first_step_ms", Number(t.modelled_first_step_ms)},
              {"decode_verify_cpu_ms", Number(t.decode_verify_cpu_ms)},
              {"dispatch_ms", Number(t.dispatch_ms)},   {"handoff_ms", Number(t.handoff_ms)},
              {"join_ms", Number(t.join_ms)},           {"first_step_ms", Number(t.first_step_ms)},
              {"exposed_transfer_ms", t.exposed_transfer_ms},
              {"transfer_batches", t.transfer_batches},
              {"transfer_copy_wait_ms", t.transfer_copy_wait_ms},
              {"kv_hidden_share", Number(t.kv_hidden_share)},
              {"relayed_ttft_ms", Number(t.relayed_ttft_ms)},
              {"ttft_stages_ms", StagesJson(t)}};
}

// The model as the overrides that resolve it again (`pdserve loadgen verify` reads it back).
Json ModelJson(const ModelConfig& model) {
  if (model.name.empty()) return nullptr;
  const ModelOverrides m = OverridesOf(model);
  return Json{{"preset", m.preset},         {"block_size", m.block_size},
              {"dtype", m.dtype},           {"num_layers", m.num_layers},
              {"max_model_len", m.max_model_len}};
}

// What a reader needs to recompute every request's expected tokens: prompt ids as sent, the
// tokens received (also of failed requests: what arrived), the generation seed and max_tokens.
void AddTokenIds(Json& j, const std::vector<RequestRecord>& requests) {
  Json prompts = Json::array(), outputs = Json::array(), seeds = Json::array(),
       max_tokens = Json::array();
  for (const RequestRecord& r : requests) {
    prompts.push_back(r.prompt_tokens);
    outputs.push_back(r.tokens);
    seeds.push_back(r.seed);
    max_tokens.push_back(r.max_tokens);
  }
  j["prompt_token_ids"] = std::move(prompts);
  j["output_token_ids"] = std::move(outputs);
  j["request_seeds"] = std::move(seeds);
  j["max_tokens"] = std::move(max_tokens);
}

// vllm's detailed per-request arrays (what it keeps with --save-detailed; pdserve always
// writes them), then pdserve's.
void AddPerRequestArrays(Json& j, const std::vector<RequestRecord>& requests) {
  Json input_lens = Json::array(), output_lens = Json::array(), ttfts = Json::array(),
       itls = Json::array(), latencies = Json::array(), starts = Json::array(),
       queue_times = Json::array(), texts = Json::array(), errors = Json::array(),
       ids = Json::array(), timelines = Json::array();
  for (const RequestRecord& r : requests) {
    input_lens.push_back(r.input_len);
    output_lens.push_back(r.success ? r.output_tokens : 0);
    ttfts.push_back(r.success ? r.ttft_s : 0.0);
    itls.push_back(r.success ? Json(r.itl_s) : Json::array());
    latencies.push_back(r.success ? r.e2el_s : 0.0);
    starts.push_back(r.send_s);
    queue_times.push_back(r.ClientQueueS());
    texts.push_back(absl::StrJoin(r.tokens, " "));
    errors.push_back(r.error);
    ids.push_back(r.request_id);
    timelines.push_back(TimelineJson(r.timeline));
  }
  j["input_lens"] = std::move(input_lens);
  j["output_lens"] = std::move(output_lens);
  j["ttfts"] = std::move(ttfts);
  j["itls"] = std::move(itls);
  j["latencies"] = std::move(latencies);
  j["start_times"] = std::move(starts);
  j["queue_times"] = std::move(queue_times);
  j["generated_texts"] = std::move(texts);
  j["errors"] = std::move(errors);
  j["request_ids"] = std::move(ids);
  j["server_timelines"] = std::move(timelines);
}

}  // namespace

Json ResultToJson(const BenchmarkResult& result, bool per_request) {
  const LoadOptions& o = result.options;
  const BenchmarkMetrics& m = result.metrics;
  const GeneratorStats& g = result.generator;
  Json j;
  // vllm's keys first, in its order (vllm/benchmarks/serve.py's result_json and benchmark()).
  j["date"] = result.date;
  j["endpoint_type"] = o.backend;  // vllm keeps it "for backward compatibility"
  j["backend"] = o.backend;
  j["label"] = o.label.empty() ? Json(nullptr) : Json(o.label);
  j["model_id"] = result.model_id;
  j["tokenizer_id"] = o.tokenizer_id.empty() ? result.model_id : o.tokenizer_id;
  j["num_prompts"] = static_cast<int>(result.requests.size());
  for (const auto& [key, value] : o.metadata) j[key] = value;  // later fields win, as in vllm
  j["request_rate"] =
      std::isinf(g.requested_rate) ? Json("inf") : Json(g.requested_rate);
  j["burstiness"] = std::isinf(o.arrival.burstiness) ? Json("inf") : Json(o.arrival.burstiness);
  j["max_concurrency"] = o.max_concurrency > 0 ? Json(o.max_concurrency) : Json(nullptr);
  j["duration"] = result.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input_tokens;
  j["total_output_tokens"] = m.total_output_tokens;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] = m.request_goodput ? Json(*m.request_goodput) : Json(nullptr);
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  j["max_output_tokens_per_s"] = m.max_output_tokens_per_s;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  j["rtfx"] = 0.0;  // audio benchmarks only
  for (const ReportedMetric& metric : ReportedMetrics(result)) {
    AddDistribution(j, metric.key, *metric.values);
  }

  // pdserve extras.
  j["metric_definitions"] = MetricDefinitionsJson();
  j["percentile_metrics"] = [&] {
    Json names = Json::array();
    for (const ReportedMetric& metric : ReportedMetrics(result)) names.push_back(metric.key);
    return names;
  }();
  j["arrival_process"] = o.dataset == DatasetKind::kTrace ? std::string("trace")
                                                          : ArrivalProcessName(o.arrival.process);
  j["seed"] = o.seed;
  j["dataset_name"] = o.dataset == DatasetKind::kTrace      ? "trace"
                      : o.dataset == DatasetKind::kShareGpt ? "sharegpt"
                                                            : "random";
  if (o.dataset == DatasetKind::kShareGpt) {
    j["dataset_path"] = o.trace_path;
    if (o.sharegpt_output_len > 0) j["sharegpt_output_len"] = o.sharegpt_output_len;
  } else if (o.dataset == DatasetKind::kTrace) {
    j["dataset_path"] = o.trace_path;
  } else {
    j["random_input_len"] = o.random.input_len;
    j["random_output_len"] = o.random.output_len;
    j["random_range_ratio"] = o.random.range_ratio;
    j["random_prefix_len"] = o.random.prefix_len;
  }
  j["target"] = o.api == ClientApi::kPdserve ? o.target : o.base_url;
  j["preset"] = result.model.name;
  j["model"] = ModelJson(result.model);
  j["num_warmups"] = o.num_warmups;
  j["warmup_completed"] = result.warmup_completed;
  j["warmup_failed"] = result.warmup_failed;
  j["verified"] = o.verify;
  j["verify_mismatches"] = result.verify_mismatches;
  Json goodput_config = Json::object();
  if (o.goodput.ttft_ms) goodput_config["ttft"] = *o.goodput.ttft_ms;
  if (o.goodput.tpot_ms) goodput_config["tpot"] = *o.goodput.tpot_ms;
  if (o.goodput.e2el_ms) goodput_config["e2el"] = *o.goodput.e2el_ms;
  j["goodput_slos_ms"] = goodput_config;
  j["max_ttft_ms"] = Number(m.ttft_ms.max);
  j["max_tpot_ms"] = Number(m.tpot_ms.max);
  j["max_itl_ms"] = Number(m.itl_ms.max);
  j["max_e2el_ms"] = Number(m.e2el_ms.max);
  j["error_counts"] = m.error_counts;
  j["error_examples"] = m.error_examples;
  AddTimeline(j, result);
  j["scheduled_request_rate"] = Number(g.scheduled_rate);
  j["send_request_rate"] = Number(g.send_rate);
  j["send_to_scheduled_rate_ratio"] = Number(g.send_rate / g.scheduled_rate);
  j["mean_send_lag_ms"] = Number(g.send_lag_ms.mean);
  for (const auto& [p, v] : g.send_lag_ms.percentiles) {
    j[absl::StrCat("p", PercentileName(p), "_send_lag_ms")] = Number(v);
  }
  j["max_send_lag_ms"] = Number(g.send_lag_ms.max);
  j["peak_in_flight_requests"] = g.peak_in_flight;

  if (!per_request) return j;
  AddPerRequestArrays(j, result.requests);
  if (o.save_token_ids) AddTokenIds(j, result.requests);
  return j;
}

std::string DefaultResultFilename(const BenchmarkResult& result) {
  const LoadOptions& o = result.options;
  // vllm's compute_result_filename: label (or backend), the rate as Python prints the float
  // ("4.0", "inf"), the concurrency, and the model id's last path component.
  const double rate = result.generator.requested_rate;
  std::string name = absl::StrCat(o.label.empty() ? o.backend : o.label, "-",
                                  std::isinf(rate) ? std::string("inf") : PythonFloat(rate), "qps");
  if (o.max_concurrency > 0) absl::StrAppend(&name, "-concurrency", o.max_concurrency);
  const std::string& model = result.model_id;
  const size_t slash = model.rfind('/');
  absl::StrAppend(&name, "-", slash == std::string::npos ? model : model.substr(slash + 1), "-",
                  result.date, ".json");
  return name;
}

absl::Status WriteResultJson(const BenchmarkResult& result, const std::string& path) {
  std::ofstream out(path);
  out << ResultToJson(result).dump(2) << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace pdserve::loadgen
