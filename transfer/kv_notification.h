#pragma once

// The notification a prefill worker sends with a request's KV batch, and the decode worker waits
// for: the request id and the decode reservation's epoch (fenced KV, docs/cluster.md). The epoch
// is decimal and last, after the last '@', so that any request id gives one message per epoch
// and a notification for an older reservation of the same request never matches a newer one.

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer {

inline std::string KvNotification(const std::string& request_id, uint64_t epoch) {
  return absl::StrCat(request_id, "@", epoch);
}

}  // namespace pdserve::transfer
