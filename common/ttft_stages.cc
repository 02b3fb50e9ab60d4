#include "common/ttft_stages.h"

#include <algorithm>

namespace pdserve {

const std::array<absl::string_view, kNumTtftStages>& TtftStageNames() {
  static const std::array<absl::string_view, kNumTtftStages> names = {
      "queue", "allocate", "dispatch", "prefill", "kv_transfer", "decode_admit", "first_step",
      "relay"};
  return names;
}

std::optional<std::array<int64_t, kNumTtftStages>> SplitTtft(const TtftEvents& e) {
  struct Boundary {
    int64_t us;
    bool optional;
  };
  // The ends of the stages, in path order (the header's table); the last is the TTFT's end.
  const Boundary ends[kNumTtftStages] = {
      {e.scheduled_us, false},   {e.allocated_us, true},    {e.prefill_start_us, false},
      {e.prefill_end_us, false}, {e.transfer_end_us, true}, {e.decode_join_us, false},
      {e.first_token_us, false}, {e.first_token_relayed_us, false}};
  const int64_t start = e.arrival_us, end = e.first_token_relayed_us;
  if (start <= 0 || end < start) return std::nullopt;
  std::array<int64_t, kNumTtftStages> out{};
  int64_t previous = start;
  for (int i = 0; i < kNumTtftStages; ++i) {
    if (ends[i].us <= 0 && !ends[i].optional) return std::nullopt;
    // An unrecorded optional event: its stage is empty. Otherwise clamped into [previous, end]
    // (the header says why), which keeps every stage >= 0 and the sum exact.
    const int64_t at = ends[i].us <= 0 ? previous : std::clamp(ends[i].us, previous, end);
    out[i] = at - previous;
    previous = at;
  }
  return out;
}

}  // namespace pdserve
