#pragma once

// Runs prefill batches into the worker's own paged KV pool and ships each prompt's KV to the
// decode worker that will continue it. Per item: take blocks from the own pool, run the kernels
// (chunk by chunk for long prompts), submit the block copies to the decode peer with the request
// id as notification (so the copy of one item overlaps the kernels of the next), then wait for
// every transfer, free the own blocks and report timings. Batches run one at a time: the kernels
// already use the worker's cores.
//
// Fenced KV: an item names the decode reservation's epoch, which its notification carries. The
// router may give up on an item (PrefillWorker.Cancel, or by leaving the Prefill RPC): the engine
// then stops it between chunks and before its transfer is submitted; a submitted transfer is
// waited for and reported (item_fence.h). An item whose destination does not fit what the decode
// worker can have granted (no epoch, a block count other than the prompt's, a block outside the
// peer's pool or named twice) is refused before any work; one whose destination follows
// (destination_follows: the router asked the decode worker alongside the Prefill call, see
// router/run_batch.cc) runs its kernels meanwhile, and its destination is checked the same way
// when its first transfer takes it (a failed check, or no blocks in time: the item fails and
// sends nothing).

#include <cstdint>
#include <functional>
#include <span>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/roofline.h"
#include "common/shared_device.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/kv_cache.h"
#include "prefill_worker/destination_board.h"
#include "prefill_worker/item_fence.h"
#include "transfer/kv_transport.h"

namespace pdserve::prefill {

struct PrefillEngineOptions {
  AttentionOptions attention;
  std::optional<RooflineModel> roofline;  // batch lasts at least the modelled GPU time
  int chunk_tokens = 512;                 // longest chunk one kernel call processes
  absl::Duration transfer_timeout = absl::Seconds(30);
  // Every batch's kernels last at least this long (tests use it to have batches in flight).
  absl::Duration min_batch = absl::ZeroDuration();
  // GPU compute (--compute cuda): runs one prompt chunk into `blocks` of `pool` instead of the
  // CPU kernels (the worker binds it to its CudaAttention; the engine stays free of CUDA).
  // `pool` is the engine's own cache, or a zero-copy window's view of a decode worker's.
  std::function<absl::Status(const KvCache& pool, std::span<const BlockId> blocks,
                             std::span<const int32_t> tokens, int start_pos)>
      compute_chunk;
  // Runs after an item's kernels and before its transfer: a worker whose kernels write a device
  // pool but whose transport sends from a host pool stages the item's blocks here (ucx-staged).
  std::function<absl::Status(std::span<const BlockId> blocks)> after_compute;
  // Roofline with the CPU kernels: for a prompt whose KV has at least this many bytes, read
  // the KV just written once more and send its checksum with the result (0: never). The decode
  // worker then starts from that sum and checks the landed bytes in the background: its own
  // full read of a large prompt does not fit in one modelled decode step, while the prefill's
  // modelled time has room for it (docs/model.md, "The mock's own cost").
  uint64_t claim_checksum_bytes = 0;
  // This worker's id, named in item errors whose cause may be this worker (a transfer wait cut
  // short by the Prefill call's own deadline: the worker answered late, e.g. after a stall).
  std::string worker_id = "prefill";
  // Colocated worker (transfer backend inproc): the destination blocks are in this engine's own
  // pool, so the kernels write them directly and the "transfer" only announces them. The write
  // counts as submitted from the first kernel on (a Cancel then waits for it to end), and the
  // blocks are the decode side's: never allocated or freed here.
  bool direct_write = false;
  // Colocated worker: the device this engine shares with its decode engine (held per batch,
  // modelled time included). Null: a device of its own.
  std::shared_ptr<SharedDevice> device;
  // Roofline: stream each prompt's KV in chunks of this many tokens (rounded up to whole
  // blocks) as the modelled prefill produces them, instead of after its last layer: chunk k's
  // blocks are submitted when the modelled time reaches T(end of chunk k) / T(prompt) of the
  // batch's time (T: the roofline prefill time of a prefix, so later chunks, which attend to
  // more tokens, take longer). The last chunk carries the notification, which every backend
  // delivers only after the earlier chunks landed (kv_transport.h, Ordering).
  // 0: the whole prompt after the batch (prefill_transfers.cc).
  int stream_chunk_tokens = 0;
  // Zero-copy (a transport that can open windows, transfer/kv_window.h: local): the kernels
  // write each item's K/V straight into the decode worker's reserved blocks, through a window
  // that reaches exactly those, and the "transfer" is the notification alone. As with
  // direct_write, the item counts as submitted from its first kernel and no own block is used.
  // CPU kernels and roofline only (the GPU kernels write their own pool); no streaming (nothing
  // moves).
  bool zero_copy = false;
};

struct PrefillItemSpec {
  std::string request_id;
  std::vector<int32_t> prompt;
  std::string decode_worker;
  std::vector<BlockId> decode_blocks;  // destination, in logical order
  uint64_t decode_epoch = 0;           // the decode reservation's epoch (0 is refused)
  // decode_blocks is empty: PostDestination brings them while the kernels run (the router
  // asked the decode worker alongside the Prefill call). The item's first transfer waits for
  // them (transfer_timeout at most), or its first kernel where the kernels write the decode
  // worker's blocks in place; they are checked as a destination given with the item is.
  bool destination_follows = false;
};

struct PrefillItemOutcome {
  std::string request_id;
  absl::Status status;
  int64_t prefill_start_us = 0;
  int64_t prefill_end_us = 0;
  int64_t transfer_start_us = 0;
  int64_t transfer_end_us = 0;
  uint64_t kv_bytes = 0;
  uint32_t transfer_ops = 0;
  uint32_t transfer_batches = 0;  // > 1 when streamed in chunks
  // The wall time during which at least one of the item's batches was in flight (the union of
  // their submit -> complete intervals), of which transfer_end_us - prefill_end_us was not
  // hidden under the prefill.
  int64_t transfer_busy_us = 0;
  // The backend's copy threads' waits for a core over the item's batches
  // (TransferStats::copy_wait_ns).
  int64_t transfer_copy_wait_us = 0;
  int64_t modelled_us = 0;  // roofline: modelled device time of the item's batch
  int64_t mock_us = 0;      // host time generating the item's K/V (the mock's own work)
  // The checksum of the prompt KV sent (PrefillEngineOptions::claim_checksum_bytes).
  std::optional<uint64_t> kv_checksum;
  // Failed items: the transfer was submitted and had not ended when the wait gave up.
  bool transfer_in_flight = false;
  // The backend that carries KV to the item's decode worker (KvTransport::PeerBackend).
  std::string transfer_backend;
  std::string transports;  // KvTransport::PeerTransports of that pair
};

struct PrefillCounters {
  uint64_t requests = 0;
  uint64_t kv_bytes = 0;
  uint32_t running = 0;
  // Batches: host work (kernels or K/V generation) against the modelled device time.
  uint64_t batches = 0;
  uint64_t overrun_batches = 0;  // host work longer than the modelled time
  uint64_t work_us = 0;
  uint64_t modelled_us = 0;
  uint64_t mock_us = 0;
  uint64_t overrun_us = 0;
};

class PrefillEngine {
 public:
  // Longest request id an item may carry (InvalidArgument past it).
  static constexpr size_t kMaxRequestIdBytes = 1024;

