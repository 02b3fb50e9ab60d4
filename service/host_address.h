#pragma once

// Where a process listens (--listen), what it tells peers to use (--advertise) and which machine
// it says it runs on (--host-id). Peers only ever dial registered (advertised) addresses, so a
// process may listen on an address that is not reachable from elsewhere (0.0.0.0, when the user
// asks for it) and still be found.

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pdserve::service {

// The router refuses a registration whose host id is longer (a hostname is at most 253 bytes).
inline constexpr size_t kMaxHostIdBytes = 255;

// An IPv4 or IPv6 literal ("[::1]" is taken as "::1"); InvalidArgument naming `flag` otherwise.
// Names are refused: a listener binds an address, and a name could resolve to 0.0.0.0 or to
// another interface than the user meant.
absl::StatusOr<std::string> ParseListenAddress(const std::string& flag, const std::string& address);

// What peers dial: an IP literal or a DNS name (letters, digits, '-', '.'), never an
// unspecified address (0.0.0.0, ::), which no peer can reach. Empty: `listen`, unless that is
// unspecified, which is then an error asking for --advertise.
absl::StatusOr<std::string> ResolveAdvertiseAddress(const std::string& listen,
                                                    const std::string& advertise);

// host:port, with brackets around an IPv6 literal so that the port stays separable.
std::string JoinHostPort(const std::string& host, int port);

// --host-id, checked (printable ASCII without spaces, 1..kMaxHostIdBytes); empty: this machine's
// hostname. The router groups workers by it.
absl::StatusOr<std::string> ResolveHostId(const std::string& host_id);

// Whether `host_id` is within the bounds above (the router checks registrations with it).
bool ValidHostId(const std::string& host_id);

}  // namespace pdserve::service
