// PrefillEngine: when each item's KV leaves (whole after the modelled prefill, or streamed in
// chunks as the modelled time passes) and how its transfers are waited for afterwards.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "prefill_worker/prefill_engine.h"

namespace pdserve::prefill {
namespace {

// A wait that ran out because the Prefill call had to answer, not because the transfer took the
// whole transfer timeout, may be this worker's doing (it resumed late after a stall): say so,
// naming the worker, so that neither an operator nor the fault benchmark blames only the peer.
std::string CutWaitNote(const std::string& worker_id, bool cut, absl::Duration wait,
                        const absl::Status& waited) {
  if (!cut || waited.code() != absl::StatusCode::kDeadlineExceeded) return "";
  return absl::StrCat(" (the wait was cut to ", absl::ToInt64Milliseconds(wait),
                      " ms by the Prefill call's deadline on prefill worker ", worker_id, ")");
}

void SleepUntil(absl::Time t) {
  if (absl::Duration left = t - absl::Now(); left > absl::ZeroDuration()) absl::SleepFor(left);
}

}  // namespace

void PrefillEngine::SubmitDeferred(const std::vector<PrefillItemSpec>& items,
                                   std::vector<Inflight>& inflight,
                                   std::vector<PrefillItemOutcome>& outcomes,
                                   const std::function<bool()>& abandoned,
                                   absl::Time answer_by) {
  for (Inflight& entry : inflight) {
    if (entry.deferred.empty()) continue;
    const PrefillItemSpec& item = items[entry.index];
    PrefillItemOutcome& out = outcomes[entry.index];
    if (out.status.ok()) out.status = EnsureDestination(item, entry, abandoned, answer_by);
    for (const Inflight::Chunk& c : entry.deferred) {
      if (!out.status.ok()) break;
      SubmitChunk(item, entry, out, c, abandoned);
    }
    entry.deferred.clear();
  }
}

void PrefillEngine::SubmitChunk(const PrefillItemSpec& item, Inflight& entry,
                                PrefillItemOutcome& out, const Inflight::Chunk& c,
                                const std::function<bool()>& abandoned) {
  if (out.transfer_start_us == 0) out.transfer_start_us = WallMicros();
  if (c.last) {
    SubmitLast(item, entry, out, c.first, c.count, abandoned);
    return;
  }
  absl::StatusOr<transfer::TransferId> id =
      SubmitUnlessStopped(item, entry, c.first, c.count, false, abandoned);
  if (!id.ok()) out.status = id.status();
}

void PrefillEngine::MakeKv(const PrefillItemSpec& item, Inflight& entry, PrefillItemOutcome& out,
                           int end, const std::function<bool()>& abandoned) {
  const int start = *entry.made;
  if (start > 0 && Stopped({item.request_id, item.decode_epoch}, abandoned)) {
    out.status = absl::CancelledError(
        absl::StrCat("request ", item.request_id, ": cancelled after ", start, " tokens"));
    return;
  }
  const int64_t t0 = MonotonicMicros();
  std::span<const int32_t> tokens(item.prompt.data() + start, static_cast<size_t>(end - start));
  // The whole prompt's size decides the threads, as it does for one call making all of it
  // (kLargeKvBytes): the chunks are one job made in pieces. The sum of each row is taken as it
  // is written, and the chunks' sums add up to the prompt's (KvChecksum's terms).
  const bool large =
      static_cast<int64_t>(item.prompt.size()) * cache_.config().KvBytesPerToken() >= kLargeKvBytes;
  uint64_t part = 0;
  const absl::Status s =
      WriteKvChunk(cache_, entry.own_blocks, tokens, start, large ? options_.attention.threads : 1,
                   entry.made_checksum.has_value() ? &part : nullptr);
  if (s.ok() && entry.made_checksum.has_value()) *entry.made_checksum += part;
  out.mock_us += MonotonicMicros() - t0;
  if (!s.ok()) {
    out.status = s;
    return;
  }
  entry.made = end;
  if (end == static_cast<int>(item.prompt.size())) out.kv_checksum = entry.made_checksum;
}

absl::Time PrefillEngine::SubmitModelled(const std::vector<PrefillItemSpec>& items,
                                         std::vector<Inflight>& inflight,
                                         std::vector<PrefillItemOutcome>& outcomes,
                                         absl::Time batch_start, int64_t batch_start_us,
                                         absl::Duration modelled,
                                         const std::function<bool()>& abandoned) {
  struct Chunk {
    absl::Duration at;  // modelled time at which its KV exists
    size_t entry, first, count;
    bool last;
  };
  const int block_size = cache_.config().block_size;
  std::vector<Chunk> chunks;
  for (size_t e = 0; e < inflight.size(); ++e) {
    const Inflight& entry = inflight[e];
    if (!outcomes[entry.index].status.ok()) continue;
    const size_t blocks = entry.own_blocks.size();
    const int len = static_cast<int>(items[entry.index].prompt.size());
    const size_t per_chunk =
        options_.stream_chunk_tokens > 0 && entry.window == nullptr
            ? static_cast<size_t>((options_.stream_chunk_tokens + block_size - 1) / block_size)
            : blocks;
    const int whole_len[] = {len};
    const double whole = options_.roofline->PrefillSeconds(whole_len);
    for (size_t first = 0; first < blocks; first += per_chunk) {
      const size_t count = std::min(per_chunk, blocks - first);
      const bool last = first + count == blocks;
      const int prefix[] = {static_cast<int>((first + count) * block_size)};
      const double f = last || whole <= 0 ? 1.0 : options_.roofline->PrefillSeconds(prefix) / whole;
      chunks.push_back({modelled * f, e, first, count, last});
    }
  }
  std::stable_sort(chunks.begin(), chunks.end(),
                   [](const Chunk& a, const Chunk& b) { return a.at < b.at; });
  int64_t end_us = 0;  // the modelled forward pass ended: every item's prefill with it
  // K/V of items made here (Inflight::made), chunk by chunk in the chunks' order: chunks[made]
  // is the first whose K/V may not exist yet.
  absl::Time made_at = absl::InfinitePast();
  absl::Duration make_took = absl::ZeroDuration();  // the last chunk's making
  size_t made = 0;
  auto make = [&](const Chunk& c) {
    Inflight& entry = inflight[c.entry];
    PrefillItemOutcome& out = outcomes[entry.index];
    const int len = static_cast<int>(items[entry.index].prompt.size());
    const int end = std::min(len, static_cast<int>((c.first + c.count) * block_size));
    if (!out.status.ok() || !entry.made.has_value() || *entry.made >= end) return;
    const absl::Time t0 = absl::Now();
    MakeKv(items[entry.index], entry, out, end, abandoned);
    made_at = absl::Now();
    make_took = made_at - t0;
  };
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    Inflight& entry = inflight[c.entry];
    PrefillItemOutcome& out = outcomes[entry.index];
    while (made <= i) make(chunks[made++]);
    // The mock's work goes at the host's pace, not the model's: later chunks are made while
    // this one is not due yet, as long as making one more still lets this one leave on time.
    // (Made only when due, the K/V of a 2-core host fell behind: the copies of the chunks
    // before took its cores meanwhile.) A host too slow for the model shows as the batch's
    // overrun.
    while (made < chunks.size() && absl::Now() + make_took <= batch_start + c.at) {
      make(chunks[made++]);
    }
    SleepUntil(batch_start + c.at);
    if (c.at >= modelled && end_us == 0) end_us = WallMicros();
    if (!out.status.ok()) continue;  // an earlier chunk of it failed
    // No destination yet: this chunk and the item's later ones leave after the batch, in
    // order (SubmitDeferred), and the other items' chunks do not wait for it.
    if (!entry.deferred.empty() || !DestinationReady(items[entry.index], entry)) {
      entry.deferred.push_back({c.first, c.count, c.last});
      continue;
    }
    if (absl::Status d = EnsureDestination(items[entry.index], entry, abandoned); !d.ok()) {
      out.status = d;
      continue;
    }
    SubmitChunk(items[entry.index], entry, out, {c.first, c.count, c.last}, abandoned);
  }
  SleepUntil(batch_start + modelled);
  if (end_us == 0) end_us = WallMicros();
  for (Inflight& entry : inflight) {
    PrefillItemOutcome& out = outcomes[entry.index];
    out.prefill_start_us = batch_start_us;
    out.prefill_end_us = end_us;
    out.modelled_us = absl::ToInt64Microseconds(modelled);
  }
  return made_at;
}

