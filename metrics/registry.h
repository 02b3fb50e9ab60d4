#pragma once

// A process's metrics: the families it exports on /metrics. Each process (the router, each
// worker) owns its Registry and passes it to what records into it; there is no global one, so
// that several routers in one test process keep their figures apart.
//
// Use:
//   Registry registry;
//   ASSIGN_OR_RETURN(CounterFamily* tokens, registry.AddCounter("vllm:prompt_tokens_total",
//                                                               "Prompt tokens.", {"model_name"}));
//   ASSIGN_OR_RETURN(Counter* c, tokens->Get({"tiny"}));   // once
//   c->Inc(prompt_len);                                    // hot path: one atomic add
//   registry.AddCollector([&] { running_gauge->Set(CountRunning()); });  // read at scrape
//   std::string text = TextExposition(registry);           // text_format.h
//
// Families and collectors are added at start-up; adding takes the registry's lock, updates never
// do. The registry must outlive every pointer it handed out and every scrape.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "metrics/metric_family.h"

namespace pdserve::metrics {

// Whether `name` is a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) / label name
// ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", which Prometheus reserves).
bool IsMetricName(absl::string_view name);
bool IsLabelName(absl::string_view name);

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // InvalidArgument for an invalid metric or label name, a label named twice (or `le` on a
  // histogram, which its buckets use), bad bucket bounds; AlreadyExists for a name in use.
  absl::StatusOr<CounterFamily*> AddCounter(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<GaugeFamily*> AddGauge(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<HistogramFamily*> AddHistogram(const std::string& name, const std::string& help,
                                                std::vector<std::string> label_names,
                                                BucketBounds bounds) ABSL_LOCKS_EXCLUDED(mu_);

  // `collect` runs at the start of every Snapshot, on the scraping thread, without the
  // registry's lock: it sets the gauges that are read rather than pushed (queue length, pool
  // usage). It must stay callable as long as the registry.
  void AddCollector(std::function<void()> collect) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the collectors, then reads every family, in name order.
  std::vector<FamilySnapshot> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  // The names of the families, in order (what a dashboard may query).
  std::vector<std::string> Names() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status CheckNew(const std::string& name, const std::vector<std::string>& label_names,
                        MetricType type) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename T>
  absl::StatusOr<Family<T>*> Add(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names, MetricType type,
                                 BucketBounds bounds) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::metrics
