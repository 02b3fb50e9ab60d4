#pragma once

// The router: the cluster's front door and the owner of the scheduler.
//
// Request life (router_requests.cc: RequestCore::Start, which gRPC Generate and the HTTP API
// call): Start validates and queues the request (Scheduler::Enqueue) and returns. The
// dispatcher thread runs Scheduler::Schedule whenever something changed and hands each planned
// batch to an executor thread (run_batch.cc), which calls Prefill on the batch's prefill worker
// (kernels + KV transfer) and, alongside it, allocates the prompt's blocks on each item's decode
// worker and passes them on to the prefill worker while its kernels run (`--allocate-first`:
// allocate, then call Prefill), then marks every item ready or failed (SettledLocked). A settled request continues on the work queue: a ready one
// opens its Decode stream on its decode worker (decode_stream.cc, gRPC's callback API: no
// thread waits on it), which relays the tokens to the request's sink and, at its end, returns
// the request's reservation. No thread is held per request.
//
// Early decode streams: opening the Decode stream only once Prefill returned put a whole call
// set-up and the decode worker's wait after the KV had landed into every first token (0.3 ms of
// the 1 ms the control plane took on the 2-core host, `pdserve bench control-plane`). So the
// executor opens an item's stream as soon as its blocks are allocated, while the prefill runs:
// the decode worker waits for the KV notification as it always did, and joins the request the
// moment the KV lands. The stream reads nothing until the prefill's outcome is known (a hold on
// the call, SettleEarlyStream): a prefill that fails ends the request with the prefill's error,
// its blocks released exactly as without a stream (the stream is cancelled first), and tokens
// reach the client only for a prefill the router accepted. The one thing a stream opened early
// cannot carry is the prefill worker's checksum claim, which comes with the Prefill answer: so
// a request that may get one opens its stream afterwards, as before
// (Worker::longest_unclaimed_prompt).
//
// Faults: a worker that misses heartbeats, or whose RPC fails and then does not answer a probe,
// is dropped: in-flight RPCs to it are cancelled, so exactly the requests it held end with
// Unavailable (no retry: a request's KV lives on the workers that died); waiting requests are
// placed on the remaining workers. Every RPC has a deadline. Blocks are released on every path:
// a request that fails after its decode allocation gets a Release on that decode worker.
//
// Health (router_health.cc): a worker that announces its shutdown in a heartbeat (draining) gets
// nothing new; a circuit breaker (worker_health.h) keeps new requests away from a worker whose
// requests keep failing; a watchdog (progress_watchdog.h) fails a decode stream that goes
// without a token for too long and counts that against its worker.
//
// Fenced KV: a prefill the router gives up on (its deadline, a dropped worker) may still write
// the request's decode blocks. Before releasing them the router asks the prefill worker to
// cancel the items (PrefillWorker.Cancel) and tells the decode worker what it learnt: blocks of
// a writer that will not write are freed at once, the others stay quarantined on the decode
// worker until the KV lands or the writer is gone (router_fence.cc, docs/cluster.md).

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "pdserve.grpc.pb.h"
#include "router/progress_watchdog.h"
#include "router/request_core.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"
#include "router/work_queue.h"
#include "router/worker_health.h"
#include "service/cluster_auth.h"
#include "service/fast_lane.h"

