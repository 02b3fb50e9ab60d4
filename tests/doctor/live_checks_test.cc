// `pdserve doctor --endpoint`'s checklist over known counters: each cause a counter can show gives
// its verdict and names a fix; the items that need per-request timings say so.
#include "doctor/live_checks.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::doctor {
namespace {

using ::testing::HasSubstr;

LiveWorker Healthy() {
  // 10 requests of 64 MiB, one 64 MiB copy op each (block-major runs), local.
  return {.id = "prefill-0", .host = "h1", .backend = "local", .transports = "memcpy",
          .requests = 10, .registrations = 1, .batches = 10, .bytes = 10ull << 26,
          .operations = 10, .layout = "block-major", .block_size = 16};
}

const Finding& Item(const Diagnosis& d, const std::string& item) {
  for (const Finding& f : d.backends.at(0).findings) {
    if (f.item == item) return f;
  }
  static const Finding none;
  ADD_FAILURE() << "no finding " << item;
  return none;
}

TEST(LiveChecksTest, AHealthyWorkerIsOkOnEveryItemCountersCanJudge) {
  const Diagnosis d = DiagnoseLive("127.0.0.1:1", {Healthy()});
  ASSERT_EQ(d.backends.size(), 1u);
  EXPECT_TRUE(d.live);
  EXPECT_EQ(d.backends[0].backend, "prefill-0 (local, host h1)");
  for (const char* item : {kSmallOps, kBatching, kRegistration, kTransports, kStaging}) {
    EXPECT_EQ(Item(d, item).verdict, Verdict::kOk) << item << ": " << Item(d, item).figure;
  }
  EXPECT_EQ(Item(d, kSmallOps).figure, "1 ops/request, 64.0 MiB/op");
  for (const char* item : {kOverlap, kVsBaseline, kTtftP99}) {
    EXPECT_EQ(Item(d, item).verdict, Verdict::kNotApplicable) << item;
    EXPECT_THAT(Item(d, item).figure, HasSubstr("results folder"));
  }
}

// Where the pair sits: two CUDA contexts on one GPU, or copies across NUMA nodes, are warnings
// naming the fix; peer GPUs on one node are fine; another host is only named.
TEST(LiveChecksTest, PlacementWarnsOnASharedGpuAndOnCrossedNumaNodes) {
  LiveWorker w = Healthy();
  w.gpu = "0000:1b:00.0";
  w.numa_node = 0;
  const Finding apart = PlacementFinding(
      w, {{.id = "decode-0", .host = "h1", .gpu = "0000:2c:00.0", .numa_node = 0}});
  EXPECT_EQ(apart.verdict, Verdict::kOk);
  EXPECT_EQ(apart.figure, "decode-0: same host, peer GPUs 0000:1b:00.0 -> 0000:2c:00.0, NUMA node 0");
  const Finding shared = PlacementFinding(
      w, {{.id = "decode-0", .host = "h1", .gpu = "0000:1b:00.0", .numa_node = 1}});
  EXPECT_EQ(shared.verdict, Verdict::kWarn);
  EXPECT_THAT(shared.figure, HasSubstr("same GPU 0000:1b:00.0, NUMA nodes 0 -> 1"));
  EXPECT_THAT(shared.fix, HasSubstr("--prefill-gpus 0 --decode-gpus 1"));
  EXPECT_THAT(shared.fix, HasSubstr("numactl"));
  const Finding remote = PlacementFinding(w, {{.id = "decode-1", .host = "h2"}});
  EXPECT_EQ(remote.verdict, Verdict::kOk);
  EXPECT_EQ(remote.figure, "decode-1: another host (h2)");
  EXPECT_EQ(PlacementFinding(w, {}).verdict, Verdict::kNotApplicable);
  // The live diagnosis carries it for every sending worker.
  const Diagnosis d = DiagnoseLive("e", {w}, {{.id = "decode-0", .host = "h1", .gpu = w.gpu}});
  EXPECT_EQ(Item(d, kPlacement).verdict, Verdict::kWarn);
}

// Layer-major 16-token blocks of a small model: thousands of 4 KiB copies per request.
TEST(LiveChecksTest, SmallOpsFailAndNameTheLayoutAndBlockSize) {
  LiveWorker w = Healthy();
  w.layout = "layer-major";
  w.operations = 10 * 2048;
  w.bytes = 10ull * 2048 * 4096;
  const Diagnosis d = DiagnoseLive("e", {w});
  const Finding& f = Item(d, kSmallOps);
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_EQ(f.figure, "2048 ops/request, 4.0 KiB/op");
  EXPECT_THAT(f.fix, HasSubstr("--layout block-major"));
  EXPECT_THAT(f.fix, HasSubstr("--block-size 64"));
}

TEST(LiveChecksTest, TcpToAPeerOnThisHostIsAWarningWithItsFix) {
  LiveWorker w = Healthy();
  w.backend = "ucx";
  w.transports = "tcp/lo (data as active messages) (same host over tcp/lo: no shared memory)";
  w.same_host_network_peers = 1;
  const Diagnosis d = DiagnoseLive("e", {w});
  const Finding& f = Item(d, kTransports);
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_THAT(f.figure, HasSubstr("1 peer(s) on this host reached over a network transport"));
  EXPECT_THAT(f.fix, HasSubstr("UCX_TLS"));
}

TEST(LiveChecksTest, RegistrationsBeyondOnePerEngineAreAWarning) {
  LiveWorker w = Healthy();
  w.registrations = 10;  // one per batch
  EXPECT_EQ(Item(DiagnoseLive("e", {w}), kRegistration).verdict, Verdict::kWarn);
  w.backend = "auto";  // two engines over one pool: two registrations
  w.registrations = 2;
  EXPECT_EQ(Item(DiagnoseLive("e", {w}), kRegistration).verdict, Verdict::kOk);
}

TEST(LiveChecksTest, StagingAndPieceByPieceBatchesAreWarnings) {
  LiveWorker w = Healthy();
  w.backend = "ucx-staged";
  EXPECT_EQ(Item(DiagnoseLive("e", {w}), kStaging).verdict, Verdict::kWarn);
  w = Healthy();
  w.batches = 10 * 32;  // one op per batch, 32 batches per request
  w.operations = 10 * 32;
  const Diagnosis d = DiagnoseLive("e", {w});
  const Finding& f = Item(d, kBatching);
  EXPECT_EQ(f.verdict, Verdict::kWarn) << f.figure;
  EXPECT_EQ(f.figure, "1.0 ops/batch, 32.0 batches/request");
}

TEST(LiveChecksTest, AWorkerThatSentNothingYetIsNotJudged) {
  LiveWorker w = Healthy();
  w.requests = w.batches = w.bytes = w.operations = 0;
  const Diagnosis d = DiagnoseLive("e", {w});
  EXPECT_EQ(Item(d, kSmallOps).verdict, Verdict::kNotApplicable);
  EXPECT_EQ(Item(d, kBatching).verdict, Verdict::kNotApplicable);
}

}  // namespace
}  // namespace pdserve::doctor
