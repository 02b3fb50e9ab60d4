#include "service/host_address.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pdserve::service {
namespace {

bool IsIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool IsIpv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

std::string StripBrackets(const std::string& s) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') return s.substr(1, s.size() - 2);
  return s;
}

bool IsUnspecified(const std::string& ip) {
  if (IsIpv4(ip)) {
    in_addr a{};
    inet_pton(AF_INET, ip.c_str(), &a);
    return a.s_addr == htonl(INADDR_ANY);
  }
  in6_addr a{};
  return inet_pton(AF_INET6, ip.c_str(), &a) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a);
}

// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'.
bool IsDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (absl::ascii_isalnum(c) || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return prev != '-' && prev != '.';
}

// For error messages: bounded and escaped, since the text came from the command line.
std::string Quote(const std::string& s) { return absl::CEscape(s.substr(0, 80)); }

}  // namespace

absl::StatusOr<std::string> ParseListenAddress(const std::string& flag,
                                               const std::string& address) {
  const std::string ip = StripBrackets(address);
  if (IsIpv4(ip) || IsIpv6(ip)) return ip;
  return absl::InvalidArgumentError(absl::StrCat(
      flag, " '", Quote(address), "' is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 10.0.0.2, ::1; "
      "0.0.0.0 listens on every interface)"));
}

absl::StatusOr<std::string> ResolveAdvertiseAddress(const std::string& listen,
                                                    const std::string& advertise) {
  if (advertise.empty()) {
    if (IsUnspecified(listen)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", listen, " is every interface, which no peer can dial: pass --advertise "
          "with the address the others should use"));
    }
    return listen;
  }
  const std::string host = StripBrackets(advertise);
  if (IsIpv4(host) || IsIpv6(host)) {
    if (IsUnspecified(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--advertise ", host, ": no peer can dial an unspecified address"));
    }
    return host;
  }
  if (IsDnsName(host)) return host;
  return absl::InvalidArgumentError(absl::StrCat(
      "--advertise '", Quote(advertise), "' is neither an IP address nor a host name"));
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

bool ValidHostId(const std::string& host_id) {
  return !host_id.empty() && host_id.size() <= kMaxHostIdBytes &&
         std::all_of(host_id.begin(), host_id.end(), [](char c) { return c > ' ' && c <= '~'; });
}

absl::StatusOr<std::string> ResolveHostId(const std::string& host_id) {
  std::string id = host_id;
  if (id.empty()) {
    char name[HOST_NAME_MAX + 1] = {};
    if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
      return absl::FailedPreconditionError("cannot read this machine's hostname: pass --host-id");
    }
    id = name;
  }
  if (!ValidHostId(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--host-id '", Quote(id), "': 1 to ", kMaxHostIdBytes,
        " printable characters without spaces"));
  }
  return id;
}

}  // namespace pdserve::service
