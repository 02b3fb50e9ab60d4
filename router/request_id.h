#pragma once

// Request ids the router chooses for requests that come without one, and the namespace they live
// in. A server id is "cmpl-" and 32 hex digits of 128 bits from the kernel's random source, as
// vLLM's `cmpl-<uuid hex>`: unique without coordination and unguessable, so that nobody can aim
// a cancel or a collision at another client's request. Clients may choose their own ids, but not
// ones in the server's namespace (CheckClientRequestId), so the two never collide.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pdserve::router {

inline constexpr absl::string_view kServerRequestIdPrefix = "cmpl-";

// A fresh server id. Internal only when the kernel gives no randomness (getrandom fails).
absl::StatusOr<std::string> NewServerRequestId();

// InvalidArgument for a client-chosen id that starts with kServerRequestIdPrefix. Empty ids
// (the server chooses) and every other id are OK here; length is PromptOf's business.
absl::Status CheckClientRequestId(absl::string_view id);

}  // namespace pdserve::router
