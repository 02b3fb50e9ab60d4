#include "prefill_worker/prefill_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"

namespace pdserve::prefill {

PrefillEngine::PrefillEngine(KvCache& cache, transfer::KvTransport& transport,
                             PrefillEngineOptions options)
    : cache_(cache), transport_(transport), options_(std::move(options)) {}

absl::Status PrefillEngine::AddPeer(const std::string& worker_id, const std::string& descriptor) {
  absl::StatusOr<transfer::PeerId> peer = transport_.LoadPeer(descriptor);
  if (!peer.ok()) {
    return absl::Status(peer.status().code(), absl::StrCat("loading decode worker ", worker_id,
                                                           "'s pool: ", peer.status().message()));
  }
  std::optional<transfer::PeerId> old;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = peers_.find(worker_id); it != peers_.end()) old = it->second;
    peers_[worker_id] = *peer;
  }
  if (old.has_value()) (void)transport_.RemovePeer(*old);
  ComponentLogger("prefill")->info("decode peer {} loaded", worker_id);
  return absl::OkStatus();
}

absl::Status PrefillEngine::RemovePeer(const std::string& worker_id) {
  transfer::PeerId peer;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(worker_id);
    if (it == peers_.end()) return absl::OkStatus();
    peer = it->second;
    peers_.erase(it);
  }
  ComponentLogger("prefill")->info("decode peer {} removed", worker_id);
  return transport_.RemovePeer(peer);
}

PrefillCounters PrefillEngine::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

absl::Status PrefillEngine::Compute(const PrefillItemSpec& item,
                                    const std::vector<BlockId>& own_blocks) {
  const int len = static_cast<int>(item.prompt.size());
  const int chunk = std::max(1, options_.chunk_tokens);
  for (int start = 0; start < len; start += chunk) {
    const int n = std::min(chunk, len - start);
    std::span<const int32_t> tokens(item.prompt.data() + start, static_cast<size_t>(n));
    absl::Status s =
        options_.compute_chunk
            ? options_.compute_chunk(own_blocks, tokens, start)
            : PrefillAttention(cache_, own_blocks, tokens, start, {}, options_.attention);
    if (!s.ok()) return s;
  }
  if (options_.after_compute) return options_.after_compute(own_blocks);
  return absl::OkStatus();
}

