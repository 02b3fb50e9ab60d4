#pragma once

// Iteration-level continuous batching over one paged KV pool, on one loop thread.
//
// A request goes through: Allocate (reserve blocks for prompt + max_tokens positions and allocate
// the prompt's blocks, which the prefill worker then fills) -> Start (its prompt KV is in place:
// it joins the running batch before the next step) -> one token per step -> finished (blocks
// freed at once, before the final chunk is published). Release frees a request in any state,
// except that blocks whose KV may still land are fenced first (below).
//
// Each step: requests that joined or were released are applied; every running request that got
// a token last step writes that token's KV (allocating a block from its reservation when it
// crosses a block boundary, which therefore never fails); one DecodeAttention over the whole
// batch yields every request's next token, which is published to its DecodeStream.
//
// Carried checksums (roofline mode, where no real attention runs): the KV of a joining request
// is read in full once (that is the check that the transfer delivered every byte), then each
// step adds only the rows of the position it wrote, which gives the same tokens as a full read
// (the checksum is a wrap-around sum). When the request finishes, its KV is read in full once
// more and the request fails with DataLoss if that disagrees with the carried sum: a block
// overwritten while in use is still caught. Real (and GPU) compute reads everything every step,
// as real attention does.
//
// Claimed checksums: a large prompt's full read does not fit in one modelled step on a host
// CPU (256 MiB of a 2048-token llama3-8b prompt: 11-17 ms on two cores against a 6.3 ms H100
// step), and would sit in the first token's time. So the prefill worker may send the checksum
// of the KV it wrote (Start's claimed_checksum): the request starts from that sum, and the
// verifier thread reads the landed blocks in the background while it decodes. A mismatch ends
// the request with DataLoss before it can finish, so no stream ends OK on KV that did not land
// as sent.
//
// Fenced KV: every reservation has an epoch (a lease id, unique in this engine) that the prefill
// worker's notification names. A prefill worker that was abandoned may still write a reservation's
// blocks after the router gave up on it, so releasing an allocation whose KV has not landed
// (KvLanded or Start) does not free its blocks: they are quarantined, out of the free list and
// counted apart, until the notification for that (request, epoch) arrives (KvLanded), the caller
// learns that the writer will not write (Release with writer_fenced), the writer's process is
// gone or a lease passes (SweepQuarantine). Only then can Allocate hand them to another request.

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/roofline.h"
#include "common/shared_device.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/kv_cache.h"

namespace pdserve::decode {

// What a finished request's stream reports about the engine's own work on it.
struct DecodeAccounting {
  int64_t join_us = 0;              // wall clock when it joined the batch
  int64_t modelled_first_step_us = 0;
  int64_t verify_us = 0;            // host time reading its KV to check it
};

// Tokens of one request as they are produced; read by the RPC thread that streams them.
class DecodeStream {
 public:
  struct Chunk {
    std::vector<int32_t> tokens;  // new since the previous Next()
    int position = 0;             // sequence position of tokens[0]
    bool finished = false;        // no more tokens will come (see status)
    absl::Status status;          // OK when finished normally
    int64_t first_token_us = 0;   // wall clock of the first token (0 until then)
    int64_t finish_us = 0;
    DecodeAccounting accounting;  // final once finished
  };

  explicit DecodeStream(int first_position) : first_position_(first_position) {}

  // Waits until there are unread tokens or the stream ended, at most `timeout`; an empty chunk
  // that is not finished means the timeout passed.
  Chunk Next(absl::Duration timeout);
  // Waits the same way and reads nothing.
  void WaitForActivity(absl::Duration timeout);

  // Producer side (the loop thread).
  void Push(int32_t token, int64_t now_us);
  void Finish(absl::Status status, int64_t now_us);
  void SetAccounting(const DecodeAccounting& accounting);

 private:
  // Unread tokens, or the end.
  bool ReadyLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return finished_ || read_ < tokens_.size();
  }
  absl::Mutex mu_;
  const int first_position_;
  std::vector<int32_t> tokens_ ABSL_GUARDED_BY(mu_);
  size_t read_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  int64_t first_token_us_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t finish_us_ ABSL_GUARDED_BY(mu_) = 0;
  DecodeAccounting accounting_ ABSL_GUARDED_BY(mu_);
};

