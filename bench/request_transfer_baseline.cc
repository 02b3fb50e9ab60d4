#include "bench/request_transfer_baseline.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "bench/transfer_pair.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace pdserve::bench {
namespace {

// Sets UCX_TLS for this scope (unset when `value` is empty) and puts the old value back.
class ScopedUcxTls {
 public:
  explicit ScopedUcxTls(const std::string& value) {
    if (const char* old = std::getenv("UCX_TLS"); old != nullptr) old_ = old;
    if (value.empty()) {
      unsetenv("UCX_TLS");
    } else {
      setenv("UCX_TLS", value.c_str(), 1);
    }
  }
  ~ScopedUcxTls() {
    if (old_.has_value()) {
      setenv("UCX_TLS", old_->c_str(), 1);
    } else {
      unsetenv("UCX_TLS");
    }
  }
  ScopedUcxTls(const ScopedUcxTls&) = delete;
  ScopedUcxTls& operator=(const ScopedUcxTls&) = delete;

 private:
  std::optional<std::string> old_;
};

absl::StatusOr<BackendSpec> ParseBackend(const std::string& backend) {
  if (backend == "local" || backend == "ucx") return BackendSpec{backend, ""};
  if (backend.rfind("ucx-", 0) == 0) return BackendSpec{"ucx", backend.substr(4)};
  return absl::InvalidArgumentError(
      absl::StrCat("no transfer baseline for backend '", backend, "'"));
}

struct Timings {
  std::vector<double> ms;
  std::vector<double> wait_share;  // copy wait / transfer time, per measured transfer
  uint64_t bytes = 0;
  uint32_t ops = 0;
};

// One transfer after another, timed the way the prefill worker times a request's transfer;
// `between` runs before each one, outside the timing.
template <typename Between>
absl::StatusOr<Timings> TimeTransfers(transfer::KvTransport& t, transfer::PeerId peer,
                                      const std::vector<transfer::BlockCopy>& copies,
                                      double min_seconds, int min_transfers, Between between) {
  const absl::Duration kDeadline = absl::Seconds(60);
  Timings out;
  const int64_t stop = MonotonicNanos() + static_cast<int64_t>(min_seconds * 1e9);
  for (int i = 0; i <= min_transfers || MonotonicNanos() < stop; ++i) {
    between();
    const int64_t start = MonotonicNanos();
    ASSIGN_OR_RETURN(transfer::TransferId id, t.Submit(peer, copies, absl::StrCat("rq", i)));
    RETURN_IF_ERROR(t.Wait(id, kDeadline));
    const int64_t end = MonotonicNanos();
    double wait_share = 0;
    if (absl::StatusOr<transfer::TransferStats> s = t.Stats(id); s.ok()) {
      out.bytes = s->bytes;
      out.ops = s->operations;
      if (end > start) wait_share = static_cast<double>(s->copy_wait_ns) / (end - start);
    }
    if (i > 0) {  // the first one warms up
      out.ms.push_back((end - start) / 1e6);
      out.wait_share.push_back(wait_share);
    }
  }
  std::sort(out.ms.begin(), out.ms.end());
  std::sort(out.wait_share.begin(), out.wait_share.end());
  return out;
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / v.size();
}

// The median of a sorted vector (0 when empty).
double SortedMedian(const std::vector<double>& v) {
  const size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// mean, p50, min and transfers from cold_ms (sorted).
void SetColdFigures(RequestTransferBaseline& b) {
  const std::vector<double>& v = b.cold_ms;
  const size_t n = v.size();
  b.transfers = static_cast<int>(n);
  if (n == 0) return;
  b.mean_ms = Mean(v);
  b.p50_ms = SortedMedian(v);
  b.min_ms = v.front();
}

// Twice the last-level cache of this host (32 MiB here), written once per cold transfer.
constexpr size_t kFlushBytes = size_t{64} << 20;

absl::StatusOr<RequestTransferBaseline> MeasureOne(transfer::KvTransport& t, transfer::PeerId peer,
                                                   uint32_t blocks, double min_seconds,
                                                   int min_transfers) {
  const std::vector<transfer::BlockCopy> copies = MakeCopies(blocks);
  ASSIGN_OR_RETURN(Timings warm,
                   TimeTransfers(t, peer, copies, min_seconds, min_transfers, [] {}));
  std::vector<unsigned char> flush(kFlushBytes);
  unsigned char round = 0;
  ASSIGN_OR_RETURN(Timings cold,
                   TimeTransfers(t, peer, copies, min_seconds, min_transfers, [&] {
                     std::memset(flush.data(), ++round, flush.size());
                     absl::SleepFor(absl::Milliseconds(3));  // copy threads park, as between requests
                   }));
  RequestTransferBaseline out;
  out.blocks = blocks;
  out.bytes = cold.bytes;
  out.ops = cold.ops;
  out.cold_ms = std::move(cold.ms);
  out.cold_wait_share = std::move(cold.wait_share);
  SetColdFigures(out);
  out.warm_mean_ms = Mean(warm.ms);
  return out;
}

}  // namespace

double RequestTransferBaseline::WaitShare() const {
  return SortedMedian(cold_wait_share);
}

void MergeBaseline(RequestTransferBaseline& into, const RequestTransferBaseline& more) {
  const int before = into.transfers;
  into.warm_mean_ms = before + more.transfers > 0
                          ? (into.warm_mean_ms * before + more.warm_mean_ms * more.transfers) /
                                (before + more.transfers)
                          : 0;
  into.cold_ms.insert(into.cold_ms.end(), more.cold_ms.begin(), more.cold_ms.end());
  std::sort(into.cold_ms.begin(), into.cold_ms.end());
  into.cold_wait_share.insert(into.cold_wait_share.end(), more.cold_wait_share.begin(),
                              more.cold_wait_share.end());
  std::sort(into.cold_wait_share.begin(), into.cold_wait_share.end());
  SetColdFigures(into);
  into.rounds += more.rounds;
}

absl::StatusOr<std::vector<RequestTransferBaseline>> MeasureRequestTransfers(
    const std::string& backend, const std::string& preset, const std::string& layout_name,
    const std::vector<int>& input_lens, double min_seconds, int min_transfers) {
  ASSIGN_OR_RETURN(BackendSpec b, ParseBackend(backend));
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(layout_name));
  ASSIGN_OR_RETURN(ModelConfig preset_config, PresetConfig(preset));
  const Shape shape{preset, preset_config.block_size};
  ASSIGN_OR_RETURN(ModelConfig config, ShapeConfig(shape));
  uint32_t pool_blocks = 1;
  for (int len : input_lens) {
    pool_blocks = std::max(pool_blocks, static_cast<uint32_t>(config.BlocksForTokens(len)));
  }
  ScopedUcxTls tls(b.tls);
  transfer::TransportOptions topts;
  topts.backend = b.backend;
  topts.agent_name = "bench-request-sender";
  // As in `pdserve bench transfer`: ucx's two busy sides on two CPUs.
  const bool pin = ProgressThreadBackend(b.backend);
  PinThread pinned(pin ? SideCpus().first : -1);
  ASSIGN_OR_RETURN(auto receiver,
                   ReceiverProcess::Start(
                       ReceiverSpec(b, shape, layout, pool_blocks, pin ? SideCpus().second : -1)));
  ASSIGN_OR_RETURN(auto cache, transfer::CreatePoolCache(topts, config, pool_blocks, layout));
  // Touched once, as a worker's pool is after its first requests.
  std::memset(cache->base(), 0x5a, cache->memory().size());
  ASSIGN_OR_RETURN(auto t, transfer::MakeKvTransport(topts));
  RETURN_IF_ERROR(t->RegisterPool(*cache));
  ASSIGN_OR_RETURN(transfer::PeerId peer, t->LoadPeer(receiver->descriptor()));
  std::vector<RequestTransferBaseline> rows;
  for (int len : input_lens) {
    const auto blocks = static_cast<uint32_t>(config.BlocksForTokens(len));
    ASSIGN_OR_RETURN(RequestTransferBaseline row,
                     MeasureOne(*t, peer, blocks, min_seconds, min_transfers));
    row.backend = backend;
    row.input_len = len;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace pdserve::bench
