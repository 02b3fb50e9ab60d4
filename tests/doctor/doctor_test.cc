// `pdserve doctor` over synthetic results folders: a healthy run is ok on every item, and each
// cause, put in on its own, flips its own item (and names the fix). Then a committed real folder.
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "doctor/checks.h"
#include "doctor/doctor_output.h"
#include "doctor/results_folder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pdserve::doctor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// One cell of one backend, in2048/out64 at 1 req/s, llama3-8b's 256 MiB of KV. The defaults are
// a healthy run: posix shm on one host, 8 MiB ops in one batch, 80% of the transfer hidden,
// serving transfer 1.25x the baseline, the TTFT tail in the prefill.
struct Spec {
  std::string backend = "ucx-posix";
  std::string transports_used = "posix/memory";
  std::string device = "";
  std::string layout = "block-major";
  double ops = 32;
  double batches = 1;
  double hidden_share = 0.8;
  double exposed_ms = 4;
  double serving_ms = 20;
  double baseline_ms = 16;
  double tail_kv_transfer_ms = 4;
  double tail_queue_ms = 0.1;
  bool host_bound = false;
  bool write_cell_json = true;
  double registrations = -1;  // < 0: not recorded
};

constexpr double kKvBytes = 268435456;

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("doctor_test_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                        getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the folder `pdserve bench` would have written for `s`, and diagnoses it.
  Diagnosis Run(const Spec& s) {
    const std::string file = absl::StrCat(s.backend, "_in2048_out64_rate1.json");
    nlohmann::json run = {{"backend", s.backend}, {"input_len", 2048},   {"output_len", 64},
                          {"request_rate", "1"},  {"result_file", file}, {"error", ""}};
    if (s.registrations >= 0) run["registrations"] = s.registrations;
    nlohmann::json inputs = {
        {"device", s.device},
        {"cluster",
         absl::StrCat("1 prefill + 1 decode workers on one host, ", s.layout, " KV layout")},
        {"sweep",
         {{"layout", s.layout},
          {"transports",
           {absl::StrCat(s.backend,
                         ": transfer backend ucx, transports used: ", s.transports_used)}}}},
        {"transfer_baselines",
         {{{"backend", s.backend},
           {"input_len", 2048},
           {"bytes", kKvBytes},
           {"p50_ms", s.baseline_ms}}}},
        {"runs", {run}}};
    std::ofstream(dir_ / "report-inputs.json") << inputs.dump();
    std::ofstream(dir_ / "summary.csv")
        << "backend,input_len,output_len,request_rate,completed,p99_ttft_ms,mean_kv_transfer_ms,"
           "mean_kv_bytes,mean_transfer_ops,host_bound,host_reasons\n"
        << s.backend << ",2048,64,1,10,100," << s.serving_ms << "," << kKvBytes << "," << s.ops
        << "," << (s.host_bound ? 1 : 0) << ",\"cpu, engines\"\n";
    if (s.write_cell_json) {
      nlohmann::json timelines = nlohmann::json::array(), ttfts = nlohmann::json::array();
      // The tail request's client TTFT: its server stages plus 0.5 ms of client and network.
      const double tail_ttft_ms = s.tail_queue_ms + 42.0 + s.tail_kv_transfer_ms + 6.0 + 1.0 + 0.5;
      for (int i = 0; i < 10; ++i) {
        const bool tail = i == 9;  // the slowest request: the p99 tail
        timelines.push_back({{"kv_bytes", kKvBytes},
                             {"transfer_ops", s.ops},
                             {"transfer_batches", s.batches},
                             {"ttft_stages_ms",
                              {{"queue", tail ? s.tail_queue_ms : 0.1},
                               {"prefill", 42.0},
                               {"kv_transfer", tail ? s.tail_kv_transfer_ms : 4.0},
                               {"first_step", 6.0},
                               {"relay", 1.0}}}});
        ttfts.push_back(tail ? tail_ttft_ms / 1e3 : 0.05);
      }
      nlohmann::json cell = {{"completed", 10},
                             {"mean_ttft_ms", 80.0},
                             {"p99_ttft_ms", tail_ttft_ms - 0.1},
                             {"mean_kv_bytes", kKvBytes},
                             {"mean_transfer_ops", s.ops},
                             {"mean_kv_transfer_ms", s.serving_ms},
                             {"mean_exposed_transfer_ms", s.exposed_ms},
                             {"mean_kv_hidden_share", s.hidden_share},
                             {"model", {{"block_size", 16}}},
                             {"ttfts", ttfts},
                             {"server_timelines", timelines}};
      std::ofstream(dir_ / file) << cell.dump();
    }
    absl::StatusOr<ResultsFolder> folder = LoadResultsFolder(dir_.string());
    EXPECT_TRUE(folder.ok()) << folder.status();
    return folder.ok() ? Diagnose(*folder) : Diagnosis{};
  }

  static const Finding& Item(const Diagnosis& d, const std::string& item) {
    static const Finding kMissing{.item = "missing", .figure = "missing"};
    if (d.backends.size() != 1) return kMissing;
    for (const Finding& f : d.backends[0].findings) {
      if (f.item == item) return f;
    }
    return kMissing;
  }

  fs::path dir_;
};