struct DecodeEngineOptions {
  AttentionOptions attention;
  // Roofline compute mode: each step lasts at least the model's time on this GPU (KV is still
  // written and read, the checksum still computed).
  std::optional<RooflineModel> roofline;
  // Every step lasts at least this long (tests use it to make continuous batching observable).
  absl::Duration min_step = absl::ZeroDuration();
  // GPU compute (--compute cuda): one decode step over the batch instead of the CPU kernels. It
  // must first write the K/V of each sequence's last_token at position seq_len - 1 (the worker
  // binds CudaAttention::Decode with write_last_kv; rewriting a joining prompt's last row gives
  // the same bytes), so the engine then skips its own WriteKv.
  std::function<absl::StatusOr<std::vector<DecodeResult>>(std::span<const DecodeSequence>)>
      decode_step;
  // Called on the loop thread before a request's first step with its prompt blocks: a worker
  // whose transport receives into a host pool copies them to its device pool here (ucx-staged).
  std::function<absl::Status(std::span<const BlockId> blocks)> on_join;
  // Carry each request's checksum forward instead of reading all of its KV every step (see
  // above). Only with the CPU kernels without attention (roofline).
  bool carry_checksum = false;
  // Fill freed blocks with a poison pattern, so that a request reading blocks it no longer owns
  // (another request's stale KV with the same prefix) cannot pass verification. Costs a write of
  // every freed block: for tests and verification runs.
  bool poison_freed_blocks = false;
  // Colocated worker: the device this engine shares with its prefill engine, held for each
  // step (modelled time included). Null: a device of its own.
  std::shared_ptr<SharedDevice> device;
  // An idle engine's next step may run on the thread that starts a request (Start's
  // `step_here`), when that step reads at most this many bytes of prompt KV and lasts at most
  // `inline_step_max` (min_step, modelled time). That thread is the transport's receive path:
  // the first token then costs no wake-up of the loop thread (vLLM's engine loop polls its KV
  // connector itself for the same reason). 0: never; no device is shared (colocated) either.
  int64_t inline_step_kv_bytes = 0;
  absl::Duration inline_step_max = absl::Microseconds(200);
};


// What the caller of Release knows about whoever may still write a reservation's prompt KV.
struct ReleaseFence {
  uint64_t epoch = 0;          // the reservation meant; 0: the current one
  bool writer_fenced = false;  // no more bytes will land: free at once, landed or not
  std::string writer;          // the prefill worker that was sent the item (for logs)
  int32_t writer_pid = 0;      // its pid when it runs on this host; 0: unknown or remote
};

// The current reservation of a request.
struct DecodeLease {
  uint64_t epoch = 0;
  bool kv_landed = false;  // KvLanded or Start happened
};

// A quarantine that SweepQuarantine ended, and which fence ended it.
struct LiftedQuarantine {
  enum class Why { kNotified, kWriterGone, kLeaseExpired };
  std::string request_id;
  uint64_t epoch = 0;
  uint32_t blocks = 0;
  std::string writer;
  Why why = Why::kNotified;
};

struct DecodeCapacity {
  uint32_t total_blocks = 0;
  uint32_t free_blocks = 0;      // blocks in the allocator's free list
  // Blocks of released reservations whose KV may still land: neither free nor in use.
  uint32_t quarantined_blocks = 0;
  uint32_t quarantined_requests = 0;
  uint32_t reserved_blocks = 0;  // reserved by requests (allocated or still to be grown into)
  uint32_t running_requests = 0;
  uint32_t allocated_requests = 0;  // allocated, not yet started
  uint64_t finished_requests = 0;
};

// Cumulative: a step's host work against its modelled device time (roofline).
struct DecodeStepCounters {
  uint64_t steps = 0;
  uint64_t overrun_steps = 0;  // host work longer than the modelled time
  uint64_t work_us = 0;
  uint64_t modelled_us = 0;
  uint64_t verify_us = 0;      // of work_us: reading KV to check it (join and finish reads)
  uint64_t overrun_us = 0;
  uint64_t claimed_checks = 0;  // join checks of claimed prompt checksums run
  uint64_t claims_refuted = 0;  // of those, claims the landed blocks did not match
};

class DecodeEngine {
 public:
  DecodeEngine(KvCache& cache, DecodeEngineOptions options);
  ~DecodeEngine();  // aborts every request and joins the loop thread
  DecodeEngine(const DecodeEngine&) = delete;
  DecodeEngine& operator=(const DecodeEngine&) = delete;

