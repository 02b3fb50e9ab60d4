// One row's measurement and its baselines for `pdserve bench transfer` (transfer_rows.h).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/transfer_pair.h"
#include "bench/transfer_rows.h"
#include "common/clock.h"
#include "common/parallel_for.h"
#include "common/status_macros.h"
#include "transfer/local/copy_engine.h"
#include "transfer/stream_copy.h"

namespace pdserve::bench::transfer_rows {

using transfer::BlockCopy;
using transfer::KvTransport;

absl::StatusOr<Measurement> MeasureBatches(KvTransport& t, transfer::PeerId peer,
                                           const std::vector<BlockCopy>& copies,
                                           double min_seconds, int min_batches) {
  const absl::Duration kDeadline = absl::Seconds(120);
  ASSIGN_OR_RETURN(transfer::TransferId warm, t.Submit(peer, copies, "warm-up"));
  RETURN_IF_ERROR(t.Wait(warm, kDeadline));
  constexpr int kDepth = 4;
  std::vector<transfer::TransferId> inflight;
  std::vector<double> latencies_ms;
  Measurement m;
  uint64_t bytes = 0;
  const int64_t start = MonotonicNanos();
  const int64_t stop = start + static_cast<int64_t>(min_seconds * 1e9);
  int submitted = 0;
  auto reap = [&]() -> absl::Status {
    transfer::TransferId id = inflight.front();
    inflight.erase(inflight.begin());
    RETURN_IF_ERROR(t.Wait(id, kDeadline));
    ASSIGN_OR_RETURN(transfer::TransferStats s, t.Stats(id));
    latencies_ms.push_back((s.complete_ns - s.submit_ns) / 1e6);
    bytes += s.bytes;
    m.bytes_per_batch = s.bytes;
    m.ops_per_batch = s.operations;
    return absl::OkStatus();
  };
  // The clock is read every 8th batch: a read costs about as much as a 16 KiB batch's whole
  // bookkeeping, and it is the bench's cost, not the backend's.
  while (submitted < min_batches || submitted % 8 != 0 || MonotonicNanos() < stop) {
    if (inflight.size() == kDepth) RETURN_IF_ERROR(reap());
    ASSIGN_OR_RETURN(transfer::TransferId id, t.Submit(peer, copies, absl::StrCat("b", submitted)));
    inflight.push_back(id);
    ++submitted;
  }
  while (!inflight.empty()) RETURN_IF_ERROR(reap());
  const double seconds = (MonotonicNanos() - start) / 1e9;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double q) {
    return latencies_ms[static_cast<size_t>(q * (latencies_ms.size() - 1) + 0.5)];
  };
  m.gbps = bytes / seconds / 1e9;
  m.p50_ms = pct(0.5);
  m.p99_ms = pct(0.99);
  m.batches = submitted;
  return m;
}

double RunUcxPerftest(const std::string& tls, uint64_t size) {
  if (access("/usr/bin/ucx_perftest", X_OK) != 0) return -1;
  static int port_seq = 0;
  const int port = 20000 + (getpid() * 7 + port_seq++) % 20000;
  // Shared memory: 2 GiB a run (~0.07 s when cached; 1 GiB, 30 ms at 256 KiB, was short
  // enough for one scheduler tick to move the result by 10%).
  const uint64_t budget = tls.find("tcp") != std::string::npos ? (uint64_t{48} << 20)
                                                                : (uint64_t{2} << 30);
  const uint64_t iters = std::clamp<uint64_t>(budget / size, 5, 100000);
  // perftest's default warm-up is 10000 iterations: a tenth of the measured ones is enough to
  // fault in and map the buffers, and keeps 512 MiB messages within the bench's time.
  const uint64_t warmup = std::max<uint64_t>(2, iters / 10);
  const std::string env = absl::StrCat("UCX_TLS=", tls, " ");
  const auto [client_cpu, server_cpu] = SideCpus();
  const std::string server_pin =
      server_cpu >= 0 ? absl::StrCat("taskset -c ", server_cpu, " ") : std::string();
  const std::string client_pin =
      client_cpu >= 0 ? absl::StrCat("taskset -c ", client_cpu, " ") : std::string();
  // Over tcp a healthy run takes well under a second, but perftest's emulated puts sometimes
  // crawl at 20-40 MB/s (seconds per run): such a run is cut short and has no result, so that
  // it cannot stretch the bench, and the server does not outlive it.
  const bool tcp = tls.find("tcp") != std::string::npos;
  const std::string server_timeout = tcp ? "timeout 4 " : "timeout 60 ";
  const std::string client_timeout = tcp ? "timeout 2 " : "timeout 60 ";
  const std::string server = absl::StrCat(env, server_timeout, server_pin, "ucx_perftest -p ",
                                          port, " >/dev/null 2>&1 &");
  if (std::system(server.c_str()) != 0) return -1;
  double gbps = -1;
  for (int attempt = 0; attempt < 40 && gbps < 0; ++attempt) {
    usleep(50000);  // let the server listen
    const std::string client =
        absl::StrCat(env, client_timeout, client_pin, "ucx_perftest 127.0.0.1 -p ", port,
                     " -t ucp_put_bw -s ",
                     size, " -n ", iters, " -w ", warmup, " 2>&1");
    FILE* f = popen(client.c_str(), "r");
    if (f == nullptr) break;
    char line[512];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::strncmp(line, "Final:", 6) != 0) continue;
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      double mbps = 0;  // "overall" bandwidth column, MB/s of 2^20 bytes
      if (fields.size() >= 7 && absl::SimpleAtod(fields[6], &mbps)) gbps = mbps * 1048576 / 1e9;
    }
    const int rc = pclose(f);
    // Cut short by its timeout: it ran (the server was there), so it is not retried.
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 124) break;
  }
  return gbps;
}

double UcxPerftestGBps(const std::string& tls, uint64_t size) {
  static std::map<std::pair<std::string, uint64_t>, double> cache;
  if (auto it = cache.find({tls, size}); it != cache.end()) return it->second;
  return cache[{tls, size}] = RunUcxPerftest(tls, size);
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

bool Selected(const std::string& label, uint64_t block_bytes, uint32_t batch) {
  const char* env = std::getenv("PDSERVE_BENCH_TRANSFER_ONLY");
  if (env == nullptr || *env == 0) return true;
  for (absl::string_view entry : absl::StrSplit(env, ',', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(entry, '@');
    uint64_t kib = 0;
    uint32_t n = 0;
    if (f[0] != label) continue;
    if (f.size() > 1 && (!absl::SimpleAtoi(f[1], &kib) || kib != block_bytes / 1024)) continue;
    if (f.size() > 2 && (!absl::SimpleAtoi(f[2], &n) || n != batch)) continue;
    return true;
  }
  return false;
}

int CopyThreadsFor(uint64_t bytes) {
  // The local backend's own rule; a job it copies inline runs on one thread.
  return std::max(1, transfer::local::CopyEngine::SharesFor(
                         bytes, transfer::local::DefaultCopyThreads()));
}

bool StreamsBatch(uint64_t bytes) {
  return bytes > transfer::StreamMinBytes("PDSERVE_LOCAL_STREAM_BYTES");
}

}  // namespace pdserve::bench::transfer_rows