namespace pdserve::router {

struct RouterOptions {
  ModelConfig config;               // the model every worker must serve
  std::string transfer_backend;     // expected of every worker; empty: any
  SchedulerConfig scheduler;
  absl::Duration heartbeat_interval = absl::Milliseconds(250);
  int missed_heartbeats = 20;       // silent this many intervals (5 s): dropped
  absl::Duration rpc_timeout = absl::Seconds(10);      // Allocate, Release, AddPeer, status
  absl::Duration prefill_timeout = absl::Seconds(120); // one Prefill batch incl. KV transfer
  absl::Duration transfer_timeout = absl::Seconds(30); // decode waits this long for the KV
  absl::Duration decode_timeout = absl::Seconds(600);  // a whole Decode stream
  absl::Duration queue_timeout = absl::Seconds(300);   // longest wait in the queue
  int executor_threads = 8;
  // Ask the decode worker for an item's blocks alongside its Prefill call, not before it
  // (run_batch.cc); false: Allocate first (the order before; `--allocate-first`).
  bool allocate_alongside_prefill = true;
  // Reach same-host workers' fast lanes (service/fast_lane.h) for the calls on the first
  // token's path; false: gRPC for everything (`--no-fast-lane`).
  bool fast_lane = true;
  // A request that arrives at an idle router nudges the same-host prefill workers' fast lanes
  // (FastLaneClient::Nudge) before the executor is woken, so that the prefill worker's reader
  // is awake when the Prefill frame comes; false: no nudge (`--no-nudge`, for comparisons).
  bool nudge_prefill = true;
  // Attaches the cluster credential to every call to a worker (null: none, as
  // ClusterAuth::Insecure()).
  std::shared_ptr<const service::ClusterAuth> auth;
  CircuitBreakerOptions breaker;
  // Progress watchdog: longest gap between two tokens of a decode stream; the first token may
  // take transfer_timeout longer (the wait for the prompt's KV). <= 0: no watchdog.
  absl::Duration token_timeout = absl::Seconds(30);
  // A registering worker must answer a status probe within this, before any lock is taken.
  absl::Duration registration_probe_timeout = absl::Seconds(2);
};

// The client API (Router: Generate, GetStatus) and the request core every front end shares
// (RequestCore: Start, State; router_requests.cc). Worker registration and heartbeats are served by
// RouterControlService (router_control.h) on the internal port, which authenticates the caller
// and then calls RegisterWorker / Heartbeat here.
// Generate runs on gRPC's callback API (router/generate_reactor.h): an open stream holds no
// thread; the other methods stay synchronous.
class RouterService final : public v1::Router::WithCallbackMethod_Generate<v1::Router::Service>,
                            public RequestCore {
 public:
  explicit RouterService(RouterOptions options);
  ~RouterService() override;
  RouterService(const RouterService&) = delete;
  RouterService& operator=(const RouterService&) = delete;

  // A thin adapter over Start (router/generate_reactor.h).
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) override;
  // RequestCore (router/request_core.h).
  std::shared_ptr<Call> Start(const GenerateParams& params,
                              std::shared_ptr<EventSink> sink) override;
  CoreState State() const override;
  const metrics::Registry* Metrics() const override { return &registry_; }
  // Not RPCs of this service (the client port answers UNIMPLEMENTED for them): called by
  // RouterControlService once the caller is authenticated.
  grpc::Status RegisterWorker(grpc::ServerContext* ctx, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response);
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response);
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* request,
                         v1::ClusterStatus* response) override;

 private:
  struct Worker {
    std::string id;
    v1::WorkerRole role = v1::WORKER_ROLE_UNSPECIFIED;
    std::string address;
    std::string host_id;  // as registered (checked by CheckWorkerRegistration)
    std::string gpu;      // RegisterWorkerRequest.gpu (checked likewise)
    int32_t numa_node = -1;  // -1: not reported
    int32_t pid = 0;
    v1::KvPoolDescriptor kv_pool;
    std::unique_ptr<v1::PrefillWorker::Stub> prefill;
    std::unique_ptr<v1::DecodeWorker::Stub> decode;
    // Same host: Prefill, SetDestinations and Allocate go by the worker's fast lane
    // (service/fast_lane.h) instead of gRPC; null when it has none or it is not reachable.
    std::shared_ptr<service::FastLaneClient> fast;
    absl::Time last_heartbeat;  // SteadyNow()
    v1::WorkerCapacity capacity;  // from the last heartbeat
    uint64_t served = 0;
    bool draining = false;  // announced in a heartbeat: nothing new is placed on it
    // Prefill workers: the longest prompt whose result came back without a checksum claim. A
    // worker claims for prompts from a size on (PrefillItemResult.kv_checksum), so a prompt no
    // longer than this gets none and its decode stream may open before the prefill's answer.
    // A wrong guess costs time only: a decode worker without the claim reads the KV itself.
    int32_t longest_unclaimed_prompt = 0;
    // RPCs in flight to this worker, cancelled when it is dropped.
    std::set<grpc::ClientContext*> inflight;
  };

  // The same-host worker the scheduler is about to give a request arriving at an idle router,
  // told that a Prefill call is coming (FastLaneClient::Nudge): at most one, none when busy.
  std::vector<std::shared_ptr<service::FastLaneClient>> NudgeTargetsLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  enum class Phase { kWaiting, kPrefilling, kReady, kFailed };
  struct Request {
    std::string id;
    std::vector<int32_t> prompt;
    int max_tokens = 0;
    uint64_t seed = 0;
    Phase phase = Phase::kWaiting;
    absl::Status status;  // kFailed
    std::string decode_worker;
    uint64_t decode_epoch = 0;  // the decode reservation's lease id
    std::optional<uint64_t> kv_checksum;  // the prefill worker's claim, passed to the decode
    int allocate_refusals = 0;  // placements its decode worker refused for lack of blocks
    v1::RequestTimeline timeline;
    // The client's side (Start): where its events go, and whether it gave up.
    std::shared_ptr<EventSink> sink;
    absl::Time queue_deadline;  // SteadyNow()
    std::atomic<bool> cancelled{false};
    std::atomic<bool> completed{false};  // OnDone was called (Complete)
    absl::Mutex stream_mu;
    grpc::ClientContext* stream ABSL_GUARDED_BY(stream_mu) = nullptr;  // its Decode call
  };
  class DecodeStream;  // decode_stream.cc
  class CallHandle;

  // What a Release tells the decode worker about who may still write the reservation's blocks.
  struct KvRelease {
    uint64_t epoch = 0;
    bool writer_fenced = true;   // no more bytes will land: free the blocks at once
    std::string writer;          // the prefill worker that was sent the item
    int32_t writer_pid = 0;
    std::string writer_address;
  };

  struct BatchJob {
    PrefillBatchPlan plan;
  };

  // A request's stages after Start (router_requests.cc).
  absl::Status Fail(const std::shared_ptr<Request>& request, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a request turned away (pdserve:requests_rejected_total) and returns its status.
  absl::Status Reject(absl::Status status);
  void FinishRequest(const std::shared_ptr<Request>& request, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  // The request's phase became kReady or kFailed: it continues on the work queue.
  void SettledLocked(const std::shared_ptr<Request>& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On the work queue: a settled request fails, or opens its decode stream.
  void Continue(const std::shared_ptr<Request>& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the request for its client (EventSink::OnDone, once).
  void Complete(const std::shared_ptr<Request>& request, const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens a ready request's decode stream (decode_stream.cc), which ends the request.
  void OpenDecodeStream(const std::shared_ptr<Request>& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Early decode streams (above). Opens the stream of an allocated request whose prefill has
  // not run (request->decode_epoch set); null when it cannot (the worker left, the router
  // stops): the request then opens it once ready, as without. The stream reads nothing and
  // cannot end until SettleEarlyStream, which every opened stream must get exactly once:
  // with OK it relays the tokens and ends the request; with the prefill's failure (the request
  // already kFailed, its blocks released) it ends the call and then fails the request.
  // CancelEarlyStream cancels the call only (before releasing a failed item's blocks).
  DecodeStream* OpenEarlyStream(const std::shared_ptr<Request>& request) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelEarlyStream(DecodeStream* stream);
  void SettleEarlyStream(DecodeStream* stream, bool prefill_ok) ABSL_LOCKS_EXCLUDED(mu_);
  // Call::Cancel: a queued request ends at once, a decoding one at its next chunk.
  void CancelRequest(const std::shared_ptr<Request>& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Periodic (sweeper): queued requests past their queue deadline fail.
  void ExpireQueued() ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a waiting request out of the queue; false when it was placed or ended meanwhile.
  bool DequeueLocked(const std::shared_ptr<Request>& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Threads.
  void DispatchLoop();
  void ExecutorLoop();
  // One scheduling step (a kick): new batches go to jobs_, rejected requests end.
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SweepLoop();
  // One prefill batch (run_batch.cc: where the decode blocks come from, and when).
  struct BatchItem;
  void RunBatch(const PrefillBatchPlan& plan);
  // Asks each item's decode worker for its blocks (for the epoch the item names, 0: the
  // worker's choice): without `answers`, one call after the other, returning when all ended;
  // with it, all at once, each item's index added to `answers` when its call ended.
  struct AllocateAnswers;
  void AllocateItems(std::vector<BatchItem>& items, AllocateAnswers* answers)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sorts an answer: refused (no room: the request waits again), failed, or allocated.
  void NoteAllocation(const std::string& prefill_worker, BatchItem& item,
                      std::map<std::string, absl::Status>& failures,
                      std::set<std::string>& refused) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the prefill worker each item's blocks, or why it has none, without waiting for its
  // answer (`call` says when it came); a failed call cancels `prefill_call`, whose items would
  // otherwise wait for blocks that never come.
  struct DestinationsCall;
  void SendDestinations(const std::shared_ptr<Worker>& prefill,
                        const std::vector<BatchItem*>& items,
                        const std::map<std::string, absl::Status>& failures,
                        const std::set<std::string>& refused, DestinationsCall& call,
                        const std::function<void()>& cancel_prefill) ABSL_LOCKS_EXCLUDED(mu_);
  // After the Prefill call: every item goes on to decode, waits again or fails (its blocks
  // released once its writer is fenced).
  void SettleBatch(const PrefillBatchPlan& plan, const std::shared_ptr<Worker>& prefill_worker,
                   bool prefill_sent, std::vector<BatchItem>& items,
                   const std::map<std::string, v1::PrefillItemResult>& results,
                   std::map<std::string, absl::Status>& failures,
                   const std::set<std::string>& refused) ABSL_LOCKS_EXCLUDED(mu_);

  // Requeueing (router_queue.cc). A decode worker refused the request's Allocate for lack of
  // blocks (its pool is fuller than the scheduler's accounting: blocks quarantined after a
  // fenced release, a stale view): the request waits again instead of failing, up to
  // kMaxAllocateRefusals times. It goes back to the head of the queue at the next sweep, once
  // the worker had a heartbeat's time to free blocks, so a refusal does not spin.
  static constexpr int kMaxAllocateRefusals = 40;
  void RequeueRefusedLocked(const std::shared_ptr<Request>& request, const std::string& decode_worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Periodic (sweeper): refused requests back into the queue, oldest first.
  void RequeueDeferred() ABSL_LOCKS_EXCLUDED(mu_);

  // Worker helpers (router_workers.cc).
  void KickLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { kick_ = true; }
  // Forgets the worker and cancels its RPCs; returns false when it was not known.
  bool DropWorkerLocked(const std::string& id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a decode worker left: prefill workers unload it (best effort, outside the lock).
  // Removes the dropped decode instance's peer from every prefill worker (only that instance:
  // `descriptor` is its pool's; a restart under the same id keeps its peer).
  void RemovePeerEverywhere(const std::string& decode_worker, const std::string& descriptor)
      ABSL_LOCKS_EXCLUDED(mu_);
  // An RPC to the worker failed: drop it unless it answers GetStatus.
  void ProbeWorker(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Registers / unregisters a client context on a worker; false when the worker is gone.
  bool TrackRpc(const std::string& worker, grpc::ClientContext* ctx) ABSL_LOCKS_EXCLUDED(mu_);
  void UntrackRpc(const std::string& worker, grpc::ClientContext* ctx) ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseOnDecode(const std::string& worker, const std::string& request_id,
                       const KvRelease& release) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels abandoned items on the prefill worker they were sent to (router_fence.cc); returns
  // the request ids whose KV can no longer land (the others may still be written).
  std::set<std::string> FenceOnPrefill(const std::shared_ptr<Worker>& prefill,
                                       const std::vector<v1::PrefillCancelItem>& items)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Health (router_health.cc). The outcome of a request or batch a worker served: feeds the
  // circuit breaker, logs a quarantine, and reschedules when placeability changed.
  void RecordOutcome(const std::string& worker, const absl::Status& outcome)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Applies draining and the breaker to the scheduler; true when a worker's placeability changed.
  bool RefreshAcceptingLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Periodic (sweeper): cancels stalled decode streams, ends quarantines whose time is up.
  void SweepHealth() ABSL_LOCKS_EXCLUDED(mu_);
  // A heartbeat's drain announcement; returns the requests still placed on the worker.
  uint32_t NoteHeartbeatLocked(Worker& worker, bool draining) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Router-side health fields of a worker's status.
  void AddHealthLocked(const Worker& worker, v1::WorkerStatus& out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Fails a decode stream the watchdog cancelled after `received` tokens.
  absl::Status FailStalled(const std::shared_ptr<Request>& request, int received)
      ABSL_LOCKS_EXCLUDED(mu_);
  // What a Prefill answer says about its worker: OK when any item made it, the first failure
  // of its own otherwise; none when every item failed for its decode peer's sake.
  static std::optional<absl::Status> PrefillVerdict(const v1::PrefillBatchResponse& response);
  // A registering worker's AddPeer fan-out (no lock held): a prefill worker loads
  // `decode_pools` (an error fails its registration); a decode worker is loaded by
  // `prefill_workers` (failures are logged: those workers' items for it fail Unavailable).
  absl::Status WirePeers(
      const Worker& worker,
      const std::vector<std::pair<std::string, v1::KvPoolDescriptor>>& decode_pools,
      const std::vector<std::shared_ptr<Worker>>& prefill_workers) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether a registering worker answers at its address (outside every lock).
  absl::Status ProbeRegistration(const v1::RegisterWorkerRequest& request) const;

  const RouterOptions options_;
  // Declared before everything that records into it (router_metrics.h).
  metrics::Registry registry_;
  const std::unique_ptr<RouterMetrics> metrics_;
  // Scrape time: the gauges from the router's state.
  void CollectMetrics() const ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);
  // Registrations wiring their transfer peers (no lock held meanwhile): seen by registrations
  // that start later, not placeable yet (RegisterWorker).
  std::map<std::string, std::shared_ptr<Worker>> joining_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Request>> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<BatchJob> jobs_ ABSL_GUARDED_BY(mu_);
  bool kick_ ABSL_GUARDED_BY(mu_) = false;
  int idle_executors_ ABSL_GUARDED_BY(mu_) = 0;  // waiting in ExecutorLoop
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Refused requests waiting for the next sweep to requeue them, in placement order.
  std::deque<std::string> deferred_ ABSL_GUARDED_BY(mu_);
  uint64_t requeued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_workers_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<WorkerHealthPolicy> health_ ABSL_GUARDED_BY(mu_);
  ProgressWatchdog watchdog_;
  // Requests started and not yet completed (Start .. Complete): the destructor waits for them.
  int live_requests_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread dispatcher_;
  std::thread sweeper_;
  std::vector<std::thread> executors_;
  // Declared last: destroyed (drained and joined) first, while everything its work uses lives.
  std::unique_ptr<WorkQueue> work_;
};

}  // namespace pdserve::router