  // Reserves blocks for prompt_len + max_tokens positions and allocates the prompt's blocks;
  // `epoch` (when not null) receives the reservation's lease id. ResourceExhausted (nothing
  // taken) when the unreserved blocks do not suffice (quarantined blocks do not count as free);
  // AlreadyExists for an id in use. `wanted_epoch` (not 0): the reservation gets that epoch
  // (a router that sends the prefill before the blocks are known chose it), AlreadyExists when
  // a live, quarantined or checking reservation of this engine has it.
  absl::StatusOr<std::vector<BlockId>> Allocate(const std::string& request_id, int prompt_len,
                                                int max_tokens, uint64_t* epoch = nullptr,
                                                uint64_t wanted_epoch = 0);
  // The current reservation of `request_id`; NotFound when it has none.
  absl::StatusOr<DecodeLease> Lease(const std::string& request_id) const;
  // The notification for (request_id, epoch) arrived: every byte of that reservation's prompt
  // KV is in its blocks. OK for the current reservation (it is now landed); Aborted when that
  // reservation had been released and quarantined (its blocks are free again now);
  // FailedPrecondition for any other epoch (stale or forged: refused, nothing changes).
  absl::Status KvLanded(const std::string& request_id, uint64_t epoch);
  // The prompt's KV is in the allocated blocks: join the running batch. FailedPrecondition when
  // the request is not allocated (or already started); InvalidArgument when the prompt length
  // differs from the allocation's. `claimed_checksum` (carried checksums only): the prefill
  // worker's checksum of the prompt KV it sent; the request then starts from it and the
  // verifier thread checks it against a full read of the landed blocks in the background
  // (DATA_LOSS on a mismatch), see "Claimed checksums" above.
  // `stream`: the caller's, made before the KV landed (its first position must be the prompt's
  // length), so that the caller already waits on it; null: a new one.
  // `step_here` (may be null): set true when the engine was idle and this request's first step
  // is cheap enough (DecodeEngineOptions::inline_step_kv_bytes): that step is then reserved for
  // the caller, the loop thread does not take it, and the caller must call RunReservedStep next.
  absl::StatusOr<std::shared_ptr<DecodeStream>> Start(
      const std::string& request_id, std::vector<int32_t> prompt_tokens, int max_tokens,
      uint64_t seed, std::optional<uint64_t> claimed_checksum = std::nullopt,
      std::shared_ptr<DecodeStream> stream = nullptr, bool* step_here = nullptr);
  // Runs the step Start reserved, on this thread; the loop thread takes the following ones.
  void RunReservedStep();
  // Frees the request's blocks whatever its state; a running request leaves the batch before the
  // next step and its stream ends with `reason`. Returns once the blocks are free or, for an
  // allocation whose KV has not landed and whose writer is not fenced, quarantined (see above).
  // With fence.epoch set, only that reservation: a quarantined one takes the fence (freed when
  // writer_fenced, else it learns the writer's pid); FailedPrecondition when the request's
  // current reservation has another epoch. NotFound when the id holds nothing.
  absl::Status Release(const std::string& request_id, absl::Status reason,
                       const ReleaseFence& fence = {});
  // Releases allocations that were never started within `lease` (their router is gone); those
  // whose KV has not landed are quarantined.
  std::vector<std::string> ExpireAllocations(absl::Duration lease);
  // Frees quarantined blocks whose notification arrived after all (`notified(id, epoch)`
  // consumes it), whose writer's process is gone (`process_alive(pid)` false) or that have been
  // quarantined longer than `lease`. The lease is the fence of last resort: it must be longer
  // than the prefill side can take to write (its batch plus its transfer timeout), and callers
  // should warn when it is what freed blocks. The callbacks run without the engine's lock.
  std::vector<LiftedQuarantine> SweepQuarantine(
      absl::Duration lease,
      const std::function<bool(const std::string& request_id, uint64_t epoch)>& notified,
      const std::function<bool(int32_t pid)>& process_alive);

  DecodeCapacity Capacity() const;
  DecodeStepCounters StepCounters() const;
  const KvCache& cache() const { return cache_; }

 private:
  // kVerifying: all tokens produced, the final full read of its KV is running on the verifier
  // thread (carried checksums); its blocks are held until that read ends.
  enum class State { kAllocated, kJoining, kRunning, kVerifying };
  struct Request {
    State state = State::kAllocated;
    std::vector<BlockId> blocks;
    uint32_t reserved = 0;
    int prompt_len = 0;
    int max_tokens = 0;
    uint64_t seed = 0;
    std::vector<int32_t> prompt;
    std::shared_ptr<DecodeStream> stream;
    absl::Time allocated_at;  // SteadyNow(): the allocation lease is measured on it
    uint64_t epoch = 0;
    bool kv_landed = false;
    bool release_requested = false;
    absl::Status release_reason;
    std::optional<uint64_t> claimed_checksum;
    absl::Status join_check;     // the background check of the claim, once it failed
    int64_t join_verify_us = 0;  // its read time, added to the request's accounting at the end
  };
  // What the loop thread keeps per running request, outside the lock.
  struct Running {
    std::string id;
    std::shared_ptr<DecodeStream> stream;
    std::vector<BlockId> table;
    int32_t last_token = 0;
    int seq_len = 0;         // KV positions in the cache
    int generated = 0;
    int max_tokens = 0;
    uint64_t seed = 0;
    bool pending_write = false;  // last_token's KV is not yet in the cache
    bool joined = true;          // on_join has not run yet
    bool verified = false;       // carried checksum: the full read at join is done (or queued)
    uint64_t checksum = 0;       // carried checksum of positions [0, seq_len)
    std::optional<uint64_t> claimed;  // the prefill worker's checksum of the prompt KV
    DecodeAccounting accounting;
  };