void PrefillEngine::SubmitLast(const PrefillItemSpec& item, Inflight& entry,
                               PrefillItemOutcome& out, size_t first, size_t count,
                               const std::function<bool()>& abandoned) {
  // No wait for the earlier chunks: the transport delivers the notification only after every
  // batch submitted to that peer before it landed, and never if one of them failed
  // (kv_transport.h, Ordering).
  absl::StatusOr<transfer::TransferId> id =
      SubmitUnlessStopped(item, entry, first, count, /*notify=*/true, abandoned);
  if (!id.ok()) out.status = id.status();
}

absl::Status PrefillEngine::WaitTransfers(Inflight& entry, PrefillItemOutcome& out,
                                          absl::Duration wait) {
  const absl::Time deadline = SteadyNow() + wait;
  bool first = true;
  while (!entry.transfers.empty()) {
    const transfer::TransferId id = entry.transfers.front();
    // The first wait gets the whole budget as given (a one-batch item waits exactly `wait`).
    absl::Status waited = transport_.Wait(
        id, first ? wait : std::max(absl::ZeroDuration(), deadline - SteadyNow()));
    first = false;
    // DeadlineExceeded leaves the batch in flight: it stays pending.
    if (waited.code() == absl::StatusCode::kDeadlineExceeded) return waited;
    entry.transfers.erase(entry.transfers.begin());
    if (!waited.ok()) return waited;
    out.transfer_batches++;
    // Stats may be gone once Wait returned a final status (FinishItems counts the bytes then).
    if (absl::StatusOr<transfer::TransferStats> stats = transport_.Stats(id); stats.ok()) {
      out.kv_bytes += stats->bytes;
      out.transfer_ops += stats->operations;
      out.transfer_copy_wait_us += stats->copy_wait_ns / 1000;
      // The union of the batches' [submit, complete] intervals (submitted in order): batches
      // in flight together count once.
      const int64_t from = std::max(stats->submit_ns, entry.busy_until_ns);
      if (stats->complete_ns > from) out.transfer_busy_us += (stats->complete_ns - from) / 1000;
      entry.busy_until_ns = std::max(entry.busy_until_ns, stats->complete_ns);
    }
  }
  return absl::OkStatus();
}

