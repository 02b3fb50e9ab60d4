// The text format 0.0.4 byte for byte, and the parser reading it (and other exporters') back.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/exposition_parser.h"
#include "metrics/text_format.h"

namespace pdserve::metrics {
namespace {

using ::testing::HasSubstr;

TEST(TextFormatTest, WritesHelpTypeAndCumulativeHistogramBuckets) {
  Registry r;
  HistogramFamily* h = r.AddHistogram("vllm:time_to_first_token_seconds", "Time to first token.",
                                      {"model_name"}, {0.001, 0.5, 1})
                           .value();
  Histogram* tiny = h->Get({"tiny"}).value();
  tiny->Observe(0.25);
  tiny->Observe(0.5);
  tiny->Observe(3);
  r.AddCounter("vllm:prompt_tokens_total", "Prompt tokens.", {"model_name"})
      .value()
      ->Get({"tiny"})
      .value()
      ->Inc(1234567890123);
  r.AddGauge("vllm:num_requests_running", "Running.").value()->Get({}).value()->Set(2);
  EXPECT_EQ(TextExposition(r),
            "# HELP vllm:num_requests_running Running.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            "vllm:num_requests_running 2\n"
            "# HELP vllm:prompt_tokens_total Prompt tokens.\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            "vllm:prompt_tokens_total{model_name=\"tiny\"} 1234567890123\n"
            "# HELP vllm:time_to_first_token_seconds Time to first token.\n"
            "# TYPE vllm:time_to_first_token_seconds histogram\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.001\"} 0\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.5\"} 2\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"1\"} 2\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"+Inf\"} 3\n"
            "vllm:time_to_first_token_seconds_sum{model_name=\"tiny\"} 3.75\n"
            "vllm:time_to_first_token_seconds_count{model_name=\"tiny\"} 3\n");
}

TEST(TextFormatTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay in help text
  Registry r;
  r.AddGauge("g", "line one\nline \\two").value()->Get({}).value();
  r.AddCounter("c_total", "h", {"path"}).value()->Get({"C:\\dir \"x\"\nnext"}).value()->Inc();
  const std::string text = TextExposition(r);
  EXPECT_THAT(text, HasSubstr("c_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# HELP g line one\\nline \\\\two\n"));
}

TEST(TextFormatTest, SpellsSpecialValues) {
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(123456789012345.0), "123456789012345");
}

TEST(ParserTest, ReadsBackWhatTheSerializerWrites) {
  Registry r;
  HistogramFamily* h = r.AddHistogram("lat_seconds", "h", {"worker"}, {0.1, 1}).value();
  h->Get({"decode-0"}).value()->Observe(0.05);
  h->Get({"decode-0"}).value()->Observe(2);
  const std::string odd = "we\"ird\\name\nx";
  r.AddCounter("bytes_total", "Bytes\nsent.", {"backend"}).value()->Get({odd}).value()->Inc(7);
  absl::StatusOr<Exposition> e = ParseExposition(TextExposition(r));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Value("bytes_total", {{"backend", odd}}), 7);
  EXPECT_EQ(e->help.at("bytes_total"), "Bytes\nsent.");
  EXPECT_EQ(e->types.at("lat_seconds"), "histogram");
  EXPECT_EQ(e->Value("lat_seconds_bucket", {{"worker", "decode-0"}, {"le", "0.1"}}), 1);
  EXPECT_EQ(e->Value("lat_seconds_bucket", {{"worker", "decode-0"}, {"le", "+Inf"}}), 2);
  EXPECT_EQ(e->Value("lat_seconds_count", {{"worker", "decode-0"}}), 2);
  EXPECT_DOUBLE_EQ(*e->Value("lat_seconds_sum", {{"worker", "decode-0"}}), 2.05);
  EXPECT_EQ(e->Sum("lat_seconds_bucket", {{"le", "1"}}), 1);
  EXPECT_EQ(e->Value("lat_seconds_count", {{"worker", "decode-1"}}), std::nullopt);
}

TEST(ParserTest, ReadsOtherExportersSpellings) {
  absl::StatusOr<Exposition> e = ParseExposition(
      "# A free comment\r\n"
      "\n"
      "up 1 1700000000000\n"
      "x{a=\"1\",} +Inf\n"
      "y{ a = \"2\" , b=\"3\" } -Inf\n"
      "z NaN\n");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Value("up"), 1);
  EXPECT_EQ(e->Value("x", {{"a", "1"}}), INFINITY);
  EXPECT_EQ(e->Value("y", {{"a", "2"}, {"b", "3"}}), -INFINITY);
  EXPECT_TRUE(std::isnan(*e->Value("z")));
}

TEST(ParserTest, RefusesMalformedLinesNamingThem) {
  const std::pair<const char*, const char*> cases[] = {
      {"a 1\nb{x=\"unterminated} 2\n", "line 2"},
      {"a 1\na 2\n", "twice"},
      {"a{x=\"1\",x=\"2\"} 1\n", "given twice"},
      {"a one\n", "not a sample value"},
      {"a{x=\"\\q\"} 1\n", "unknown escape"},
      {"a{x} 1\n", "expected '='"},
      {"a\n", "expected a value"},
      {"a 1 2 3\n", "at most a timestamp"},
      {"{x=\"1\"} 1\n", "metric name"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<Exposition> e = ParseExposition(text);
    ASSERT_FALSE(e.ok()) << text;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(why)) << text;
  }
}

}  // namespace
}  // namespace pdserve::metrics
