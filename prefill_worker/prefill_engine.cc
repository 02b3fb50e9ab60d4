#include "prefill_worker/prefill_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "transfer/kv_notification.h"

namespace pdserve::prefill {

PrefillEngine::PrefillEngine(KvCache& cache, transfer::KvTransport& transport,
                             PrefillEngineOptions options)
    : cache_(cache), transport_(transport), options_(std::move(options)) {}

absl::Status PrefillEngine::AddPeer(const std::string& worker_id, const std::string& descriptor,
                                    uint32_t num_blocks) {
  absl::StatusOr<transfer::PeerId> peer = transport_.LoadPeer(descriptor);
  if (!peer.ok()) {
    return absl::Status(peer.status().code(), absl::StrCat("loading decode worker ", worker_id,
                                                           "'s pool: ", peer.status().message()));
  }
  std::optional<transfer::PeerId> old;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = peers_.find(worker_id); it != peers_.end()) old = it->second.id;
    peers_[worker_id] = Peer{.id = *peer, .num_blocks = num_blocks, .descriptor = descriptor};
  }
  if (old.has_value()) (void)transport_.RemovePeer(*old);
  ComponentLogger("prefill")->info("decode peer {} loaded", worker_id);
  return absl::OkStatus();
}

absl::Status PrefillEngine::RemovePeer(const std::string& worker_id,
                                       const std::string& descriptor) {
  transfer::PeerId peer;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(worker_id);
    if (it == peers_.end()) return absl::OkStatus();
    // The router removes a dropped instance after the lock that dropped it: a restart under the
    // same id can register and be loaded first, and removing by id alone then cut the new
    // instance off for good ("not a known transfer peer" for every request placed on it).
    if (!descriptor.empty() && it->second.descriptor != descriptor) {
      ComponentLogger("prefill")->info("decode peer {}: kept (a newer instance than the one removed)",
                                       worker_id);
      return absl::OkStatus();
    }
    peer = it->second.id;
    peers_.erase(it);
  }
  ComponentLogger("prefill")->info("decode peer {} removed", worker_id);
  return transport_.RemovePeer(peer);
}

PrefillCounters PrefillEngine::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

bool PrefillEngine::Stopped(const ItemFence::Key& key, const std::function<bool()>& abandoned) {
  if (abandoned && abandoned()) (void)fence_.Cancel(key, absl::ZeroDuration());
  return fence_.Cancelled(key);
}

std::vector<CancelOutcome> PrefillEngine::Cancel(const std::vector<ItemFence::Key>& items,
                                                 absl::Duration wait) {
  const absl::Time deadline = SteadyNow() + wait;
  std::vector<CancelOutcome> out;
  out.reserve(items.size());
  for (const ItemFence::Key& key : items) {
    CancelOutcome outcome;
    while (true) {
      // A stranded transfer (its Run answered while it was in flight) ends in the transport, but
      // the fence hears of it only when it is reaped, which each Run does first. A worker that
      // gets no more Runs (draining, or the router stopped choosing it) would then answer "in
      // flight" for a transfer that ended long ago, and the router would hold the batch for the
      // whole wait: reap here too.
      ReapEndedTransfers();
      const absl::Duration left = std::max(absl::ZeroDuration(), deadline - SteadyNow());
      outcome = fence_.Cancel(key, std::min(left, absl::Milliseconds(20)));
      if (outcome != CancelOutcome::kInFlight || left == absl::ZeroDuration()) break;
    }
    out.push_back(outcome);
  }
  return out;
}

