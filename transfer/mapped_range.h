#pragma once

// Whether a peer's pool, mapped into this process by someone else (UCX's ucp_rkey_ptr over
// shared memory), is as large as the peer's descriptor claims. The descriptor is another
// process's word: a block count larger than its segment would make our stores run past the
// mapping (a crash) or, worse, into whatever this process mapped next to it.

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace pdserve::transfer {

// OK when [p, p + bytes) lies inside one writable shared mapping in this process (consecutive
// /proc/self/maps entries of the same file whose offsets continue count as one);
// InvalidArgument naming `whose` and both sizes otherwise.
absl::Status CheckFileMapping(const void* p, uint64_t bytes, absl::string_view whose);

}  // namespace pdserve::transfer