  void Loop();
  // What one turn of the loop does once it took the work: join hooks, then a step.
  void StepOnce();
  bool CheapFirstStepLocked(const Request& r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carried checksums: the final full read of finished requests, off the loop thread, so that
  // one request's check does not stretch every other request's step.
  void VerifierLoop();
  void HandOffToVerifier(size_t index);
  // A claimed prompt checksum, checked against a full read of the prompt's blocks on the
  // verifier thread while the request already decodes. The blocks are not freed before that
  // read ends (FreeLocked defers them).
  struct JoinCheck {
    std::string id;
    uint64_t epoch = 0;
    std::vector<BlockId> blocks;
    int prompt_len = 0;
    uint64_t claimed = 0;
  };
  using VerifyJob = std::variant<JoinCheck, Running>;
  // Queues the check of running_[index]'s claim; the request starts from the claimed sum.
  void QueueJoinCheck(size_t index);
  void RunJoinCheck(const JoinCheck& check);
  void RunFinalCheck(Running r);
  // Blocks whose KV may still land after their release (see above).
  struct Quarantined {
    std::string id;
    std::vector<BlockId> blocks;
    std::string writer;
    int32_t writer_pid = 0;
    absl::Time since;  // SteadyNow(): the fence lease is measured on it
  };
  // Frees a request's blocks and unreserves the rest; erases it.
  void FreeLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unreserves an allocated request and moves its blocks to the quarantine; erases it.
  void QuarantineLocked(const std::string& id, const ReleaseFence& fence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a Release to a quarantined reservation of `id`; false when there is none.
  bool FenceQuarantinedLocked(const std::string& id, const ReleaseFence& fence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LiftLocked(uint64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Poisons (when asked to) and frees blocks.
  void ReturnBlocksLocked(const std::string& id, const std::vector<BlockId>& blocks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies releases and joins; returns false when stopping.
  bool TakeWorkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishRunning(size_t index, absl::Status status);
  // Carried checksums: the full read of joining requests; false when the request ended.
  bool VerifyJoined(size_t index);
  // Carried checksums: the full read of a finishing request against its carried sum.
  absl::Status VerifyFinished(const Running& r);
  void PoisonLocked(const std::vector<BlockId>& blocks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Step();

  KvCache& cache_;
  const DecodeEngineOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Request> requests_ ABSL_GUARDED_BY(mu_);
  // The epochs of requests_ (Allocate's in-use check without a scan of every request).
  absl::flat_hash_set<uint64_t> live_epochs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Quarantined> quarantine_ ABSL_GUARDED_BY(mu_);  // by epoch
  uint32_t quarantined_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  // Epochs start at the construction time in microseconds, so that a restarted worker does not
  // reuse the epochs of its previous life (notifications may still name those).
  uint64_t next_epoch_ ABSL_GUARDED_BY(mu_) = 1;
  // Reserved blocks not yet taken from the allocator: Allocate keeps them free.
  uint32_t unallocated_reserved_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t reserved_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> joins_ ABSL_GUARDED_BY(mu_);
  bool releases_pending_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t running_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  DecodeStepCounters step_counters_ ABSL_GUARDED_BY(mu_);
  // A thread (the loop's, or Start's caller with a reserved step) owns running_ and batch_ and
  // steps them; set and cleared under mu_, which orders one owner's writes before the next's.
  bool stepping_ ABSL_GUARDED_BY(mu_) = false;
  bool has_running_ ABSL_GUARDED_BY(mu_) = false;  // !running_.empty() when the last step ended

  // Owned by the stepping thread (stepping_).
  std::vector<Running> running_;
  std::vector<DecodeSequence> batch_;

  // First in, first out: a request's join check always ends before its final check.
  std::deque<VerifyJob> verify_queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> join_checking_ ABSL_GUARDED_BY(mu_);  // epochs being checked
  // Blocks of requests that ended while their join check was reading them, by epoch.
  absl::flat_hash_map<uint64_t, std::pair<std::string, std::vector<BlockId>>> deferred_free_
      ABSL_GUARDED_BY(mu_);
  bool verifier_stop_ ABSL_GUARDED_BY(mu_) = false;

  std::thread loop_;
  std::thread verifier_;
};

}  // namespace pdserve::decode