constexpr const char* kJudgedItems[] = {kSmallOps, kBatching,   kTransports, kStaging,
                                        kOverlap,  kVsBaseline, kTtftP99};

TEST_F(DoctorTest, HealthyRunIsOkOnEveryItem) {
  const Diagnosis d = Run(Spec{});
  ASSERT_EQ(d.backends.size(), 1u);
  EXPECT_EQ(d.backends[0].findings.size(), 8u);
  for (const char* item : kJudgedItems) {
    const Finding& f = Item(d, item);
    EXPECT_EQ(f.verdict, Verdict::kOk) << item << ": " << f.figure;
    EXPECT_EQ(f.fix, "") << item;
  }
  EXPECT_EQ(Item(d, kSmallOps).figure, "32 ops/request, 8.0 MiB/op");
  EXPECT_EQ(Item(d, kBatching).figure, "32.0 ops/batch, 1.0 batches/request");
  EXPECT_EQ(Item(d, kTransports).figure, "posix/memory");
  // No transport counters in the results: said, not guessed.
  EXPECT_EQ(Item(d, kRegistration).verdict, Verdict::kNotApplicable);
  EXPECT_THAT(Item(d, kRegistration).figure, HasSubstr("not recorded"));
  EXPECT_THAT(
      Item(d, kTtftP99).figure,
      HasSubstr(
          "p99 53.5 ms (worst cell out64 @1/s); largest stage in its 1 slowest "
          "request(s): prefill 42.0 ms (78%), first_step 6.0 ms (11%), kv_transfer 4.0 ms (7%)"));
}

TEST_F(DoctorTest, TcpOnOneHostWarnsAndNamesSharedMemory) {
  const Diagnosis d =
      Run(Spec{.backend = "ucx-tcp", .transports_used = "tcp/lo (data as active messages)"});
  const Finding& f = Item(d, kTransports);
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_THAT(f.figure, HasSubstr("tcp/lo"));
  EXPECT_THAT(f.fix, HasSubstr("UCX_TLS=posix,cma"));
  EXPECT_THAT(f.fix, HasSubstr("--backends ucx-posix"));
  EXPECT_EQ(Item(d, kStaging).verdict, Verdict::kOk);
}

// What the ucx backend reports since it names every lane: a network lane after a shared-memory
// one, and its own mark for a same-host peer reached over tcp.
TEST_F(DoctorTest, TcpLaneOrSameHostMarkFromUcxWarns) {
  EXPECT_EQ(Item(Run(Spec{.backend = "ucx", .transports_used = "cma/memory+tcp/lo"}), kTransports)
                .verdict,
            Verdict::kWarn);
  EXPECT_EQ(Item(Run(Spec{.backend = "ucx",
                          .transports_used = "rc_mlx5/mlx5_0:1 (same host over rc_mlx5/mlx5_0:1: no "
                                             "shared memory)"}),
                 kTransports)
                .verdict,
            Verdict::kWarn);
  EXPECT_EQ(
      Item(Run(Spec{.backend = "ucx", .transports_used = "posix/memory+cma/memory"}), kTransports)
          .verdict,
      Verdict::kOk);
}

