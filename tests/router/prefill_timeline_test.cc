// What a prefill worker reports lands in clients' reports: the router bounds it (a hostile or
// broken worker cannot put a negative or absurd copy wait, an arbitrary backend name or an
// unbounded, unprintable transports line there).

#include "router/prefill_timeline.h"

#include "gtest/gtest.h"

namespace pdserve::router {
namespace {

TEST(PrefillTimelineTest, ReportedFiguresAreCopiedAndBounded) {
  v1::PrefillItemResult r;
  r.set_prefill_start_us(10);
  r.set_prefill_end_us(20);
  r.set_transfer_copy_wait_us(1234);
  r.set_transfer_backend("auto/ucx");
  r.set_transports("posix/memory (data \"put\")");
  v1::RequestTimeline t;
  RecordPrefillResult(r, t);
  EXPECT_EQ(t.prefill_start_us(), 10);
  EXPECT_EQ(t.prefill_end_us(), 20);
  EXPECT_EQ(t.transfer_copy_wait_us(), 1234);
  EXPECT_EQ(t.transfer_backend(), "auto/ucx");
  EXPECT_EQ(t.transports(), "posix/memory (data \\\"put\\\")");

  r.set_transfer_copy_wait_us(-5);
  RecordPrefillResult(r, t);
  EXPECT_EQ(t.transfer_copy_wait_us(), 0);
  r.set_transfer_copy_wait_us(int64_t{1} << 62);
  RecordPrefillResult(r, t);
  EXPECT_EQ(t.transfer_copy_wait_us(), kMaxReportedCopyWaitUs);
}

TEST(PrefillTimelineTest, HostileNamesAndLinesAreRefusedOrEscaped) {
  EXPECT_EQ(SafeBackendName("nccl"), "nccl");
  EXPECT_EQ(SafeBackendName("cuda-ipc"), "cuda-ipc");
  EXPECT_EQ(SafeBackendName("UCX"), "(invalid)");
  EXPECT_EQ(SafeBackendName("ucx\nERROR forged"), "(invalid)");
  EXPECT_EQ(SafeBackendName(std::string(33, 'a')), "(invalid)");
  EXPECT_EQ(SafeBackendName(""), "(invalid)");
  const std::string line = SafeTransports(std::string(1000, '\n'));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  std::string expected;
  for (int i = 0; i < 256; ++i) expected += "\\n";
  EXPECT_EQ(line, expected + "...");
  // An empty backend is left to the caller (the decode worker's pool names it).
  v1::RequestTimeline t;
  t.set_transfer_backend("local");
  RecordPrefillResult(v1::PrefillItemResult(), t);
  EXPECT_EQ(t.transfer_backend(), "local");
}

}  // namespace
}  // namespace pdserve::router