std::vector<PrefillItemOutcome> PrefillEngine::Run(const std::vector<PrefillItemSpec>& items) {
  absl::MutexLock run_lock(&run_mu_);
  {
    absl::MutexLock lock(&mu_);
    counters_.running = static_cast<uint32_t>(items.size());
  }
  auto log = ComponentLogger("prefill");
  const ModelConfig& config = cache_.config();
  std::vector<PrefillItemOutcome> outcomes(items.size());
  std::vector<Inflight> inflight;
  const absl::Time batch_start = absl::Now();
  const int64_t batch_start_us = WallMicros();
  std::vector<int> lens;
  for (size_t i = 0; i < items.size(); ++i) {
    const PrefillItemSpec& item = items[i];
    PrefillItemOutcome& out = outcomes[i];
    out.request_id = item.request_id;
    const auto blocks = static_cast<uint32_t>(config.BlocksForTokens(item.prompt.size()));
    if (item.prompt.empty() || item.decode_blocks.size() != blocks) {
      out.status = absl::InvalidArgumentError(absl::StrCat(
          "request ", item.request_id, ": prompt of ", item.prompt.size(), " tokens needs ",
          blocks, " blocks, got ", item.decode_blocks.size(), " destination blocks"));
      continue;
    }
    std::optional<transfer::PeerId> peer;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = peers_.find(item.decode_worker); it != peers_.end()) peer = it->second;
    }
    if (!peer.has_value()) {
      out.status = absl::UnavailableError(absl::StrCat("request ", item.request_id,
                                                       ": decode worker ", item.decode_worker,
                                                       " is not a known transfer peer"));
      continue;
    }
    absl::StatusOr<std::vector<BlockId>> own = cache_.allocator().Allocate(blocks);
    if (!own.ok()) {
      out.status = absl::ResourceExhaustedError(absl::StrCat(
          "request ", item.request_id, ": prefill pool: ", own.status().message()));
      continue;
    }
    out.prefill_start_us = WallMicros();
    const int64_t compute_start = MonotonicMicros();
    out.status = Compute(item, *own);
    out.mock_us = MonotonicMicros() - compute_start;
    out.prefill_end_us = WallMicros();
    lens.push_back(static_cast<int>(item.prompt.size()));
    Inflight entry{.index = i, .own_blocks = *own, .transfer = std::nullopt};
    if (out.status.ok()) {
      // In roofline mode the copy waits for the modelled device time of the whole batch (below).
      if (!options_.roofline.has_value()) {
        std::vector<transfer::BlockCopy> copies(blocks);
        for (uint32_t b = 0; b < blocks; ++b) copies[b] = {(*own)[b], item.decode_blocks[b]};
        out.transfer_start_us = WallMicros();
        absl::StatusOr<transfer::TransferId> id =
            transport_.Submit(*peer, copies, item.request_id);
        if (id.ok()) {
          entry.transfer = *id;
        } else {
          out.status = id.status();
        }
      }
    }
    inflight.push_back(std::move(entry));
  }
  if (options_.min_batch > absl::ZeroDuration()) {
    if (absl::Duration left = options_.min_batch - (absl::Now() - batch_start);
        left > absl::ZeroDuration()) {
      absl::SleepFor(left);
    }
  }
  const absl::Duration work = absl::Now() - batch_start;
  absl::Duration modelled = absl::ZeroDuration();
  if (options_.roofline.has_value()) {
    modelled = absl::Seconds(options_.roofline->PrefillSeconds(lens));
  }
  {
    absl::MutexLock lock(&mu_);
    PrefillCounters& c = counters_;
    c.batches++;
    c.work_us += static_cast<uint64_t>(absl::ToInt64Microseconds(work));
    c.modelled_us += static_cast<uint64_t>(absl::ToInt64Microseconds(modelled));
    for (const PrefillItemOutcome& out : outcomes) c.mock_us += static_cast<uint64_t>(out.mock_us);
    if (modelled > absl::ZeroDuration() && work > modelled) {
      c.overrun_batches++;
      c.overrun_us += static_cast<uint64_t>(absl::ToInt64Microseconds(work - modelled));
    }
  }
  if (options_.roofline.has_value()) {
    // Simulated device time of the batch's forward pass; every item ends with the batch.
    if (absl::Duration left = modelled - (absl::Now() - batch_start); left > absl::ZeroDuration()) {
      absl::SleepFor(left);
    }
    const int64_t end_us = WallMicros();
    for (Inflight& entry : inflight) {
      PrefillItemOutcome& out = outcomes[entry.index];
      if (!out.status.ok()) continue;
      out.prefill_start_us = batch_start_us;
      out.prefill_end_us = end_us;
      out.modelled_us = absl::ToInt64Microseconds(modelled);
      const PrefillItemSpec& item = items[entry.index];
      std::vector<transfer::BlockCopy> copies(entry.own_blocks.size());
      for (size_t b = 0; b < copies.size(); ++b) {
        copies[b] = {entry.own_blocks[b], item.decode_blocks[b]};
      }
      std::optional<transfer::PeerId> peer;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = peers_.find(item.decode_worker); it != peers_.end()) peer = it->second;
      }
      if (!peer.has_value()) {
        out.status = absl::UnavailableError(absl::StrCat(
            "request ", item.request_id, ": decode worker ", item.decode_worker, " left"));
        continue;
      }
      out.transfer_start_us = WallMicros();
      absl::StatusOr<transfer::TransferId> id = transport_.Submit(*peer, copies, item.request_id);
      if (id.ok()) {
        entry.transfer = *id;
      } else {
        out.status = id.status();
      }
    }
  }
  uint64_t bytes = 0, done = 0;
  for (Inflight& entry : inflight) {
    PrefillItemOutcome& out = outcomes[entry.index];
    if (entry.transfer.has_value()) {
      absl::Status waited = transport_.Wait(*entry.transfer, options_.transfer_timeout);
      out.transfer_end_us = WallMicros();
      if (waited.ok()) {
        // Stats may be gone once Wait returned a final status: then count the bytes ourselves.
        if (absl::StatusOr<transfer::TransferStats> stats = transport_.Stats(*entry.transfer);
            stats.ok()) {
          out.kv_bytes = stats->bytes;
          out.transfer_ops = stats->operations;
        } else {
          out.kv_bytes = entry.own_blocks.size() *
                         static_cast<uint64_t>(cache_.geometry().block_bytes());
        }
        bytes += out.kv_bytes;
        done++;
      } else {
        out.status = absl::Status(waited.code(), absl::StrCat("request ", out.request_id,
                                                              ": KV transfer to ",
                                                              items[entry.index].decode_worker,
                                                              " failed: ", waited.message()));
      }
    }
    if (!out.status.ok()) log->warn("{}", out.status.ToString());
    if (absl::Status freed = cache_.allocator().Free(entry.own_blocks); !freed.ok()) {
      log->error("request {}: freeing prefill blocks failed: {}", out.request_id, freed.ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  counters_.running = 0;
  counters_.requests += done;
  counters_.kv_bytes += bytes;
  return outcomes;
}

}  // namespace pdserve::prefill