absl::StatusOr<transfer::TransferId> PrefillEngine::SubmitUnlessStopped(
    const PrefillItemSpec& item, Inflight& entry, size_t first, size_t count, bool notify,
    const std::function<bool()>& abandoned) {
  const ItemFence::Key key{item.request_id, item.decode_epoch};
  std::optional<transfer::PeerId> peer;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = peers_.find(item.decode_worker); it != peers_.end()) peer = it->second.id;
  }
  if (!peer.has_value()) {
    return absl::UnavailableError(absl::StrCat("request ", item.request_id, ": decode worker ",
                                               item.decode_worker, " is not a transfer peer"));
  }
  if (entry.window != nullptr) {
    // Zero-copy: the bytes are in place; only the notification is left to send (no chunks).
    if (!notify) return absl::InternalError("zero-copy items are announced whole");
    absl::StatusOr<transfer::TransferId> id =
        entry.window->Announce(transfer::KvNotification(item.request_id, item.decode_epoch));
    if (id.ok()) {
      entry.transfers.push_back(*id);
      return id;
    }
    return absl::Status(id.status().code(),
                        absl::StrCat("request ", item.request_id, ": announcing its KV to ",
                                     item.decode_worker, " failed: ", id.status().message()));
  }
  if (entry.decode_blocks.empty()) {
    return absl::InternalError(absl::StrCat("request ", item.request_id,
                                            ": submitted before its destination was taken"));
  }
  if (!entry.submitted) {
    // BeginSubmit and Cancel exclude each other: once it says yes, a Cancel waits for the end.
    if (Stopped(key, abandoned) || !fence_.BeginSubmit(key)) {
      return absl::CancelledError(absl::StrCat("request ", item.request_id,
                                               ": cancelled before its KV transfer"));
    }
    entry.submitted = true;
  } else if (abandoned && abandoned()) {
    // A later chunk of a streamed item: the caller left, send no more (the item fails, and the
    // chunks already submitted are waited for before the fence hears of its end).
    return absl::CancelledError(absl::StrCat("request ", item.request_id,
                                             ": cancelled during its KV transfer"));
  }
  std::vector<transfer::BlockCopy> copies(count);
  for (size_t b = 0; b < count; ++b) {
    copies[b] = {entry.own_blocks[first + b], entry.decode_blocks[first + b]};
  }
  absl::StatusOr<transfer::TransferId> id = transport_.Submit(
      *peer, copies,
      notify ? transfer::KvNotification(item.request_id, item.decode_epoch) : std::string());
  if (id.ok()) {
    entry.transfers.push_back(*id);
    return id;
  }
  // The transport knows only its peer number ("unknown or removed KV peer 3", when the peer was
  // removed since the lookup above): say which request and which decode worker.
  return absl::Status(id.status().code(),
                      absl::StrCat("request ", item.request_id, ": KV transfer to ",
                                   item.decode_worker, " failed: ", id.status().message()));
}

void PrefillEngine::ReapEndedTransfers() { ReapStranded(); }

