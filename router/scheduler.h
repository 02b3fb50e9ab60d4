#pragma once

// The router's scheduler: plain state and a step function, no threads, sockets or clocks, so it
// is tested the way vLLM tests its scheduler. The router service owns one instance under its
// mutex, feeds it events (a request arrived, a batch finished prefill, a request finished
// decoding, a worker joined or left) and executes the batches Schedule() returns.
//
// Policy:
//  - Waiting queue: FCFS and bounded (ResourceExhausted past the bound). The head of the queue
//    blocks the requests behind it, so a large request is never starved by small ones.
//  - Decode placement: the decode worker with the most unreserved blocks among those with room for
//    prompt + max_tokens positions. The reservation is held until DecodeDone, so a dispatched
//    request never fails for lack of blocks. When no worker has room, the head waits.
//  - Prefill batching: consecutive placed requests form a batch up to max_batched_tokens prompt
//    tokens and max_batch_size requests, on the least-loaded prefill worker (fewest in-flight
//    tokens) that has room in its own pool and fewer than max_inflight_batches batches. A prompt
//    longer than the token budget forms a batch alone; the worker runs it in chunks.
//  - Workers that do not accept new requests (draining, or quarantined by the router's health
//    policy) are skipped by placement but still count for "can it ever fit": their requests
//    wait for them to come back (or for a replacement) instead of being rejected.
//  - Colocated workers (prefill and decode on one pool, no KV transfer) are both a prefill and
//    a decode worker under one id: a request placed on one for decode is prefilled there too,
//    needs no prefill blocks of its own (the kernels write its decode reservation), and its
//    batch takes one of the worker's max_inflight_batches like any prefill batch. Placement
//    picks, among the decode candidates (split or colocated) that can take the request now, the
//    one with the most unreserved blocks, as for split workers.
//  - A request that can never fit (prompt larger than every prefill pool, or prompt + output
//    larger than every decode pool) is rejected at once with InvalidArgument, also when the
//    worker that could hold it leaves while the request waits.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::router {

struct SchedulerConfig {
  uint32_t max_waiting = 1024;
  int max_batched_tokens = 2048;
  int max_batch_size = 16;
  int max_inflight_batches = 2;  // per prefill worker
  int block_size = 16;           // tokens per KV block (the model's)
};

struct PendingRequest {
  std::string id;
  int prompt_len = 0;
  int max_tokens = 0;
};

// One request of a batch, placed on a decode worker with its reservation.
struct Placement {
  std::string request_id;
  std::string decode_worker;
  uint32_t decode_blocks = 0;   // reserved on the decode worker: prompt + max_tokens positions
  uint32_t prefill_blocks = 0;  // needed on the prefill worker: the prompt
  int prompt_len = 0;
};

struct PrefillBatchPlan {
  uint64_t batch_id = 0;
  std::string prefill_worker;
  int tokens = 0;
  std::vector<Placement> items;
};

struct RejectedRequest {
  std::string request_id;
  absl::Status status;
};

struct ScheduleStep {
  std::vector<PrefillBatchPlan> batches;
  std::vector<RejectedRequest> rejected;
};

// Load of one worker as the scheduler sees it.
struct WorkerLoad {
  std::string id;
  uint32_t total_blocks = 0;
  uint32_t reserved_blocks = 0;
  int inflight_batches = 0;   // prefill only
  int64_t inflight_tokens = 0;  // prefill only
  int running_requests = 0;   // decode only: placed and not yet DecodeDone
  bool accepting = true;      // false: placement skips it (draining or quarantined)
  // Requests placement may still give it (-1: any number): 1 for a half-open breaker's trial.
  int placement_budget = -1;
  bool colocated = false;     // one worker in both maps: it prefills what it decodes
  // A prefill worker whose kernels write the decode reservation in place (--zero-copy): it
  // holds no blocks of its own for a request, so its pool bounds nothing.
  bool in_place = false;

  uint32_t free_blocks() const { return total_blocks - reserved_blocks; }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  const SchedulerConfig& config() const { return config_; }

  uint32_t BlocksForTokens(int64_t tokens) const;