  PrefillEngine(KvCache& cache, transfer::KvTransport& transport, PrefillEngineOptions options);

  // Loads (or replaces) a decode worker's pool as a transfer peer; `num_blocks` is its pool's size
  // (items naming blocks beyond it are refused; 0: leave that check to the transport).
  absl::Status AddPeer(const std::string& worker_id, const std::string& descriptor,
                       uint32_t num_blocks = 0);
  // Forgets the decode worker's peer; with `descriptor` given, only if the loaded peer is that
  // pool (the instance that left), not a restarted worker's that was loaded since.
  absl::Status RemovePeer(const std::string& worker_id, const std::string& descriptor = {});

  // Every item gets an outcome; the own pool's blocks are free again when this returns, except
  // those of transfers still in flight (freed once they end, by a later Run). `abandoned` true
  // (the RPC's caller left) stops the items not yet submitted, as Cancel does. Transfers are
  // waited for until `answer_by` at the latest (and transfer_timeout each): an item whose
  // transfer is still in flight then fails alone, naming its decode worker (and this worker when
  // the call's deadline cut the wait), and the other items keep their outcomes, where a caller
  // that gave up on the whole call would fail them all.
  std::vector<PrefillItemOutcome> Run(const std::vector<PrefillItemSpec>& items,
                                      const std::function<bool()>& abandoned = nullptr,
                                      absl::Time answer_by = absl::InfiniteFuture());
  // Fences items the router gave up on: one outcome per (request id, decode epoch), in order,
  // waiting at most `wait` in all for submitted transfers to end.
  std::vector<CancelOutcome> Cancel(const std::vector<ItemFence::Key>& items,
                                    absl::Duration wait);

  // Frees the blocks of stranded transfers that have ended since, and tells the fence (each Run
  // does this first). For callers that need it with no Run coming: Cancel, and a draining worker
  // waiting for its pool to be free.
  void ReapEndedTransfers();

