#include "bench/transfer_overlap.h"

#include <algorithm>

namespace pdserve::bench {

bool IntervalOf(double start_s, const nlohmann::json& t, TransferInterval* out) {
  if (!t.is_object() || !t.contains("ttft_stages_ms") || !t["ttft_stages_ms"].is_object()) {
    return false;
  }
  const nlohmann::json& stages = t["ttft_stages_ms"];
  double landed = start_s * 1e3;
  for (const char* stage : {"queue", "allocate", "dispatch", "prefill", "kv_transfer"}) {
    if (!stages.contains(stage) || !stages[stage].is_number()) return false;
    landed += stages[stage].get<double>();
  }
  const double transfer = t.value("transfer_ms", -1.0);
  if (transfer < 0) return false;
  out->end_ms = landed;
  out->begin_ms = landed - transfer;
  out->prefill_end_ms = landed - stages["kv_transfer"].get<double>();
  out->prefill_begin_ms = out->prefill_end_ms - stages["prefill"].get<double>();
  out->prefill_worker = t.value("prefill_worker", "");
  out->decode_worker = t.value("decode_worker", "");
  out->copy_wait_ms = std::max(0.0, t.value("transfer_copy_wait_ms", 0.0));
  return true;
}

double WaitShare(const TransferInterval& interval, double transfer_ms) {
  return transfer_ms > 0 ? interval.copy_wait_ms / transfer_ms : 0.0;
}

bool Starved(double wait_share, double baseline_wait_share) {
  return wait_share > baseline_wait_share + kStarvedWaitShare;
}

std::vector<bool> RanAlone(const std::vector<TransferInterval>& v) {
  std::vector<bool> alone(v.size(), true);
  for (size_t i = 0; i < v.size(); ++i) {
    for (size_t j = i + 1; j < v.size(); ++j) {
      const bool shared = v[i].prefill_worker == v[j].prefill_worker ||
                          v[i].decode_worker == v[j].decode_worker;
      if (shared && v[i].begin_ms < v[j].end_ms && v[j].begin_ms < v[i].end_ms) {
        alone[i] = alone[j] = false;
      }
      if (v[i].prefill_worker != v[j].prefill_worker) continue;
      // One's transfer during the other's prefill (an empty prefill interval never overlaps).
      auto during_prefill = [](const TransferInterval& t, const TransferInterval& p) {
        return t.begin_ms < p.prefill_end_ms && p.prefill_begin_ms < t.end_ms &&
               p.prefill_begin_ms < p.prefill_end_ms;
      };
      if (during_prefill(v[i], v[j])) alone[i] = false;
      if (during_prefill(v[j], v[i])) alone[j] = false;
    }
  }
  return alone;
}

}  // namespace pdserve::bench
