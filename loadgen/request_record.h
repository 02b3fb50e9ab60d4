#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace pdserve::loadgen {

// Durations from the server's RequestTimeline (final chunk), in milliseconds.
struct ServerTimeline {
  bool present = false;
  double queue_ms = 0;       // arrival -> scheduled
  double prefill_ms = 0;     // prefill_start -> prefill_end
  double transfer_ms = 0;    // transfer_start -> transfer_end (KV prefill -> decode)
  double decode_ms = 0;      // end of transfer (or prefill) -> finish
  double server_ttft_ms = 0; // arrival -> first_token
  uint64_t kv_bytes = 0;
  uint32_t transfer_ops = 0;
  std::string prefill_worker;
  std::string decode_worker;
  std::string transfer_backend;
  std::string transports;  // what carried the KV for this request's pair ("memcpy", "tcp/eth0 ...")

  // The mock's own accounting and the gaps between the stages. NaN: the server did not report
  // it (a field it left at 0; decode_join_us at 0 leaves join_ms and first_step_ms unknown).
  double modelled_prefill_ms = NAN;     // modelled device time of the request's prefill batch
  double prefill_mock_cpu_ms = NAN;     // prefill worker's CPU generating this request's K/V
  double modelled_first_step_ms = NAN;  // modelled device time of its first decode step
  double decode_verify_cpu_ms = NAN;    // decode worker's CPU reading its KV to check it
  double dispatch_ms = NAN;             // arrival -> prefill_start (queue wait included)
  double handoff_ms = NAN;              // prefill_end -> transfer_start
  double join_ms = NAN;                 // transfer_end -> decode_join
  double first_step_ms = NAN;           // decode_join -> first_token
  // KV streamed during the prefill: transfer_end - max(transfer_start, prefill_end), the part of
  // the transfer the prefill did not hide (= transfer_ms when the KV left after the prefill).
  double exposed_transfer_ms = 0;
  uint32_t transfer_batches = 0;
  // How long the transfer backend's copy threads waited for a core during this request's
  // transfer (0 where the backend does not measure it): a transfer that waited long measured
  // the host's other work, not the transport.
  double transfer_copy_wait_ms = 0;
  // 1 - exposed / the batches' own busy time: the share of the transfer hidden under the
  // prefill (NaN when the server did not report the busy time, e.g. no streaming).
  double kv_hidden_share = NAN;
  // Where the router's TTFT went: common/ttft_stages.h's stages, ms, in TtftStageNames' order,
  // adding up to relayed_ttft_ms (arrival -> first token relayed to the client's stream, router
  // clock). Empty, and NaN, when the timeline lacks an event the split needs.
  std::vector<double> ttft_stage_ms;
  double relayed_ttft_ms = NAN;
};

// What the client saw of one request. Times are seconds on the client's monotonic clock,
// measured where the bytes were handed to the client (gRPC callback), relative to the run start.
struct RequestRecord {
  int index = 0;
  std::string request_id;
  int input_len = 0;
  int max_tokens = 0;
  uint64_t seed = 0;
  std::vector<int32_t> prompt_tokens;  // only with LoadOptions::save_token_ids
  double scheduled_s = 0;  // when it was due
  // When the schedule released it (its due time has passed and the sender got to it), before
  // any wait for a --max-concurrency slot: vllm's request_arrival_time.
  double arrival_s = 0;
  double send_s = 0;       // when it was sent

  bool success = false;
  std::string error;  // "<gRPC code>: <message>" or "verify: ..."; empty on success

  int output_tokens = 0;                // tokens received
  std::vector<int32_t> tokens;          // the tokens, in order
  double ttft_s = 0;                    // send -> first chunk carrying tokens
  double e2el_s = 0;                    // send -> last chunk carrying tokens
  std::vector<double> itl_s;            // gaps between consecutive token-carrying chunks
  std::vector<int32_t> event_tokens;    // tokens in each token-carrying chunk
  ServerTimeline timeline;

  // vllm's client_queue_time: how long the request waited for a --max-concurrency slot.
  double ClientQueueS() const { return send_s - arrival_s; }

  // vllm's per-request TPOT: (E2E - TTFT) / (output tokens - 1); 0 with one output token.
  double TpotS() const {
    return output_tokens > 1 ? (e2el_s - ttft_s) / (output_tokens - 1) : 0.0;
  }

  // Control-plane overhead on the TTFT path: the server's gaps between stages (arrival ->
  // prefill start, prefill end -> transfer start, transfer end -> decode join) plus the
  // client <-> router legs (client TTFT - server TTFT). NaN when a part is not reported.
  double ControlPlaneMs() const {
    if (!success || !timeline.present) return NAN;
    return timeline.dispatch_ms + timeline.handoff_ms + timeline.join_ms +
           (ttft_s * 1e3 - timeline.server_ttft_ms);
  }
  // What TTFT would be if prefill and the first decode step took exactly their modelled time:
  // modelled prefill + measured KV transfer (its part the prefill did not hide) + control plane
  // + modelled first step.
  double TtftModelMs() const {
    return timeline.modelled_prefill_ms + timeline.exposed_transfer_ms + ControlPlaneMs() +
           timeline.modelled_first_step_ms;
  }
};

}  // namespace pdserve::loadgen
