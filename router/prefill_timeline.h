#pragma once

// What a prefill worker reports for one item (PrefillItemResult), copied into the request's
// timeline. It comes from another process and ends up in clients' reports and the router's
// logs, so what could mislead or inject is bounded here: the copy wait clamped to [0, 1 h], the
// backend name short and of [a-z0-9/_-] (else "(invalid)"), the transports line cut at 256 bytes
// and escaped.

#include <string>

#include "pdserve.pb.h"

namespace pdserve::router {

inline constexpr int64_t kMaxReportedCopyWaitUs = 3'600'000'000;

std::string SafeBackendName(const std::string& name);
std::string SafeTransports(const std::string& text);

// Copies the item's times and transfer figures; the backend only when the worker named one
// (the caller falls back to the decode worker's pool otherwise).
void RecordPrefillResult(const v1::PrefillItemResult& r, v1::RequestTimeline& t);

}  // namespace pdserve::router
