#include "router/prefill_timeline.h"

#include <algorithm>

#include "absl/strings/escaping.h"

namespace pdserve::router {

std::string SafeBackendName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 32 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
                           c == '-' || c == '_';
                  });
  return ok ? name : "(invalid)";
}

std::string SafeTransports(const std::string& text) {
  return absl::CEscape(text.size() <= 256 ? text : text.substr(0, 256) + "...");
}

void RecordPrefillResult(const v1::PrefillItemResult& r, v1::RequestTimeline& t) {
  t.set_prefill_start_us(r.prefill_start_us());
  t.set_prefill_end_us(r.prefill_end_us());
  t.set_transfer_start_us(r.transfer_start_us());
  t.set_transfer_end_us(r.transfer_end_us());
  t.set_kv_bytes(r.kv_bytes());
  t.set_transfer_ops(r.transfer_ops());
  t.set_transfer_batches(r.transfer_batches());
  t.set_transfer_busy_us(r.transfer_busy_us());
  t.set_transfer_copy_wait_us(
      std::clamp<int64_t>(r.transfer_copy_wait_us(), 0, kMaxReportedCopyWaitUs));
  t.set_modelled_prefill_us(r.modelled_prefill_us());
  t.set_prefill_mock_cpu_us(r.mock_cpu_us());
  // A per-peer choice (auto): which of the two the prefill worker used.
  if (!r.transfer_backend().empty()) t.set_transfer_backend(SafeBackendName(r.transfer_backend()));
  t.set_transports(SafeTransports(r.transports()));
}

}  // namespace pdserve::router
