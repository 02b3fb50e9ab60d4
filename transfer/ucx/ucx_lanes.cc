#include "transfer/ucx/ucx_lanes.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace pdserve::transfer::ucx {
namespace {

constexpr size_t kMaxLanes = 32;

// "2:posix/memory.0" -> "posix/memory" (resource index before ':', device index after '.').
std::string TransportOf(absl::string_view resource) {
  if (size_t colon = resource.find(':'); colon != absl::string_view::npos) {
    resource.remove_prefix(colon + 1);
  }
  if (size_t dot = resource.rfind('.'); dot != absl::string_view::npos) {
    resource = resource.substr(0, dot);
  }
  return std::string(resource);
}

}  // namespace

std::vector<UcxLane> ParseLanes(const std::string& print_info) {
  std::vector<UcxLane> lanes;
  for (absl::string_view line : absl::StrSplit(print_info, '\n')) {
    if (lanes.size() == kMaxLanes) break;
    const size_t at = line.find("lane[");
    if (at == absl::string_view::npos) continue;
    line.remove_prefix(at + 5);
    const size_t close = line.find("]:");
    UcxLane lane;
    if (close == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, close), &lane.index)) {
      continue;
    }
    line.remove_prefix(close + 2);
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0].find('/') == absl::string_view::npos) continue;
    lane.transport = TransportOf(words[0]);
    // What the lane is used for follows the remote side ("-> md[2]/posix/sysdev[255]").
    auto arrow = std::find(words.begin(), words.end(), "->");
    for (auto w = arrow == words.end() ? words.end() : arrow + 2; w < words.end(); ++w) {
      std::string use(w->substr(0, w->find('#')));
      if (!use.empty() && std::find(lane.uses.begin(), lane.uses.end(), use) == lane.uses.end()) {
        lane.uses.push_back(std::move(use));
      }
    }
    if (!lane.transport.empty()) lanes.push_back(std::move(lane));
  }
  return lanes;
}

bool IsIntraHostTransport(const std::string& transport) {
  static constexpr absl::string_view kIntraHost[] = {
      "posix",    "sysv",      "cma",      "knem",     "xpmem",    "self",
      "cuda_ipc", "cuda_copy", "gdr_copy", "rocm_ipc", "rocm_copy"};
  const absl::string_view name = absl::string_view(transport).substr(0, transport.find('/'));
  return std::find(std::begin(kIntraHost), std::end(kIntraHost), name) != std::end(kIntraHost);
}

bool AllIntraHost(const std::vector<UcxLane>& lanes) {
  return !lanes.empty() && std::all_of(lanes.begin(), lanes.end(), [](const UcxLane& l) {
    return IsIntraHostTransport(l.transport);
  });
}

std::vector<std::string> NetworkTransports(const std::vector<UcxLane>& lanes) {
  std::vector<std::string> out;
  for (const UcxLane& l : lanes) {
    if (!IsIntraHostTransport(l.transport) &&
        std::find(out.begin(), out.end(), l.transport) == out.end()) {
      out.push_back(l.transport);
    }
  }
  return out;
}

std::string TransportSummary(const std::vector<UcxLane>& lanes) {
  std::vector<std::string> seen;
  for (const UcxLane& l : lanes) {
    if (std::find(seen.begin(), seen.end(), l.transport) == seen.end()) seen.push_back(l.transport);
  }
  return seen.empty() ? "?" : absl::StrJoin(seen, "+");
}

std::string DescribeLanes(const std::vector<UcxLane>& lanes) {
  std::vector<std::string> parts;
  for (const UcxLane& l : lanes) {
    parts.push_back(
        absl::StrCat("lane ", l.index, " ", l.transport,
                     l.uses.empty() ? "" : absl::StrCat(" (", absl::StrJoin(l.uses, " "), ")")));
  }
  return parts.empty() ? "no lanes" : absl::StrJoin(parts, ", ");
}

bool TcpDespiteRdma(const std::vector<UcxLane>& lanes, const std::vector<std::string>& rdma_ports) {
  if (rdma_ports.empty()) return false;
  const std::vector<std::string> network = NetworkTransports(lanes);
  return !network.empty() && std::all_of(network.begin(), network.end(), [](const std::string& t) {
    return t.rfind("tcp/", 0) == 0;
  });
}

}  // namespace pdserve::transfer::ucx
