// Streamed KV (prefill --stream-chunk-tokens, roofline) under a real fault (issue 15): the
// prefill worker is SIGKILLed after the first chunks of a request's KV landed in the decode
// worker's pool and long before the last chunk, the one that carries the notification, is due.
// The request must fail with a status that says why (not hang, not decode from a partial KV),
// and the decode worker must get every block back: the router's reservation and the pool.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/roofline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_cluster.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

// A llama3-70b shaped layer (one, to keep the KV small: 4 KiB per token) makes the modelled
// prefill of a long prompt last seconds on an l40s, while its KV is 256 MiB: the kill lands
// between the first chunk and the last with a wide margin on a busy 2-core host.
constexpr int kPrompt = 65536;
constexpr int kChunkTokens = 4096;  // 16 chunks
constexpr char kGpu[] = "l40s";

// The decode worker's pool as the local backend keeps it (POSIX shared memory named after its
// pid, kvcache/kv_memory.cc), mapped read-only: KV that lands there is seen as it lands. The
// pool starts zeroed (nothing was freed yet, so no poison either).
class PoolWatch {
 public:
  explicit PoolWatch(pid_t owner) {
    const std::string path = absl::StrCat("/dev/shm/pdserve-kv-", owner, "-0");
    const int fd = open(path.c_str(), O_RDONLY);
    struct stat st{};
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0) close(fd);
      return;
    }
    bytes_ = static_cast<size_t>(st.st_size);
    void* p = mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) data_ = static_cast<const uint64_t*>(p);
  }
  ~PoolWatch() {
    if (data_ != nullptr) munmap(const_cast<uint64_t*>(data_), bytes_);
  }
  bool mapped() const { return data_ != nullptr; }
  bool AnyLanded() const {
    return std::any_of(data_, data_ + bytes_ / 8, [](uint64_t v) { return v != 0; });
  }

 private:
  const uint64_t* data_ = nullptr;
  size_t bytes_ = 0;
};

TEST(StreamFaultTest, RequestWhoseLastKvChunkNeverLandsFailsNamingTheCauseAndFreesItsBlocks) {
  cluster::ClusterOptions options = Options("local", 1, 1);
  options.preset = "llama3-70b";
  options.num_layers = 1;
  options.max_model_len = kPrompt + 64;
  options.compute = "roofline";
  options.gpu = kGpu;
  const uint32_t blocks = (kPrompt + 64) / 16 + 8;
  options.prefill_blocks = blocks;
  options.decode_blocks = blocks;
  options.prefill_args = {"--stream-chunk-tokens", std::to_string(kChunkTokens)};
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  const int prompt_len[] = {kPrompt};
  const double modelled =
      RooflineModel(cluster->model(), *GpuSpecByName(kGpu)).PrefillSeconds(prompt_len);
  ASSERT_GT(modelled, 1.5) << "the modelled prefill must outlast the kill by far";
  absl::StatusOr<pid_t> decode_pid = cluster->Pid("decode-0");
  ASSERT_TRUE(decode_pid.ok()) << decode_pid.status();
  PoolWatch pool(*decode_pid);
  ASSERT_TRUE(pool.mapped()) << "decode-0's pool is not in /dev/shm";
  ASSERT_FALSE(pool.AnyLanded());

  Client client(cluster->endpoint());
  Outcome out;
  std::thread request([&] { out = client.Generate(Client::Request("streamed", kPrompt, 8, 1)); });
  // The first chunk landed: bytes in the decode pool, while the last chunk is due only at the
  // end of the modelled prefill, seconds away.
  const absl::Time sent = absl::Now();
  const bool landed = WaitFor([&] { return pool.AnyLanded(); }, absl::Seconds(60));
  const absl::Duration waited = absl::Now() - sent;
  ASSERT_TRUE(cluster->Kill("prefill-0", SIGKILL).ok());
  request.join();
  ASSERT_TRUE(landed) << "no KV chunk reached decode-0";

  EXPECT_FALSE(out.status.ok()) << "a request whose KV never all landed succeeded (the kill came "
                                << absl::FormatDuration(waited) << " after the request)";
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE) << out.status.error_message();
  EXPECT_THAT(out.status.error_message(), HasSubstr("streamed"));
  EXPECT_THAT(out.status.error_message(), HasSubstr("prefill-0"));
  EXPECT_TRUE(out.tokens.empty());

  // The decode worker gets back every block the request held, and the router reserves none:
  // at once, since the writer is known dead (the --fence-lease-s that frees blocks of a writer
  // that could not be fenced is 120 s).
  bool freed = false;
  v1::WorkerStatus decode;
  WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client.Status();
        if (!s.ok()) return false;
        for (const v1::WorkerStatus& w : s->workers()) {
          if (w.worker_id() != "decode-0") continue;
          decode = w;
          freed = w.live() && w.capacity().free_blocks() == w.capacity().total_blocks() &&
                  w.reserved_blocks() == 0 && s->running_requests() == 0 &&
                  s->waiting_requests() == 0;
        }
        return freed;
      },
      absl::Seconds(30));
  EXPECT_TRUE(freed) << decode.ShortDebugString();
  EXPECT_EQ(decode.capacity().total_blocks(), blocks);
}

}  // namespace
}  // namespace pdserve::e2e
