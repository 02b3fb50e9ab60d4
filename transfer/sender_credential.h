#pragma once

// What a KV sender presents to a receiver's notification endpoint (the `local` backend's hello,
// the header of every `ucx` notification): the cluster credential (TransportOptions::
// peer_credential) and its agent name, both bounded. The receiver drops what does not carry its
// own credential, so that only processes holding the cluster secret can announce KV.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pdserve::transfer {

inline constexpr size_t kMaxAgentBytes = 256;        // a sender's name
inline constexpr size_t kMaxCredentialBytes = 1024;  // ClusterSecret::kMaxChars

struct SenderHeader {
  std::string credential;
  std::string agent;
};

// Credential length (2 bytes), credential, agent name; each cut to its bound.
std::string EncodeSenderHeader(std::string_view credential, std::string_view agent);
// InvalidArgument for a truncated header or fields over their bounds.
absl::StatusOr<SenderHeader> DecodeSenderHeader(std::string_view bytes);
// PermissionDenied unless `presented` equals `expected` (constant time); OK when `expected`
// is empty (authentication off).
absl::Status CheckSenderCredential(std::string_view expected, std::string_view presented);

}  // namespace pdserve::transfer
