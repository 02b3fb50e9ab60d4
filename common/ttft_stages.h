#pragma once

// Where one request's time to first token goes (issue 15): eight stages that partition the
// router's TTFT, arrival -> first token relayed to the client's stream (the span
// vllm:time_to_first_token_seconds observes), with no overlap and no gap. One definition for
// the router's Prometheus histograms (router/router_metrics.h) and the load generator's means
// (loadgen/summary.h), so that the dashboard and the report split TTFT the same way.
//
//   stage         from (clock)                      to (clock)
//   queue         arrival (router)                  scheduled: left the waiting queue (router)
//   allocate      scheduled (router)                allocated: the decode worker granted the
//                                                   prompt's blocks (router)
//   dispatch      allocated (router)                prefill_start: prefill compute began
//                                                   (prefill worker); the Prefill RPC and any
//                                                   wait behind the batch's earlier items
//   prefill       prefill_start (prefill)           prefill_end (prefill); with KV streamed
//                                                   during the prefill, the hidden part of the
//                                                   transfer is here
//   kv_transfer   prefill_end (prefill)             transfer_end: the last KV batch landed, as
//                                                   the prefill worker saw it complete (prefill);
//                                                   submission included; only the part of the
//                                                   transfer the prefill did not hide
//   decode_admit  transfer_end (prefill)            decode_join: the decode worker took the
//                                                   request into its batch (decode): the KV
//                                                   notification, the Decode call's arrival
//                                                   when its stream was not opened early, the
//                                                   wait for the next step
//   first_step    decode_join (decode)              first_token: produced (decode)
//   relay         first_token (decode)              first_token_relayed: the chunk reached the
//                                                   router and went to the client's stream
//                                                   (router)
//
// Clamping: each stage boundary is clamped into [the previous boundary, first_token_relayed].
// A boundary read on another host's clock (prefill_start, transfer_end, decode_join,
// first_token), or one that legitimately comes earlier (a decode worker that joins the request
// before the prefill worker has seen its transfer complete), so moves time between two
// adjacent stages instead of making one negative, and the stages always sum to exactly
// first_token_relayed - arrival. On one host (one wall clock) nothing is clamped except that
// early join.
//
// Optional events: allocated and transfer_end may be 0 (not recorded: an older server; no KV
// moved, as with colocated workers; the router asked for the decode blocks alongside the
// Prefill call, router/run_batch.cc, so that no Allocate precedes the prefill: a destination
// that came after the kernels ended then shows in kv_transfer); their stage then has length 0
// and the next one starts at the previous boundary. Every other event is required: without it there is no split.

#include <array>
#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace pdserve {

inline constexpr int kNumTtftStages = 8;

// The stages' names, in path order: the `stage` label of pdserve:ttft_stage_seconds and the
// <stage> of the load generator's mean_ttft_stage_<stage>_ms.
const std::array<absl::string_view, kNumTtftStages>& TtftStageNames();

// The events bounding the stages, microseconds since the Unix epoch on the recording
// process's wall clock; 0 = not recorded.
struct TtftEvents {
  int64_t arrival_us = 0;
  int64_t scheduled_us = 0;
  int64_t allocated_us = 0;
  int64_t prefill_start_us = 0;
  int64_t prefill_end_us = 0;
  int64_t transfer_end_us = 0;
  int64_t decode_join_us = 0;
  int64_t first_token_us = 0;
  int64_t first_token_relayed_us = 0;
};

// From anything with RequestTimeline's accessors (the proto message; a template so that
// common/ needs no proto).
template <typename Timeline>
TtftEvents TtftEventsOf(const Timeline& t) {
  return {.arrival_us = t.arrival_us(),
          .scheduled_us = t.scheduled_us(),
          .allocated_us = t.allocated_us(),
          .prefill_start_us = t.prefill_start_us(),
          .prefill_end_us = t.prefill_end_us(),
          .transfer_end_us = t.transfer_end_us(),
          .decode_join_us = t.decode_join_us(),
          .first_token_us = t.first_token_us(),
          .first_token_relayed_us = t.first_token_relayed_us()};
}

// Each stage's length in microseconds (>= 0, summing to first_token_relayed - arrival), in
// TtftStageNames' order; nullopt when a required event is missing or the first token was
// relayed before the arrival (a malformed timeline).
std::optional<std::array<int64_t, kNumTtftStages>> SplitTtft(const TtftEvents& e);

}  // namespace pdserve
