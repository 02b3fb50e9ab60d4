// deploy/grafana/pdserve.json queries only series the router and the workers register, and it
// has the panels the issue asks for. (metrics_e2e_test checks the same against live scrapes.)

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/router_metrics.h"
#include "service/worker_metrics.h"
#include "tests/metrics/dashboard_queries.h"

namespace pdserve::metrics_test {
namespace {

using ::testing::IsSupersetOf;
using ::testing::UnorderedElementsAre;

// Sample names a registry serves: histograms as name_bucket, name_sum, name_count.
void AddSampleNames(const metrics::Registry& r, std::set<std::string>& out) {
  for (const metrics::FamilySnapshot& f : r.Snapshot()) {
    if (f.type == metrics::MetricType::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) out.insert(f.name + suffix);
    } else {
      out.insert(f.name);
    }
  }
}

std::set<std::string> ExportedSampleNames() {
  metrics::Registry router, prefill, decode;
  EXPECT_TRUE(router::RouterMetrics::Create(router, "tiny").ok());
  for (auto [registry, role] : {std::pair{&prefill, "prefill"}, std::pair{&decode, "decode"}}) {
    EXPECT_TRUE(service::WorkerMetrics::Create(*registry, {.worker_id = std::string(role) + "-0",
                                                           .role = role,
                                                           .model_name = "tiny",
                                                           .backend = "local"})
                    .ok());
  }
  std::set<std::string> names;
  for (const metrics::Registry* r : {&router, &prefill, &decode}) AddSampleNames(*r, names);
  return names;
}

TEST(DashboardQueriesTest, FindsMetricNamesInPromQl) {
  EXPECT_THAT(MetricNames("histogram_quantile(0.99, sum by (le) (rate("
                          "vllm:time_to_first_token_seconds_bucket{model_name=~\"$m\"}"
                          "[$__rate_interval])))"),
              UnorderedElementsAre("vllm:time_to_first_token_seconds_bucket"));
  // Label values with colons are not names; a selector without a colon is reported.
  EXPECT_THAT(MetricNames("sum by (backend) (rate(up{job=\"a:b\"}[5m])) / 1e9"),
              UnorderedElementsAre("up"));
  EXPECT_THAT(MetricNames("label_values(vllm:num_requests_running, model_name)"),
              UnorderedElementsAre("vllm:num_requests_running"));
  EXPECT_THAT(MetricNames("a:b / c:d"), UnorderedElementsAre("a:b", "c:d"));
}

TEST(DashboardQueriesTest, EverySeriesTheDashboardQueriesIsExported) {
  std::string error;
  const std::set<std::string> queried =
      DashboardMetricNames(PDSERVE_SOURCE_DIR "/deploy/grafana/pdserve.json", &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_FALSE(queried.empty());
  const std::set<std::string> exported = ExportedSampleNames();
  for (const std::string& name : queried) {
    EXPECT_TRUE(exported.contains(name)) << name << " is queried by the dashboard but no "
                                         << "pdserve process exports it";
  }
}

TEST(DashboardQueriesTest, HasThePanelsOperatorsLookFor) {
  std::string error;
  const std::set<std::string> queried =
      DashboardMetricNames(PDSERVE_SOURCE_DIR "/deploy/grafana/pdserve.json", &error);
  EXPECT_THAT(queried,
              IsSupersetOf({"vllm:time_to_first_token_seconds_bucket",
                            "vllm:inter_token_latency_seconds_bucket", "vllm:num_requests_running",
                            "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                            "pdserve:kv_transfer_bytes_total", "pdserve:ttft_stage_seconds_sum",
                            "pdserve:ttft_stage_seconds_count"}));
}

}  // namespace
}  // namespace pdserve::metrics_test
