#pragma once
// Status codes that come from another process (a field of a protobuf message, a fast-lane frame)
// are hostile like any input: an int cast to absl::StatusCode may name no code at all, and 0 is
// OK. A peer that reports a failure with code 0 must not turn it into success.

#include <cstdint>

#include "absl/status/status.h"

namespace pdserve {

// A code as a status carries it (0 is OK); anything absl does not know is kUnknown.
inline absl::StatusCode StatusCodeFromWire(int64_t code) {
  return code >= 0 && code <= static_cast<int64_t>(absl::StatusCode::kUnauthenticated)
             ? static_cast<absl::StatusCode>(code)
             : absl::StatusCode::kUnknown;
}

// The code of a reported failure: OK (0) or unknown becomes `fallback`, never OK.
inline absl::StatusCode FailureCodeFromWire(int64_t code,
                                            absl::StatusCode fallback = absl::StatusCode::kUnknown) {
  const absl::StatusCode c = StatusCodeFromWire(code);
  return c == absl::StatusCode::kOk || c == absl::StatusCode::kUnknown ? fallback : c;
}

}  // namespace pdserve
