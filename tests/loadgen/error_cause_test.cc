// Failures grouped by cause: one line per kind of error, whatever request ids and lengths the
// messages carry.
#include "loadgen/error_cause.h"

#include "gtest/gtest.h"
#include "loadgen/result_table.h"
#include "loadgen/summary.h"

namespace pdserve::loadgen {
namespace {

TEST(LoadgenErrorCauseTest, MasksTheRequestIdAndStandaloneNumbers) {
  EXPECT_EQ(ErrorCause("HTTP 400: request lg1a2b-5: prompt of 130 tokens + max_tokens 12 = 142 "
                       "exceeds max_model_len 128",
                       "lg1a2b-5"),
            "HTTP 400: request <id>: prompt of <n> tokens + max_tokens <n> = <n> exceeds "
            "max_model_len <n>");
  // The server's own id (not the client's) is masked by the "request <word>:" rule.
  EXPECT_EQ(ErrorCause("HTTP 400: request cmpl-9f3e: preset 'small' requested but this cluster "
                       "serves 'tiny'",
                       "lg-3"),
            "HTTP 400: request <id>: preset 'small' requested but this cluster serves 'tiny'");
  EXPECT_EQ(ErrorCause("DEADLINE_EXCEEDED: no reply after 2.5 s", "x"),
            "DEADLINE_EXCEEDED: no reply after <n> s");
}

TEST(LoadgenErrorCauseTest, KeepsTheCodeAndNumbersInsideWords) {
  EXPECT_EQ(ErrorCause("HTTP 503: no decode worker for llama3-8b (fp16)", "r"),
            "HTTP 503: no decode worker for llama3-8b (fp16)");
  EXPECT_EQ(ErrorCause("UNAVAILABLE: echo target: injected failure", "lg-7"),
            "UNAVAILABLE: echo target: injected failure");
  EXPECT_EQ(ErrorCause("", "lg-7"), "unknown");
}

RequestRecord Failed(const std::string& id, const std::string& error) {
  RequestRecord r;
  r.request_id = id;
  r.input_len = 10;
  r.error = error;
  return r;
}

TEST(LoadgenErrorCauseTest, SummaryCountsOneLinePerCauseWithAnExample) {
  std::vector<RequestRecord> rs;
  for (int i = 0; i < 6; ++i) {
    const std::string id = "lg-" + std::to_string(i);
    rs.push_back(Failed(id, "INVALID_ARGUMENT: request " + id + ": prompt of " +
                                std::to_string(200 + i) + " tokens exceeds max_model_len 128"));
  }
  rs.push_back(Failed("lg-9", "UNAVAILABLE: worker gone"));
  const BenchmarkMetrics m = ComputeMetrics(rs, 1.0, {50}, {});
  ASSERT_EQ(m.error_counts.size(), 2u);
  const std::string cause =
      "INVALID_ARGUMENT: request <id>: prompt of <n> tokens exceeds max_model_len <n>";
  EXPECT_EQ(m.error_counts.at(cause), 6);
  EXPECT_EQ(m.error_examples.at(cause),
            "INVALID_ARGUMENT: request lg-0: prompt of 200 tokens exceeds max_model_len 128");
  EXPECT_EQ(m.error_counts.at("UNAVAILABLE: worker gone"), 1);

  BenchmarkResult result;
  result.requests = rs;
  result.metrics = m;
  const std::string table = FormatResultTable(result);
  EXPECT_NE(table.find("       6  " + cause + "\n"), std::string::npos) << table;
  EXPECT_NE(table.find("e.g. INVALID_ARGUMENT: request lg-0: prompt of 200"), std::string::npos);
  EXPECT_EQ(table.find("request lg-3"), std::string::npos);  // not one line per request
}

TEST(LoadgenErrorCauseTest, AMultiLineErrorStaysOneLineInTheTable) {
  BenchmarkResult result;
  result.requests = {Failed("a", "UNKNOWN: first line\nsecond line")};
  result.metrics = ComputeMetrics(result.requests, 1.0, {50}, {});
  const std::string table = FormatResultTable(result);
  EXPECT_NE(table.find("UNKNOWN: first line\\nsecond line"), std::string::npos) << table;
  EXPECT_EQ(table.find("\nsecond line"), std::string::npos);
}

}  // namespace
}  // namespace pdserve::loadgen