  // Adding a worker that exists replaces it (its reservations are dropped).
  void AddPrefillWorker(const std::string& id, uint32_t total_blocks, bool in_place = false);
  void AddDecodeWorker(const std::string& id, uint32_t total_blocks);
  // A colocated worker: a prefill and a decode worker at once, prefilling only what it decodes.
  void AddColocatedWorker(const std::string& id, uint32_t total_blocks);
  // Forgets the worker. Returns the requests placed on it (prefill: in-flight batches; decode:
  // placed and not yet DecodeDone); their reservations elsewhere stay until the caller reports
  // PrefillDone / DecodeDone for them as usual.
  std::vector<std::string> RemoveWorker(const std::string& id);
  // Whether placement may choose the worker, and for how many requests (each placed request,
  // or prefill batch item, uses one; -1: no limit); unknown ids are ignored. Returns true when
  // either changed (the caller then reschedules).
  bool SetAccepting(const std::string& id, bool accepting, int placement_budget = -1);
  // Requests placed on the worker and not yet reported done (decode: PlacedRequest entries;
  // prefill: items of its in-flight batches).
  int PlacedOn(const std::string& id) const;

  // Queues a request: InvalidArgument when it can never fit, Unavailable when there is no
  // prefill or no decode worker, ResourceExhausted when the queue is full, AlreadyExists for a
  // duplicate id.
  absl::Status Enqueue(const PendingRequest& request);
  // Puts a request that was placed back at the head of the queue (its decode worker refused the
  // allocation; the caller reported DecodeDone first): it was admitted before everything still
  // waiting, so FCFS puts it first. Not bounded by max_waiting: it was admitted already.
  void Requeue(const PendingRequest& request);
  // Removes a waiting request (client cancel); false when it is not waiting.
  bool CancelWaiting(const std::string& request_id);

  // One scheduling step: places as many waiting requests as fit, in order.
  ScheduleStep Schedule();

  // The batch's prefill (and KV transfer) ended, whatever the outcome: frees its prefill capacity.
  void PrefillDone(uint64_t batch_id);
  // The request left its decode worker (finished, failed or released): frees its reservation.
  void DecodeDone(const std::string& request_id);

  // The prefill (or colocated) worker Schedule() would give the request at the head of the
  // queue if it ran now with no batch open; nullopt when it would place none. Changes nothing:
  // the router nudges that worker's fast lane before it schedules (NudgeTargetsLocked).
  std::optional<std::string> HeadPrefillWorker();

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_placed() const { return placed_.size(); }
  const std::map<std::string, WorkerLoad>& prefill_workers() const { return prefill_; }
  const std::map<std::string, WorkerLoad>& decode_workers() const { return decode_; }

 private:
  // InvalidArgument when no current worker could ever hold the request.
  absl::Status CheckFits(const PendingRequest& request) const;
  // The decode worker for a request needing `blocks`, among those whose prefill side can take
  // it now (a colocated worker's own prefill side: joining `open_batch`'s worker, or with a
  // batch slot free). Null: none can.
  WorkerLoad* PickDecode(uint32_t blocks, const PrefillBatchPlan* open_batch, int prompt_len);
  // A split prefill worker (never a colocated one) with room for `blocks`.
  WorkerLoad* PickPrefill(uint32_t blocks);
  // Whether the request may join `batch` on its worker (size, token and block budgets).
  bool MayJoin(const PrefillBatchPlan& batch, int prompt_len, uint32_t prefill_blocks);

  struct PlacedRequest {
    std::string decode_worker;
    uint32_t decode_blocks = 0;
  };
  struct InflightBatch {
    std::string prefill_worker;
    uint32_t blocks = 0;
    int tokens = 0;
    std::vector<std::string> request_ids;
  };

  SchedulerConfig config_;
  std::deque<PendingRequest> waiting_;
  std::map<std::string, WorkerLoad> prefill_;
  std::map<std::string, WorkerLoad> decode_;
  std::map<std::string, PlacedRequest> placed_;
  std::map<uint64_t, InflightBatch> batches_;
  uint64_t next_batch_id_ = 1;
};

}  // namespace pdserve::router