  // The destination of an item sent with destination_follows (or why it has none: the item
  // then fails with that error, sending nothing). May come before the item.
  absl::Status PostDestination(const std::string& request_id, uint64_t decode_epoch,
                               DestinationBoard::Destination destination) {
    return destinations_.Post({request_id, decode_epoch}, std::move(destination));
  }

  PrefillCounters counters() const;
  const KvCache& cache() const { return cache_; }

 private:
  struct Inflight {
    size_t index;
    std::vector<BlockId> own_blocks;
    // Submitted and not waited for yet, in submission order (a streamed item has several).
    std::vector<transfer::TransferId> transfers;
    bool submitted = false;  // BeginSubmit said yes: bytes may be on their way
    int64_t busy_until_ns = 0;  // latest completion of its batches waited for so far
    // Zero-copy: the decode worker's reserved blocks, written in place (own_blocks names them).
    std::unique_ptr<transfer::KvWriteWindow> window;
    // The destination blocks: the item's own, or those posted for it (empty until taken).
    std::vector<BlockId> decode_blocks;
    // Chunks whose destination had not come when they were due (SubmitDeferred sends them,
    // in order, after the batch's kernels): a late destination holds up only its own item.
    struct Chunk {
      size_t first, count;
      bool last;
    };
    std::vector<Chunk> deferred;
    // Roofline with the CPU kernels, streamed (MakesKvPerChunk): the prompt tokens whose K/V
    // exists so far, SubmitModelled making it chunk by chunk, ahead of each chunk's modelled
    // time where the host can. Unset: Compute made the whole prompt's.
    std::optional<int> made;
    // KvChecksum of the K/V made so far where the item claims one (ClaimsChecksum).
    std::optional<uint64_t> made_checksum;
  };
  struct Peer {
    transfer::PeerId id = 0;
    uint32_t num_blocks = 0;
    std::string descriptor;  // which instance's pool (RemovePeer)
  };
  // A transfer whose wait gave up: its source blocks stay taken until it ends.
  struct Stranded {
    ItemFence::Key key;
    std::vector<transfer::TransferId> transfers;  // freed once every one of them ended
    std::vector<BlockId> own_blocks;
    bool failed = false;  // one of them ended in error
  };
  // InvalidArgument for an item or a destination the decode worker cannot have granted.
  absl::Status Validate(const PrefillItemSpec& item) const;
  absl::Status ValidateDestination(const PrefillItemSpec& item,
                                   const std::vector<BlockId>& blocks) const;
  // The item's destination: given with it, or taken from the board (waiting until it is
  // posted, the item is stopped or transfer_timeout passes) and checked.
  absl::StatusOr<std::vector<BlockId>> TakeDestination(const PrefillItemSpec& item,
                                                       const std::function<bool()>& abandoned,
                                                       absl::Time by = absl::InfiniteFuture());
  // entry.decode_blocks, taken now if they follow; before any of the item's transfers.
  // Waits at most transfer_timeout, and not past `by` (wall clock: the answer's deadline).
  absl::Status EnsureDestination(const PrefillItemSpec& item, Inflight& entry,
                                 const std::function<bool()>& abandoned,
                                 absl::Time by = absl::InfiniteFuture());
  // Whether EnsureDestination would return at once (given, taken, or posted: blocks or error).
  bool DestinationReady(const PrefillItemSpec& item, const Inflight& entry) const;
  // Sends the chunks deferred for a destination that had not come (Inflight::deferred): waits
  // for each such item's destination in turn, outside the compute lock.
  // A destination still missing at `answer_by` fails its item (naming its decode worker), so
  // that the batch's answer is not late for the others.
  void SubmitDeferred(const std::vector<PrefillItemSpec>& items, std::vector<Inflight>& inflight,
                      std::vector<PrefillItemOutcome>& outcomes,
                      const std::function<bool()>& abandoned, absl::Time answer_by);
  // The item was cancelled, or the caller left (which cancels it).
  bool Stopped(const ItemFence::Key& key, const std::function<bool()>& abandoned);
  // Starts copies of `blocks` (a prefix-ordered subset of the item's, from `first` on) unless
  // the item was stopped (then Cancelled); the first call per item passes the fence. With
  // `notify` the batch carries the item's notification.
  absl::StatusOr<transfer::TransferId> SubmitUnlessStopped(
      const PrefillItemSpec& item, Inflight& entry, size_t first, size_t count, bool notify,
      const std::function<bool()>& abandoned);
  // Roofline (prefill_transfers.cc): sleeps out the batch's modelled time and submits every
  // item's KV, whole at its end or streamed in chunks as the modelled time passes, making the
  // K/V of items left to it (Inflight::made) chunk by chunk, each before it is due. Returns when
  // the last K/V it made was done (InfinitePast: it made none), the batch's host work.
  absl::Time SubmitModelled(const std::vector<PrefillItemSpec>& items,
                            std::vector<Inflight>& inflight,
                            std::vector<PrefillItemOutcome>& outcomes, absl::Time batch_start,
                            int64_t batch_start_us, absl::Duration modelled,
                            const std::function<bool()>& abandoned);
  // Waits for the item's pending batches in order (at most `wait` in all) and adds up their
  // stats into `out`; the first failure is returned, and the batches not ended stay pending.
  absl::Status WaitTransfers(Inflight& entry, PrefillItemOutcome& out, absl::Duration wait);
  // After the batch: waits for every item's transfers (until `answer_by`), tells the fence and
  // frees or strands the own blocks; returns (bytes, items done) for the counters.
  std::pair<uint64_t, uint64_t> FinishItems(const std::vector<PrefillItemSpec>& items,
                                            std::vector<Inflight>& inflight,
                                            std::vector<PrefillItemOutcome>& outcomes,
                                            absl::Time answer_by);
  // Kernels for one item into `own_blocks`, chunk by chunk; Cancelled when stopped between two.
  // With a window (zero-copy) the blocks are the decode worker's, reached only through it.
  // With `chunk_done` (streaming with real kernels), chunks are StreamChunkTokens() long and
  // it is told the tokens done after every chunk but the last; its error stops the item.
  absl::Status Compute(const PrefillItemSpec& item, const std::vector<BlockId>& own_blocks,
                       const transfer::KvWriteWindow* window,
                       const std::function<bool()>& abandoned,
                       const std::function<absl::Status(int)>& chunk_done = nullptr);
  // Submits one chunk of an item's KV (the last one with its notification: SubmitLast),
  // stamping the item's transfer start; a refused chunk fails the item.
  void SubmitChunk(const PrefillItemSpec& item, Inflight& entry, PrefillItemOutcome& out,
                   const Inflight::Chunk& c, const std::function<bool()>& abandoned);
  // Submits an item's last chunk with its notification, at once: the transport announces it
  // only after the earlier chunks landed.
  void SubmitLast(const PrefillItemSpec& item, Inflight& entry, PrefillItemOutcome& out,
                  size_t first, size_t count, const std::function<bool()>& abandoned);
  // Roofline with the CPU kernels, streamed: SubmitModelled makes the K/V chunk by chunk, not
  // the whole prompt's first (which made every chunk due meanwhile leave late, all at once,
  // and the copies that should have run under the modelled prefill run after it).
  bool MakesKvPerChunk() const {
    return options_.roofline.has_value() && options_.stream_chunk_tokens > 0 &&
           !options_.attention.compute_attention && !options_.compute_chunk &&
           !options_.after_compute && !WritesInPlace();
  }
  // Makes the item's K/V up to token `end` (from entry.made on), adding to its checksum and
  // mock time; fails the item when it was stopped since its first chunk or the kernel failed.
  void MakeKv(const PrefillItemSpec& item, Inflight& entry, PrefillItemOutcome& out, int end,
              const std::function<bool()>& abandoned);
  // --stream-chunk-tokens rounded up to whole blocks.
  int StreamChunkTokens() const {
    const int b = cache_.config().block_size;
    return std::max(b, (options_.stream_chunk_tokens + b - 1) / b * b);
  }
  // The destination blocks are the decode worker's, written by the kernels in place: never
  // allocated or freed here (direct_write or zero_copy).
  bool WritesInPlace() const { return options_.direct_write || options_.zero_copy; }
  // Whether the item's result carries the checksum of its KV (claim_checksum_bytes).
  bool ClaimsChecksum(const PrefillItemSpec& item) const;
  void ReapStranded() ABSL_LOCKS_EXCLUDED(stranded_mu_);

  KvCache& cache_;
  transfer::KvTransport& transport_;
  const PrefillEngineOptions options_;

  // One batch's kernels and submissions at a time. Its transfer waits run outside it, so that
  // the next batch computes meanwhile and a batch stuck on a stalled decode peer does not make
  // the batches behind it (for healthy peers) miss their deadlines.
  absl::Mutex run_mu_;
  absl::Mutex stranded_mu_;
  std::vector<Stranded> stranded_ ABSL_GUARDED_BY(stranded_mu_);
  ItemFence fence_;
  DestinationBoard destinations_;
  mutable absl::Mutex mu_;
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
  PrefillCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::prefill