TEST_F(DoctorTest, ManySmallOpsWarnThenFail) {
  // 16-token layer-major blocks of llama3-8b: 32 KiB per K or V fragment.
  const Finding fail = Item(Run(Spec{.layout = "layer-major", .ops = kKvBytes / 32768}), kSmallOps);
  EXPECT_EQ(fail.verdict, Verdict::kFail);
  EXPECT_EQ(fail.figure, "8192 ops/request, 32.0 KiB/op");
  EXPECT_THAT(fail.fix, HasSubstr("--layout block-major"));
  EXPECT_THAT(fail.fix, HasSubstr("--block-size 64"));
  const Finding warn = Item(Run(Spec{.ops = kKvBytes / (128 * 1024)}), kSmallOps);
  EXPECT_EQ(warn.verdict, Verdict::kWarn);
  EXPECT_THAT(warn.fix, ::testing::Not(HasSubstr("--layout")));  // already block-major
}

TEST_F(DoctorTest, StagedBackendWarnsWithCudaAwareUcx) {
  const Diagnosis d =
      Run(Spec{.backend = "ucx-staged", .transports_used = "posix/memory", .device = "cuda"});
  const Finding& f = Item(d, kStaging);
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_THAT(f.figure, HasSubstr("256.0 MiB per request staged"));
  EXPECT_THAT(f.fix, HasSubstr("CUDA-aware UCX"));
}

TEST_F(DoctorTest, LowHiddenShareWarnsOnlyWhenTheExposedTransferShows) {
  const Finding low = Item(Run(Spec{.hidden_share = 0.0, .exposed_ms = 20}), kOverlap);
  EXPECT_EQ(low.verdict, Verdict::kWarn);
  EXPECT_EQ(low.figure, "0% of transfer hidden; exposed 20.00 ms = 25% of mean TTFT");
  EXPECT_THAT(low.fix, HasSubstr("--stream-chunk-tokens"));
  EXPECT_THAT(low.fix, HasSubstr("local-zc"));
  // Nothing hidden, but nothing worth hiding either (zero-copy: a notification).
  EXPECT_EQ(Item(Run(Spec{.hidden_share = 0.0, .exposed_ms = 0.05}), kOverlap).verdict,
            Verdict::kOk);
}

TEST_F(DoctorTest, ServingSlowerThanBaselineWarnsThenFails) {
  const Finding warn = Item(Run(Spec{.serving_ms = 30}), kVsBaseline);
  EXPECT_EQ(warn.verdict, Verdict::kWarn);
  EXPECT_THAT(warn.figure, HasSubstr("worst 1.88x (out64 @1/s), 1 of 1 cells > 1.5x"));
  EXPECT_THAT(warn.figure, HasSubstr("8.9 GB/s serving vs 16.8 GB/s baseline"));
  EXPECT_EQ(Item(Run(Spec{.serving_ms = 60}), kVsBaseline).verdict, Verdict::kFail);
  // The bench leaves host-bound cells out of this comparison; so does the doctor.
  EXPECT_EQ(Item(Run(Spec{.serving_ms = 60, .host_bound = true}), kVsBaseline).verdict,
            Verdict::kNotApplicable);
}

TEST_F(DoctorTest, OneOpPerBatchWarns) {
  const Finding f = Item(Run(Spec{.batches = 32}), kBatching);
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_EQ(f.figure, "1.0 ops/batch, 32.0 batches/request");
  EXPECT_THAT(f.fix, HasSubstr("--stream-chunk-tokens"));
}

TEST_F(DoctorTest, TtftTailNamesItsLargestStage) {
  const Finding transfer = Item(Run(Spec{.tail_kv_transfer_ms = 150}), kTtftP99);
  EXPECT_EQ(transfer.verdict, Verdict::kWarn);
  EXPECT_THAT(transfer.figure, HasSubstr("its 1 slowest request(s): kv_transfer 150.0 ms"));
  const Finding queue = Item(Run(Spec{.tail_queue_ms = 300}), kTtftP99);
  EXPECT_EQ(queue.verdict, Verdict::kWarn);
  EXPECT_THAT(queue.figure, HasSubstr(": queue 300.0 ms"));
  EXPECT_THAT(queue.fix, HasSubstr("--find-capacity"));
}

TEST_F(DoctorTest, RegistrationsPerTransferWhenRecorded) {
  const Finding re = Item(Run(Spec{.registrations = 20}), kRegistration);
  EXPECT_EQ(re.verdict, Verdict::kWarn);
  EXPECT_EQ(re.figure, "2.00 registrations per transfer");
  EXPECT_EQ(Item(Run(Spec{.registrations = 2}), kRegistration).verdict, Verdict::kOk);
}