void PrefillEngine::ReapStranded() {
  absl::MutexLock lock(&stranded_mu_);
  for (size_t i = 0; i < stranded_.size();) {
    Stranded& s = stranded_[i];
    // NotFound: reaped elsewhere, so it ended; every other answer is final too.
    std::erase_if(s.transfers, [this, &s](transfer::TransferId id) {
      absl::StatusOr<bool> done = transport_.Poll(id);
      if (!done.ok()) s.failed = true;
      return !done.ok() || *done;
    });
    if (!s.transfers.empty()) {
      ++i;
      continue;
    }
    fence_.Finish(s.key, /*submitted=*/true, !s.failed, /*in_flight=*/false);
    (void)cache_.allocator().Free(s.own_blocks);
    stranded_.erase(stranded_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

absl::Status PrefillEngine::Compute(const PrefillItemSpec& item,
                                    const std::vector<BlockId>& own_blocks,
                                    const transfer::KvWriteWindow* window,
                                    const std::function<bool()>& abandoned,
                                    const std::function<absl::Status(int)>& chunk_done) {
  const int len = static_cast<int>(item.prompt.size());
  // Roofline with the CPU kernels only writes K/V: one call per prompt, so that a large
  // prompt's generation may use every kernel thread (kvcache decides by its bytes); cancellation
  // is still checked before and after it.
  const bool generate_only = options_.roofline.has_value() && !options_.compute_chunk;
  int chunk = generate_only ? std::max(1, len) : std::max(1, options_.chunk_tokens);
  if (chunk_done) chunk = StreamChunkTokens();  // each chunk's KV leaves when its kernels end
  const ItemFence::Key key{item.request_id, item.decode_epoch};
  for (int start = 0; start < len; start += chunk) {
    // A direct write counts as submitted (Cancel waits for it), so only its caller leaving
    // stops it; the partial KV is never announced and the item fails.
    if (start > 0 && (Stopped(key, abandoned) ||
                      (WritesInPlace() && abandoned && abandoned()))) {
      return absl::CancelledError(
          absl::StrCat("request ", item.request_id, ": cancelled after ", start, " tokens"));
    }
    const int n = std::min(chunk, len - start);
    std::span<const int32_t> tokens(item.prompt.data() + start, static_cast<size_t>(n));
    absl::Status s;
    auto kernels = [&](const KvCache& pool, std::span<const BlockId> blocks) {
      return options_.compute_chunk
                 ? options_.compute_chunk(pool, blocks, tokens, start)
                 : PrefillAttention(pool, blocks, tokens, start, {}, options_.attention);
    };
    s = window != nullptr ? window->Use(own_blocks, kernels) : kernels(cache_, own_blocks);
    if (!s.ok()) return s;
    if (chunk_done && start + n < len) {
      if (s = chunk_done(start + n); !s.ok()) return s;
    }
  }
  if (options_.after_compute && window == nullptr) return options_.after_compute(own_blocks);
  return absl::OkStatus();
}

bool PrefillEngine::ClaimsChecksum(const PrefillItemSpec& item) const {
  if (options_.claim_checksum_bytes == 0 || !options_.roofline.has_value() ||
      options_.compute_chunk || cache_.memory().kind() != MemoryKind::kHost) {
    return false;
  }
  return item.prompt.size() * cache_.config().KvBytesPerToken() >= options_.claim_checksum_bytes;
}

std::vector<PrefillItemOutcome> PrefillEngine::Run(const std::vector<PrefillItemSpec>& items,
                                                   const std::function<bool()>& abandoned,
                                                   absl::Time answer_by) {
  auto log = ComponentLogger("prefill");
  std::vector<PrefillItemOutcome> outcomes(items.size());
  // Admitted before the batch waits for the previous one, so that a Cancel arriving meanwhile
  // finds the item and stops it.
  std::vector<bool> admitted(items.size(), false);
  for (size_t i = 0; i < items.size(); ++i) {
    outcomes[i].request_id = items[i].request_id;
    outcomes[i].status = Validate(items[i]);
    if (outcomes[i].status.ok()) {
      outcomes[i].status = fence_.Admit({items[i].request_id, items[i].decode_epoch});
    }
    admitted[i] = outcomes[i].status.ok();
    if (!admitted[i]) log->warn("refused: {}", outcomes[i].status.ToString());
  }
  // Kernels that write the decode worker's blocks in place need them first; a copy needs them
  // only for its transfer (SubmitUnlessStopped takes them then). Taken before the batch holds
  // the engine (and a colocated worker's device), so that the wait stalls nobody else.
  std::vector<std::vector<BlockId>> destinations(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (!admitted[i] || (items[i].destination_follows && !WritesInPlace())) continue;
    absl::StatusOr<std::vector<BlockId>> d = TakeDestination(items[i], abandoned);
    if (d.ok()) {
      destinations[i] = *std::move(d);
    } else {
      outcomes[i].status = d.status();
    }
  }
  ReapStranded();
  {
    absl::MutexLock lock(&mu_);
    counters_.running += static_cast<uint32_t>(items.size());
  }
  run_mu_.Lock();
  // A colocated worker's device runs this batch, modelled time included, or a decode step.
  std::optional<SharedDevice::Turn> turn;
  if (options_.device) turn.emplace(*options_.device);
  std::vector<Inflight> inflight;
  const absl::Time batch_start = absl::Now();
  const int64_t batch_start_us = WallMicros();
  std::vector<int> lens;
  for (size_t i = 0; i < items.size(); ++i) {
    const PrefillItemSpec& item = items[i];
    PrefillItemOutcome& out = outcomes[i];
    if (!admitted[i] || !out.status.ok()) continue;
    if (Stopped({item.request_id, item.decode_epoch}, abandoned)) {
      out.status = absl::CancelledError(
          absl::StrCat("request ", item.request_id, ": cancelled before its prefill"));
      continue;
    }
    const auto blocks = static_cast<uint32_t>(
        cache_.config().BlocksForTokens(static_cast<int64_t>(item.prompt.size())));
    std::vector<BlockId> destination = std::move(destinations[i]);  // empty: taken later
    {
      absl::MutexLock lock(&mu_);
      auto peer = peers_.find(item.decode_worker);
      if (peer == peers_.end()) {
        out.status = absl::UnavailableError(absl::StrCat("request ", item.request_id,
                                                         ": decode worker ", item.decode_worker,
                                                         " is not a known transfer peer"));
        continue;
      }
      out.transfer_backend = transport_.PeerBackend(peer->second.id);
      out.transports = transport_.PeerTransports(peer->second.id);
    }
    std::unique_ptr<transfer::KvWriteWindow> window;
    if (options_.zero_copy) {
      // Opened before the fence says yes: opening writes nothing, and a refused destination
      // then fails the item as never started.
      std::optional<transfer::PeerId> peer;
      {
        absl::MutexLock lock(&mu_);
        if (auto it = peers_.find(item.decode_worker); it != peers_.end()) peer = it->second.id;
      }
      absl::StatusOr<std::unique_ptr<transfer::KvWriteWindow>> opened =
          peer.has_value() ? transport_.OpenWindow(*peer, destination)
                           : absl::UnavailableError("not a transfer peer");
      if (!opened.ok()) {
        out.status = absl::Status(
            opened.status().code(),
            absl::StrCat("request ", item.request_id, ": zero-copy window on decode worker ",
                         item.decode_worker, "'s pool: ", opened.status().message()));
        continue;
      }
      window = std::move(*opened);
    }
    absl::StatusOr<std::vector<BlockId>> own;
    if (WritesInPlace()) {
      // The kernels write the decode side's reserved blocks: the item counts as submitted from
      // here, so that a Cancel waits for the writes to end before the blocks can be reused.
      if (!fence_.BeginSubmit({item.request_id, item.decode_epoch})) {
        out.status = absl::CancelledError(
            absl::StrCat("request ", item.request_id, ": cancelled before its prefill"));
        continue;
      }
      own = destination;
    } else {
      own = cache_.allocator().Allocate(blocks);
    }
    if (!own.ok()) {
      out.status = absl::ResourceExhaustedError(absl::StrCat(
          "request ", item.request_id, ": prefill pool: ", own.status().message()));
      continue;
    }
    out.prefill_start_us = WallMicros();
    const int64_t compute_start = MonotonicMicros();
    // A direct write or a window passed the fence before its first kernel.
    Inflight entry{.index = i, .own_blocks = *own, .submitted = WritesInPlace(),
                   .window = std::move(window), .decode_blocks = std::move(destination)};
    // Real kernels (CPU or GPU) with --stream-chunk-tokens: each chunk's whole blocks leave as
    // soon as its kernels ended, under the next chunk's (roofline streams in SubmitModelled).
    size_t sent = 0;
    std::function<absl::Status(int)> chunk_done;
    const bool streamed =
        options_.stream_chunk_tokens > 0 && !options_.roofline.has_value() && !WritesInPlace();
    // Blocks [from, to) as the chunks they were computed in, one batch each, whenever they
    // leave (a late destination does not merge them: the timeline's batch count stays).
    const size_t step = streamed ? static_cast<size_t>(StreamChunkTokens() /
                                                       cache_.config().block_size)
                                 : entry.own_blocks.size();
    auto chunks = [step](size_t from, size_t to, bool last) {
      std::vector<Inflight::Chunk> out;
      for (size_t b = from; b < to; b += step) {
        out.push_back({b, std::min(step, to - b), last && b + step >= to});
      }
      return out;
    };
    if (streamed) {
      chunk_done = [&](int tokens) -> absl::Status {
        const size_t full = static_cast<size_t>(tokens / cache_.config().block_size);
        if (full <= sent) return absl::OkStatus();
        // Blocks that have not come yet must not stall the kernels (and with them the batch's
        // other items): these chunks leave once they come, or after the kernels, as below.
        if (!DestinationReady(item, entry)) return absl::OkStatus();
        if (absl::Status d = EnsureDestination(item, entry, abandoned); !d.ok()) return d;
        for (const Inflight::Chunk& c : chunks(sent, full, false)) {
          SubmitChunk(item, entry, out, c, abandoned);
          if (!out.status.ok()) return out.status;
          sent = c.first + c.count;
        }
        return absl::OkStatus();
      };
    }
    if (MakesKvPerChunk()) {
      entry.made = 0;  // SubmitModelled makes it, chunk by chunk
      if (ClaimsChecksum(item)) entry.made_checksum = 0;
    } else {
      out.status = Compute(item, *own, entry.window.get(), abandoned, chunk_done);
    }
    if (out.status.ok() && !entry.made.has_value() && ClaimsChecksum(item)) {
      const transfer::KvWriteWindow* in_place = entry.window.get();
      absl::StatusOr<uint64_t> sum;
      auto read = [&](const KvCache& pool, std::span<const BlockId> blocks) {
        sum = KvChecksum(pool, blocks, 0, static_cast<int>(item.prompt.size()),
                         options_.attention.threads);
        return absl::OkStatus();
      };
      if (in_place != nullptr) {
        (void)in_place->Use(*own, read);
      } else {
        (void)read(cache_, *own);
      }
      if (sum.ok()) out.kv_checksum = *sum;  // else the decode worker reads it all itself
    }
    out.mock_us = MonotonicMicros() - compute_start;
    out.prefill_end_us = WallMicros();
    lens.push_back(static_cast<int>(item.prompt.size()));
    // In roofline mode the copy waits for the modelled device time of the batch (below). A
    // destination that has not come yet (its decode worker is slow to answer the router) must
    // not hold up the batch's next items: the item's KV leaves after the batch's kernels.
    if (out.status.ok() && !options_.roofline.has_value()) {
      const std::vector<Inflight::Chunk> rest = chunks(sent, entry.own_blocks.size(), true);
      if (DestinationReady(item, entry)) {
        out.status = EnsureDestination(item, entry, abandoned);
        for (const Inflight::Chunk& c : rest) {
          if (out.status.ok()) SubmitChunk(item, entry, out, c, abandoned);
        }
      } else {
        entry.deferred.insert(entry.deferred.end(), rest.begin(), rest.end());
      }
    }
    inflight.push_back(std::move(entry));
  }
  // A batch whose items were all cancelled or refused runs no kernels: nothing to pretend.
  if (options_.min_batch > absl::ZeroDuration() && !lens.empty()) {
    if (absl::Duration left = options_.min_batch - (absl::Now() - batch_start);
        left > absl::ZeroDuration()) {
      absl::SleepFor(left);
    }
  }
  absl::Duration work = absl::Now() - batch_start;
  absl::Duration modelled = absl::ZeroDuration();
  if (options_.roofline.has_value()) {
    modelled = absl::Seconds(options_.roofline->PrefillSeconds(lens));
    const absl::Time made = SubmitModelled(items, inflight, outcomes, batch_start, batch_start_us,
                                           modelled, abandoned);
    work = std::max(work, made - batch_start);
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
  turn.reset();
  run_mu_.Unlock();  // the next batch may compute while these transfers are waited for
  SubmitDeferred(items, inflight, outcomes, abandoned, answer_by);
  const auto [bytes, done] = FinishItems(items, inflight, outcomes, answer_by);
  // Admitted items that never got as far as a transfer: they will not write.
  for (size_t i = 0; i < items.size(); ++i) {
    const bool ran = std::any_of(inflight.begin(), inflight.end(),
                                 [i](const Inflight& e) { return e.index == i; });
    if (admitted[i] && !ran) {
      fence_.Finish({items[i].request_id, items[i].decode_epoch}, false, false, false);
    }
  }
  absl::MutexLock lock(&mu_);
  counters_.running -= static_cast<uint32_t>(items.size());
  counters_.requests += done;
  counters_.kv_bytes += bytes;
  return outcomes;
}

}  // namespace pdserve::prefill