std::pair<uint64_t, uint64_t> PrefillEngine::FinishItems(
    const std::vector<PrefillItemSpec>& items, std::vector<Inflight>& inflight,
    std::vector<PrefillItemOutcome>& outcomes, absl::Time answer_by) {
  auto log = ComponentLogger("prefill");
  uint64_t bytes = 0, done = 0;
  for (Inflight& entry : inflight) {
    PrefillItemOutcome& out = outcomes[entry.index];
    const PrefillItemSpec& item = items[entry.index];
    const ItemFence::Key key{item.request_id, item.decode_epoch};
    const absl::Duration left = answer_by - absl::Now();
    const absl::Duration wait = std::clamp(left, absl::ZeroDuration(), options_.transfer_timeout);
    const bool cut_by_call_deadline = left < options_.transfer_timeout;
    const absl::Time deadline = absl::Now() + wait;
    const bool had_transfers = !entry.transfers.empty();
    absl::Status waited = WaitTransfers(entry, out, wait);
    // After a failed batch the others of the item still run: wait for them too, so that the
    // fence hears of the item's end only when nothing more can land.
    while (!waited.ok() && waited.code() != absl::StatusCode::kDeadlineExceeded &&
           !entry.transfers.empty()) {
      absl::Status next =
          WaitTransfers(entry, out, std::max(absl::ZeroDuration(), deadline - absl::Now()));
      if (next.code() == absl::StatusCode::kDeadlineExceeded) {
        if (out.status.ok()) out.status = waited;
        waited = next;
      }
    }
    if (had_transfers) out.transfer_end_us = WallMicros();
    const bool stranded = !entry.transfers.empty();
    out.transfer_in_flight = stranded;
    if (!waited.ok() && (out.status.ok() || stranded)) {
      out.status = absl::Status(
          waited.code(),
          absl::StrCat("request ", out.request_id, ": KV transfer to ", item.decode_worker,
                       " failed: ", waited.message(),
                       CutWaitNote(options_.worker_id, cut_by_call_deadline, wait, waited)));
    }
    if (out.status.ok()) {
      if (out.kv_bytes == 0 && !options_.direct_write) {
        // Zero-copy: the bytes written in place (a copy would have moved the same).
        out.kv_bytes = entry.own_blocks.size() *
                       static_cast<uint64_t>(cache_.geometry().block_bytes());
      }
      bytes += out.kv_bytes;
      done++;
    }
    fence_.Finish(key, entry.submitted, out.status.ok(), stranded);
    if (!out.status.ok()) log->warn("{}", out.status.ToString());
    if (WritesInPlace()) {
      // The blocks are the decode side's reservation: it frees them.
    } else if (stranded) {
      // They still read our blocks and may still write the decode worker's: neither side may
      // reuse them until they end (ReapStranded).
      absl::MutexLock lock(&stranded_mu_);
      stranded_.push_back(Stranded{.key = key,
                                   .transfers = std::move(entry.transfers),
                                   .own_blocks = std::move(entry.own_blocks)});
    } else if (absl::Status freed = cache_.allocator().Free(entry.own_blocks); !freed.ok()) {
      log->error("request {}: freeing prefill blocks failed: {}", out.request_id, freed.ToString());
    }
  }
  return {bytes, done};
}

}  // namespace pdserve::prefill
