#include "transfer/ucx/ucx_config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pdserve::transfer::ucx {

absl::StatusOr<UcxSafeConfig> SafeUcxConfig(const char* env_tls, const char* env_net_devices,
                                            const std::string& listen_host,
                                            const std::string& interface_of_host,
                                            const std::vector<std::string>& rdma_ports) {
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
      // Loopback: every peer is on this host, RDMA would add nothing.
      const bool rdma = interface_of_host != "lo" && !rdma_ports.empty();
      if (rdma) absl::StrAppend(&out.net_devices, ",", absl::StrJoin(rdma_ports, ","));
      out.notes.push_back(absl::StrCat(
          "UCX_NET_DEVICES=", out.net_devices, " (the interface of ", listen_host,
          rdma ? ", and this host's active RDMA ports" : "",
          "; set UCX_NET_DEVICES to choose others)"));
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

std::vector<std::string> RdmaPorts(const std::string& sysfs) {
  namespace fs = std::filesystem;
  auto safe = [](const std::string& name) {
    return !name.empty() && name.size() <= 64 &&
           std::all_of(name.begin(), name.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
           });
  };
  std::vector<std::string> ports;
  std::error_code ec;
  for (const fs::directory_entry& device : fs::directory_iterator(sysfs, ec)) {
    const std::string name = device.path().filename().string();
    if (!safe(name)) continue;
    std::error_code port_ec;
    for (const fs::directory_entry& port : fs::directory_iterator(device.path() / "ports", port_ec)) {
      const std::string number = port.path().filename().string();
      if (!safe(number)) continue;
      std::ifstream state(port.path() / "state");
      std::string text;
      std::getline(state, text);  // "4: ACTIVE"
      if (text.find("ACTIVE") == std::string::npos) continue;
      ports.push_back(absl::StrCat(name, ":", number));
      if (ports.size() >= 64) break;
    }
    if (ports.size() >= 64) break;
  }
  std::sort(ports.begin(), ports.end());
  return ports;
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
