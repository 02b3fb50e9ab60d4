#pragma once

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

  // vllm's per-request TPOT: (E2E - TTFT) / (output tokens - 1); 0 with one output token.
  double TpotS() const {
    return output_tokens > 1 ? (e2el_s - ttft_s) / (output_tokens - 1) : 0.0;
  }
};

}  // namespace pdserve::loadgen
