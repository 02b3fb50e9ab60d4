// `pdserve loadgen`'s vllm bench serve flags: each changes what vllm's changes (schedule,
// lengths, percentile fields), ignored ones change nothing, unsupported values fail loudly.
#include "cli/loadgen_flags.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loadgen/arrival_schedule.h"
#include "loadgen/workload.h"

namespace pdserve::cli {
namespace {

using loadgen::ArrivalProcess;
using loadgen::ClientApi;
using loadgen::DatasetKind;
using loadgen::LoadOptions;
using ::testing::HasSubstr;

// Parses `args` as `pdserve loadgen ARGS` would; parse errors become InvalidArgument.
absl::StatusOr<LoadgenFlags> Parse(std::vector<std::string> args) {
  CLI::App app;
  LoadgenFlags f;
  AddLoadgenFlags(&app, f);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector in reverse order
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (absl::Status s = ResolveLoadgenFlags(f); !s.ok()) return s;
  f.backend_option = f.dataset_name_option = f.disable_tqdm_option = nullptr;  // die with app
  return f;
}

LoadOptions Options(std::vector<std::string> args) {
  absl::StatusOr<LoadgenFlags> f = Parse(std::move(args));
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? f->options : LoadOptions{};
}

std::string Error(std::vector<std::string> args) {
  absl::StatusOr<LoadgenFlags> f = Parse(std::move(args));
  return f.ok() ? std::string("(accepted)") : std::string(f.status().message());
}

// Coefficient of variation of the gaps between consecutive due times (the first from 0).
double GapCv(const std::vector<double>& due) {
  std::vector<double> gaps(due.size());
  std::adjacent_difference(due.begin(), due.end(), gaps.begin());
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double sq = 0;
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return std::sqrt(sq / gaps.size()) / mean;
}

TEST(LoadgenFlagsTest, DefaultsAreVllmBenchServes) {
  const LoadOptions o = Options({});
  EXPECT_EQ(o.num_prompts, 1000);
  EXPECT_TRUE(std::isinf(o.arrival.request_rate));
  EXPECT_EQ(o.arrival.burstiness, 1.0);
  EXPECT_EQ(o.arrival.process, ArrivalProcess::kPoisson);
  EXPECT_EQ(o.dataset, DatasetKind::kRandom);
  EXPECT_EQ(o.random.input_len, 1024);
  EXPECT_EQ(o.random.output_len, 128);
  EXPECT_EQ(o.random.range_ratio, 0.0);
  EXPECT_EQ(o.random.prefix_len, 0);
  EXPECT_EQ(o.seed, 0u);
  EXPECT_EQ(o.max_concurrency, 0);
  EXPECT_EQ(o.percentile_metrics, (std::vector<std::string>{"ttft", "tpot", "itl"}));
  // A deliberate difference: vllm's --metric-percentiles defaults to 99 alone; pdserve adds
  // 50, 90 and 95 (a superset of vllm's fields).
  EXPECT_EQ(o.percentiles, (std::vector<double>{50, 90, 95, 99}));
}

TEST(LoadgenFlagsTest, RequestRateAndBurstinessShapeTheScheduleAsVllm) {
  const std::vector<std::string> base = {"--request-rate", "4", "--num-prompts", "2000",
                                         "--seed", "3"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    const LoadOptions o = Options(args);
    return std::make_pair(o, loadgen::ArrivalOffsets(o.arrival, o.num_prompts, o.seed));
  };
  const auto [poisson, poisson_due] = with({});
  const auto [bursty, bursty_due] = with({"--burstiness", "0.5"});
  const auto [smooth, smooth_due] = with({"--burstiness", "4"});
  EXPECT_EQ(poisson.arrival.process, ArrivalProcess::kPoisson);
  EXPECT_EQ(bursty.arrival.process, ArrivalProcess::kGamma);  // as vllm: b != 1 is gamma
  // vllm rescales the delays so that the last request is due at num_prompts / rate.
  for (const auto* due : {&poisson_due, &bursty_due, &smooth_due}) {
    EXPECT_NEAR(due->back(), 2000 / 4.0, 1e-9);
  }
  // Gamma gaps with shape b have CV 1 / sqrt(b): 1.41 at 0.5, 1 at 1 (Poisson), 0.5 at 4.
  EXPECT_GT(GapCv(bursty_due), 1.25);
  EXPECT_GT(GapCv(poisson_due), 0.9);
  EXPECT_LT(GapCv(poisson_due), 1.1);
  EXPECT_LT(GapCv(smooth_due), 0.6);
  // The seed picks the schedule.
  const LoadOptions other = Options({"--request-rate", "4", "--num-prompts", "2000", "--seed", "4"});
  EXPECT_NE(loadgen::ArrivalOffsets(other.arrival, 2000, other.seed), poisson_due);
}

TEST(LoadgenFlagsTest, InfiniteBurstinessIsConstantGapsAndInfiniteRateIsAllAtOnce) {
  const LoadOptions constant = Options({"--request-rate", "4", "--burstiness", "inf"});
  EXPECT_EQ(constant.arrival.process, ArrivalProcess::kConstant);
  const std::vector<double> due = loadgen::ArrivalOffsets(constant.arrival, 8, 1);
  for (size_t i = 0; i < due.size(); ++i) EXPECT_NEAR(due[i], 0.25 * (i + 1), 1e-12) << i;
  const LoadOptions at_once = Options({"--request-rate", "inf"});
  EXPECT_EQ(loadgen::ArrivalOffsets(at_once.arrival, 5, 1), std::vector<double>(5, 0.0));
}

TEST(LoadgenFlagsTest, LengthFlagsSetTheRandomDatasetsLengthsAsVllm) {
  // --input-len / --output-len are vllm's general lengths and win over --random-*.
  const LoadOptions o = Options({"--random-input-len", "500", "--input-len", "100",
                                 "--output-len", "20", "--random-range-ratio", "0.5",
                                 "--num-prompts", "400"});
  EXPECT_EQ(o.random.input_len, 100);
  EXPECT_EQ(o.random.output_len, 20);
  auto specs = loadgen::MakeRandomWorkload(o.random, o.num_prompts, o.seed, 32000);
  ASSERT_TRUE(specs.ok()) << specs.status();
  std::set<int> inputs, outputs;
  for (const loadgen::RequestSpec& s : *specs) {
    inputs.insert(s.input_len);
    outputs.insert(s.output_len);
  }
  // Uniform integers in [floor(len * (1 - r)), ceil(len * (1 + r))], both ends included.
  EXPECT_EQ(*inputs.begin(), 50);
  EXPECT_EQ(*inputs.rbegin(), 150);
  EXPECT_EQ(*outputs.begin(), 10);
  EXPECT_EQ(*outputs.rbegin(), 30);
  const LoadOptions fixed = Options({"--random-input-len", "64", "--random-output-len", "8"});
  auto same = loadgen::MakeRandomWorkload(fixed.random, 20, 0, 32000);
  ASSERT_TRUE(same.ok());
  for (const loadgen::RequestSpec& s : *same) {
    EXPECT_EQ(s.input_len, 64);
    EXPECT_EQ(s.output_len, 8);
  }
}

TEST(LoadgenFlagsTest, RandomPrefixLenStartsEveryPromptWithTheSameTokens) {
  const LoadOptions o = Options({"--random-prefix-len", "8", "--random-input-len", "16"});
  auto specs = loadgen::MakeRandomWorkload(o.random, 5, o.seed, 32000);
  ASSERT_TRUE(specs.ok());
  for (const loadgen::RequestSpec& s : *specs) {
    ASSERT_EQ(s.prompt.size(), 24u);  // vllm: prefix + the sampled input length
    EXPECT_TRUE(std::equal(s.prompt.begin(), s.prompt.begin() + 8, (*specs)[0].prompt.begin()));
  }
  EXPECT_NE((*specs)[0].prompt, (*specs)[1].prompt);
}

TEST(LoadgenFlagsTest, PercentileFlagsSelectMetricsAndPercentiles) {
  const LoadOptions o =
      Options({"--percentile-metrics", "ttft,e2el", "--metric-percentiles", "50,99.9"});
  EXPECT_EQ(o.percentile_metrics, (std::vector<std::string>{"ttft", "e2el"}));
  EXPECT_EQ(o.percentiles, (std::vector<double>{50, 99.9}));
  EXPECT_EQ(Options({"--percentiles", "90"}).percentiles, std::vector<double>{90});  // alias
  EXPECT_THAT(Error({"--percentile-metrics", "ttft,goodput"}),
              HasSubstr("unknown --percentile-metrics entry 'goodput'"));
  EXPECT_THAT(Error({"--metric-percentiles", "101"}), HasSubstr("[0, 100]"));
}

TEST(LoadgenFlagsTest, DatasetNamesOtherThanRandomShareGptAndTraceAreRefusedSayingWhatIsSupported) {
  const std::string sonnet = Error({"--dataset-name", "sonnet"});
  EXPECT_THAT(sonnet, HasSubstr("unknown --dataset-name 'sonnet'"));
  EXPECT_THAT(sonnet, HasSubstr("supports random"));
  EXPECT_THAT(sonnet, HasSubstr("trace (JSONL replay with --dataset-path)"));
  // sharegpt as vllm: the file from --dataset-path, an optional fixed output length.
  EXPECT_THAT(Error({"--dataset-name", "sharegpt"}), HasSubstr("needs --dataset-path"));
  const LoadOptions sharegpt = Options({"--dataset-name", "sharegpt", "--dataset-path", "s.json",
                                        "--sharegpt-output-len", "64"});
  EXPECT_EQ(sharegpt.dataset, DatasetKind::kShareGpt);
  EXPECT_EQ(sharegpt.trace_path, "s.json");
  EXPECT_EQ(sharegpt.sharegpt_output_len, 64);
  // As vllm: the random dataset takes no file.
  EXPECT_THAT(Error({"--dataset-name", "random", "--dataset-path", "t.jsonl"}),
              HasSubstr("takes no --dataset-path"));
  const LoadOptions trace = Options({"--dataset-path", "t.jsonl"});
  EXPECT_EQ(trace.dataset, DatasetKind::kTrace);
  EXPECT_EQ(trace.trace_path, "t.jsonl");
  EXPECT_EQ(Options({"--dataset-name", "trace", "--trace", "u.jsonl"}).trace_path, "u.jsonl");
}

TEST(LoadgenFlagsTest, BackendAndAddressFlagsAsVllm) {
  const LoadOptions vllm = Options({"--backend", "vllm", "--base-url", "http://127.0.0.1:9"});
  EXPECT_EQ(vllm.api, ClientApi::kOpenAi);
  EXPECT_EQ(vllm.backend, "vllm");  // stored as given, as vllm stores args.backend
  // vllm's default backend is openai: a --base-url alone means the HTTP API.
  const LoadOptions url = Options({"--base-url", "http://127.0.0.1:9"});
  EXPECT_EQ(url.api, ClientApi::kOpenAi);
  EXPECT_EQ(url.backend, "openai");
  const LoadOptions host =
      Options({"--backend", "openai-chat", "--host", "10.0.0.1", "--port", "9000"});
  EXPECT_EQ(host.api, ClientApi::kOpenAiChat);
  EXPECT_EQ(host.base_url, "http://10.0.0.1:9000");
  EXPECT_EQ(Options({"--port", "9001"}).target, "127.0.0.1:9001");  // gRPC by default
  EXPECT_EQ(Options({"--port", "9001"}).api, ClientApi::kPdserve);
  EXPECT_THAT(Error({"--backend", "tgi"}), HasSubstr("not supported"));
}

TEST(LoadgenFlagsTest, IgnoredVllmFlagsAreAcceptedAndChangeNothing) {
  const std::vector<std::string> base = {"--request-rate", "2", "--num-prompts", "50",
                                         "--random-input-len", "30", "--seed", "5"};
  std::vector<std::string> args = base;
  for (const char* extra :
       {"--ignore-eos", "--save-detailed", "--trust-remote-code", "--tokenizer-mode", "auto",
        "--temperature", "0", "--top-p", "1", "--top-k", "50", "--min-p", "0"}) {
    args.push_back(extra);
  }
  const LoadOptions plain = Options(base);
  const LoadOptions vllm = Options(args);
  EXPECT_EQ(vllm.arrival.request_rate, plain.arrival.request_rate);
  EXPECT_EQ(vllm.num_prompts, plain.num_prompts);
  EXPECT_EQ(vllm.random.input_len, plain.random.input_len);
  EXPECT_EQ(vllm.seed, plain.seed);
  EXPECT_EQ(vllm.percentile_metrics, plain.percentile_metrics);
  EXPECT_EQ(vllm.api, plain.api);
  EXPECT_EQ(vllm.progress, plain.progress);
  EXPECT_EQ(loadgen::ArrivalOffsets(vllm.arrival, 50, 5),
            loadgen::ArrivalOffsets(plain.arrival, 50, 5));
}

TEST(LoadgenFlagsTest, TokenizerDisableTqdmAndMetadataAreKept) {
  const LoadOptions o = Options({"--tokenizer", "meta-llama/Llama-3.1-8B", "--disable-tqdm",
                                 "--metadata", "version=0.3.3", "tp=1"});
  EXPECT_EQ(o.tokenizer_id, "meta-llama/Llama-3.1-8B");
  EXPECT_EQ(o.progress, loadgen::ProgressMode::kOff);
  ASSERT_EQ(o.metadata.size(), 2u);
  EXPECT_EQ(o.metadata[0], (std::pair<std::string, std::string>{"version", "0.3.3"}));
  EXPECT_EQ(o.metadata[1], (std::pair<std::string, std::string>{"tp", "1"}));
  EXPECT_THAT(Error({"--metadata", "novalue"}), HasSubstr("KEY=VALUE"));
}

TEST(LoadgenFlagsTest, RunSettingsReachTheOptions) {
  absl::StatusOr<LoadgenFlags> f =
      Parse({"--max-concurrency", "4", "--goodput", "ttft:100", "tpot:20", "--model", "m",
             "--label", "l", "--num-warmups", "2", "--allow-failures"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->options.max_concurrency, 4);
  EXPECT_EQ(f->options.goodput.ttft_ms, 100);
  EXPECT_EQ(f->options.goodput.tpot_ms, 20);
  EXPECT_FALSE(f->options.goodput.e2el_ms.has_value());
  EXPECT_EQ(f->options.model_id, "m");
  EXPECT_EQ(f->options.label, "l");
  EXPECT_EQ(f->options.num_warmups, 2);
  EXPECT_TRUE(f->allow_failures);
  EXPECT_FALSE(Parse({})->allow_failures);
}

TEST(LoadgenFlagsTest, UnsupportedVllmFlagsAreErrorsNotSilentlyDropped) {
  EXPECT_THAT(Error({"--ramp-up-strategy", "linear"}), HasSubstr("--ramp-up-strategy"));
  EXPECT_THAT(Error({"--request-id-prefix", "x"}), HasSubstr("--request-id-prefix"));
}

}  // namespace
}  // namespace pdserve::cli