TEST_F(DoctorTest, WithoutCellJsonTimelineItemsAreNotRecorded) {
  const Diagnosis d = Run(Spec{.write_cell_json = false});
  EXPECT_FALSE(d.timelines);
  EXPECT_EQ(Item(d, kBatching).verdict, Verdict::kNotApplicable);
  EXPECT_EQ(Item(d, kOverlap).verdict, Verdict::kNotApplicable);
  // summary.csv still carries ops and bytes.
  EXPECT_EQ(Item(d, kSmallOps).figure, "32 ops/request, 8.0 MiB/op");
}

TEST_F(DoctorTest, OutputsCarryVerdictsAndFixes) {
  const Diagnosis d = Run(Spec{.backend = "ucx-tcp", .transports_used = "tcp/lo"});
  const std::string text = RenderText(d);
  EXPECT_THAT(text,
              HasSubstr("  transports    all      warn    tcp/lo between processes on one host\n"));
  EXPECT_THAT(text, HasSubstr("fix: UCX_TLS=posix,cma"));
  EXPECT_THAT(text, HasSubstr("\n1 warn, 0 fail\n"));
  const nlohmann::json j = ToJson(d);
  EXPECT_EQ(j["warn"], 1);
  EXPECT_EQ(j["backends"][0]["backend"], "ucx-tcp");
  EXPECT_EQ(j["backends"][0]["findings"][3]["item"], kTransports);
  EXPECT_EQ(j["backends"][0]["findings"][3]["verdict"], "warn");
}

TEST_F(DoctorTest, NotAResultsFolderIsAnError) {
  EXPECT_EQ(LoadResultsFolder((dir_ / "absent").string()).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<ResultsFolder> empty = LoadResultsFolder(dir_.string());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no report-inputs.json"));
  std::ofstream(dir_ / "report-inputs.json") << "{\"date\": \"x\"}";
  EXPECT_EQ(LoadResultsFolder(dir_.string()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SplitCsvLineTest, QuotedFieldsKeepCommasAndQuotes) {
  EXPECT_THAT(SplitCsvLine("a,\"b, c\",,\"say \"\"hi\"\"\""),
              ::testing::ElementsAre("a", "b, c", "", "say \"hi\""));
}

// The committed CPU matrix: per-request CSVs only (no cell JSON), ucx-tcp over tcp/lo.
TEST(DoctorRealFolderTest, MatrixFlagsTcpOnlyForUcxTcp) {
  absl::StatusOr<ResultsFolder> folder =
      LoadResultsFolder(PDSERVE_SOURCE_DIR "/docs/results/cpu-2core-2026-12-04-matrix");
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->cells.size(), 81u);
  const Diagnosis d = Diagnose(*folder);
  ASSERT_EQ(d.backends.size(), 3u);
  for (const BackendDiagnosis& b : d.backends) {
    for (const Finding& f : b.findings) {
      if (f.item == kTransports) {
        EXPECT_EQ(f.verdict, b.backend == "ucx-tcp" ? Verdict::kWarn : Verdict::kOk) << b.backend;
        if (b.backend == "ucx-tcp") {
          EXPECT_THAT(f.fix, HasSubstr("UCX_TLS=posix,cma"));
        }
      }
      if (f.item == kStaging || f.item == kRegistration || f.item == kBatching) {
        // Not staged (CPU run); no transport counters and no timelines in this folder.
        EXPECT_EQ(f.verdict, f.item == kStaging ? Verdict::kOk : Verdict::kNotApplicable)
            << b.backend << " " << f.item;
      }
      // No cell JSON here: the tail comes from the per-request CSVs in requests/. At 16 req/s
      // the in2048 tail waits in the queue.
      if (f.item == kTtftP99 && f.workload == "in2048") {
        EXPECT_THAT(f.figure, HasSubstr("slowest request(s): queue ")) << b.backend;
        EXPECT_EQ(f.verdict, Verdict::kWarn) << b.backend;
      }
      // Its README: ucx-tcp misses 1.5x of the baseline at in2048 (1.66x at 1 req/s).
      if (f.item == kVsBaseline && b.backend == "ucx-tcp" && f.workload == "in2048") {
        EXPECT_NE(f.verdict, Verdict::kOk) << f.figure;
      }
    }
  }
}

}  // namespace
}  // namespace pdserve::doctor
