#include "transfer/sender_credential.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/cluster_secret.h"

namespace pdserve::transfer {

std::string EncodeSenderHeader(std::string_view credential, std::string_view agent) {
  const uint16_t n = static_cast<uint16_t>(std::min(credential.size(), kMaxCredentialBytes));
  std::string out(reinterpret_cast<const char*>(&n), sizeof(n));
  out.append(credential.substr(0, n));
  out.append(agent.substr(0, kMaxAgentBytes));
  return out;
}

absl::StatusOr<SenderHeader> DecodeSenderHeader(std::string_view bytes) {
  uint16_t n = 0;
  if (bytes.size() < sizeof(n)) {
    return absl::InvalidArgumentError("sender header shorter than its length field");
  }
  std::memcpy(&n, bytes.data(), sizeof(n));
  bytes.remove_prefix(sizeof(n));
  if (n > kMaxCredentialBytes || n > bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sender header names a credential of ", n, " bytes in ", bytes.size()));
  }
  SenderHeader header;
  header.credential.assign(bytes.substr(0, n));
  bytes.remove_prefix(n);
  if (bytes.size() > kMaxAgentBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent name of ", bytes.size(), " bytes (at most ", kMaxAgentBytes, ")"));
  }
  header.agent.assign(bytes);
  return header;
}

absl::Status CheckSenderCredential(std::string_view expected, std::string_view presented) {
  if (expected.empty()) return absl::OkStatus();
  if (ConstantTimeEquals(expected, presented)) return absl::OkStatus();
  return absl::PermissionDeniedError(presented.empty() ? "no cluster credential"
                                                       : "wrong cluster credential");
}

}  // namespace pdserve::transfer
