#pragma once

// Steady verified load for the fault benchmark (`pdserve bench faults`): a few client threads,
// each sending one Generate request after another to the router and checking every token it
// gets (an error's partial tokens included) against the synthetic model. Every request is kept
// as a RequestRecord; the trial loop reads them to judge each fault, and watches for the first
// verified request a given worker serves after a fault ("serving again").
//
//   FaultLoad load(cluster.endpoint(), cluster.model(), {.streams = 4});
//   load.Start();
//   load.Watch("decode-0", fault_end_ns);  ... load.ServedAfter("decode-0") ...
//   load.Pause(); load.WaitIdle(...); check leaks; load.Resume();
//   load.Stop(); std::vector<RequestRecord> all = load.Records();

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::bench {

// What became of one request.
enum class Verdict {
  kVerified,    // status OK and every token is the synthetic model's
  kCleanError,  // an error status with a message; the tokens before it (if any) were right
  kWrongTokens, // a token differs from the model's (OK or not): the one outcome never allowed
  kNeverEnded,  // the client's own deadline ran out: the cluster never ended the stream
};
const char* VerdictName(Verdict v);

struct RequestRecord {
  std::string id;
  int64_t start_ns = 0;  // monotonic
  int64_t end_ns = 0;
  Verdict verdict = Verdict::kVerified;
  int status_code = 0;   // grpc::StatusCode
  std::string message;   // the error's message ("" when OK)
  int tokens = 0;        // received
  std::string prefill_worker;  // from the final timeline (OK requests only)
  std::string decode_worker;
};

struct FaultLoadOptions {
  int streams = 4;            // client threads, one request in flight each
  int min_prompt = 16, max_prompt = 96;
  int min_tokens = 4, max_tokens = 24;
  int burst_prompt = 600;     // prompt length while a burst is asked for (long KV transfers)
  absl::Duration client_deadline = absl::Seconds(60);  // past it a request "never ended"
  uint64_t seed = 1;
};

class FaultLoad {
 public:
  FaultLoad(const std::string& endpoint, const ModelConfig& model, FaultLoadOptions options);
  ~FaultLoad();  // Stop()
  FaultLoad(const FaultLoad&) = delete;
  FaultLoad& operator=(const FaultLoad&) = delete;

  void Start();
  void Stop();  // lets the requests in flight end, joins the threads

  // No new requests while paused; WaitIdle waits for those in flight (false on timeout).
  void Pause();
  void Resume();
  bool WaitIdle(absl::Duration timeout);

  // The next `count` requests (over all streams) use burst_prompt-token prompts.
  void Burst(int count) { burst_left_ = count; }

  // From now on, remember when `worker` first finishes a verified request that started at or
  // after `after_ns`; ServedAfter returns that moment's monotonic ns, 0 while none has.
  void Watch(const std::string& worker, int64_t after_ns);
  int64_t ServedAfter(const std::string& worker);

  // Every request that ended so far, in order of ending.
  std::vector<RequestRecord> Records();
  int64_t in_flight() const { return in_flight_; }

 private:
  struct Watcher {
    int64_t after_ns = 0;
    int64_t served_ns = 0;
  };
  void Stream(int index);
  RequestRecord RunOne(const std::string& id, int prompt_len, int max_tokens, uint64_t seed);
  void Finish(const RequestRecord& record);

  std::unique_ptr<v1::Router::Stub> stub_;
  ModelConfig model_;
  FaultLoadOptions options_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<int> burst_left_{0};
  std::atomic<int64_t> in_flight_{0};
  absl::Mutex mu_;
  std::vector<RequestRecord> records_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Watcher> watch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::bench
