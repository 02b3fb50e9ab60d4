#include "cluster/gpu_placement.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pdserve::cluster {

absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& list) {
  std::vector<int> gpus;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int id = -1;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GPU list '", list, "': '", part, "' is not a GPU id (0, 1, ...)"));
    }
    gpus.push_back(id);
  }
  return gpus;
}

absl::StatusOr<std::string> VisibleDevicesFor(int gpu, const std::vector<int>& cluster_gpus,
                                              const std::string& parent_visible) {
  std::vector<int> order = {gpu};
  std::vector<int> others = cluster_gpus;
  std::sort(others.begin(), others.end());
  others.erase(std::unique(others.begin(), others.end()), others.end());
  for (int g : others) {
    if (g != gpu) order.push_back(g);
  }
  const std::vector<std::string> parent =
      parent_visible.empty()
          ? std::vector<std::string>()
          : std::vector<std::string>(absl::StrSplit(parent_visible, ',', absl::SkipWhitespace()));
  std::vector<std::string> out;
  for (int g : order) {
    if (g < 0) return absl::InvalidArgumentError(absl::StrCat("GPU id ", g, " is negative"));
    if (parent.empty()) {
      out.push_back(absl::StrCat(g));
    } else if (static_cast<size_t>(g) < parent.size()) {
      out.emplace_back(absl::StripAsciiWhitespace(parent[g]));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "GPU id ", g, " is past this process's CUDA_VISIBLE_DEVICES=", parent_visible,
          " (ids count from 0 in that list)"));
    }
  }
  return absl::StrJoin(out, ",");
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> WorkerGpuEnv(
    const GpuPlacement& placement, const std::string& role, int index,
    const std::string& parent_visible) {
  const std::vector<int>& gpus = role == "prefill"  ? placement.prefill
                                 : role == "decode" ? placement.decode
                                                    : placement.colocated;
  if (gpus.empty() || index < 0) return std::vector<std::pair<std::string, std::string>>{};
  std::vector<int> all = placement.prefill;
  all.insert(all.end(), placement.decode.begin(), placement.decode.end());
  all.insert(all.end(), placement.colocated.begin(), placement.colocated.end());
  absl::StatusOr<std::string> visible =
      VisibleDevicesFor(gpus[static_cast<size_t>(index) % gpus.size()], all, parent_visible);
  if (!visible.ok()) return visible.status();
  return std::vector<std::pair<std::string, std::string>>{{"CUDA_VISIBLE_DEVICES", *visible}};
}

absl::Status CheckPlacement(const GpuPlacement& placement) {
  if (placement.empty()) return absl::OkStatus();
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  // Every id of the placement is in each worker's list: one check covers them all.
  for (const char* role : {"prefill", "decode", "colocated"}) {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> env =
        WorkerGpuEnv(placement, role, 0, v != nullptr ? v : "");
    if (!env.ok()) return env.status();
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::string>> ChildEnv(
    const std::vector<std::pair<std::string, std::string>>& cluster,
    const std::vector<std::pair<std::string, std::string>>& own) {
  std::vector<std::pair<std::string, std::string>> env = cluster;
  if (std::getenv("NCCL_NVLS_ENABLE") == nullptr &&
      std::none_of(env.begin(), env.end(),
                   [](const auto& kv) { return kv.first == "NCCL_NVLS_ENABLE"; })) {
    env.emplace_back("NCCL_NVLS_ENABLE", "0");
  }
  env.insert(env.end(), own.begin(), own.end());
  return env;
}

}  // namespace pdserve::cluster
