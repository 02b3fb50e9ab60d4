#include "transfer/ucx/ucx_config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pdserve::transfer::ucx {

absl::StatusOr<UcxSafeConfig> SafeUcxConfig(const char* env_tls, const char* env_net_devices,
                                            const std::string& listen_host,
                                            const std::string& interface_of_host) {
  UcxSafeConfig out;
  const std::string tls = env_tls != nullptr ? env_tls : "";
  if (tls.empty() || tls == "all") {
    out.tls = "^sysv";
  } else if (tls[0] == '^') {
    // An exclusion list: exclude sysv too.
    out.tls = absl::StrCat(tls, ",sysv");
  } else {
    std::vector<std::string> kept;
    for (absl::string_view name : absl::StrSplit(tls, ',', absl::SkipEmpty())) {
      if (name == "sysv") {
        out.notes.push_back("UCX_TLS: dropped sysv (its segments are group-writable)");
      } else if (name == "sm" || name == "shm") {
        // The alias includes sysv: name the owner-only shared-memory transports instead.
        kept.insert(kept.end(), {"posix", "cma"});
        out.notes.push_back(absl::StrCat("UCX_TLS: ", name, " taken as posix,cma (no sysv)"));
      } else {
        kept.emplace_back(name);
      }
    }
    if (kept.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("UCX_TLS=", tls,
                       " names only sysv, whose shared memory segments are "
                       "group-writable; use posix (and cma) instead"));
    }
    out.tls = absl::StrJoin(kept, ",");
  }
  if (env_net_devices == nullptr || *env_net_devices == '\0') {
    if (!interface_of_host.empty()) {
      out.net_devices = interface_of_host;
      out.notes.push_back(absl::StrCat("UCX_NET_DEVICES=", interface_of_host, " (the interface of ",
                                       listen_host, "; set UCX_NET_DEVICES to choose others)"));
    } else if (listen_host != "0.0.0.0") {
      out.notes.push_back(absl::StrCat("no network interface has address ", listen_host,
                                       ": UCX may listen on every interface (set "
                                       "UCX_NET_DEVICES)"));
    }
  }
  return out;
}

bool AllowsSharedMemory(const std::string& tls) {
  // UCX's names and aliases that include posix or cma ("shm" / "sm": posix, sysv, cma, ...;
  // "mm": posix, sysv, xpmem).
  static constexpr absl::string_view kSharedMemory[] = {"posix", "cma", "knem", "xpmem",
                                                        "sm",    "shm", "mm",   "all"};
  auto is_shared = [](absl::string_view name) {
    return std::find(std::begin(kSharedMemory), std::end(kSharedMemory), name) !=
           std::end(kSharedMemory);
  };
  if (tls.empty()) return true;  // UCX's default: every transport
  if (tls[0] == '^') {
    // An exclusion list keeps shared memory unless it names an alias for all of it, or every
    // shared-memory transport one by one.
    std::vector<absl::string_view> excluded =
        absl::StrSplit(absl::string_view(tls).substr(1), ',', absl::SkipEmpty());
    auto named = [&](absl::string_view n) {
      return std::find(excluded.begin(), excluded.end(), n) != excluded.end();
    };
    if (named("sm") || named("shm") || named("all")) return false;
    const bool posix_out = named("posix") || named("mm");
    const bool xpmem_out = named("xpmem") || named("mm");
    return !(posix_out && named("cma") && named("knem") && xpmem_out);
  }
  for (absl::string_view name : absl::StrSplit(tls, ',', absl::SkipEmpty())) {
    if (is_shared(name)) return true;
  }
  return false;
}

std::string InterfaceOfHost(const std::string& host) {
  in_addr want{};
  if (inet_pton(AF_INET, host.c_str(), &want) != 1 || want.s_addr == htonl(INADDR_ANY)) return "";
  if ((ntohl(want.s_addr) >> 24) == 127) return "lo";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string name;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr == want.s_addr) {
      name = a->ifa_name;
      break;
    }
  }
  freeifaddrs(list);
  return name;
}

}  // namespace pdserve::transfer::ucx
